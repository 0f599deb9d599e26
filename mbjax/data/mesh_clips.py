"""Mesh recovery training examples and the official H36M + COCO + 3DPW schedule.

Records are those of `mbjax.data.mesh` (mesh_h36m / mesh_pw3d / mesh_coco): `joint_2d`
(T, 17, 3) normalised 2D + confidence, `smpl_pose` (T, 72), `smpl_shape` (T, 10).

Official mixing (train_mesh.py), per epoch, each loader a full pass in this order:
  H36M   if the config has dt_file_h36m and epoch < warmup_h36m (then validate on H36M);
  COCO   if it has dt_file_coco and epoch < warmup_coco (batch size `batch_size_img`);
  3DPW   if it has dt_file_pw3d and train_pw3d (then validate on 3DPW).
`make_mesh_curriculum` reproduces that order and those epoch windows, with two differences: one
global batch for every phase (officially COCO has its own `batch_size_img`), and a partial last
batch per phase is dropped (as every mbjax curriculum does). A warmup of None means every epoch
(officially the attribute must exist when its dataset is configured).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from mbjax.data import pipelines, transforms
from mbjax.data.rotations import SMPL_FLIP_PAIRS

Example = pipelines.Example

KIND_MESH = 'mesh'  # input: (T, 17, 3) 2D; theta: (T, 82) SMPL pose + shape; loss: MeshLoss
POSE_DIM = 72
SHAPE_DIM = 10
_SMPL_JOINTS = 24
# _SMPL_FLIP_ORDER[j] is the SMPL joint whose axis-angle joint j takes in the mirrored pose.
_SMPL_FLIP_ORDER = np.arange(_SMPL_JOINTS)
for _a, _b in SMPL_FLIP_PAIRS:
  _SMPL_FLIP_ORDER[_a], _SMPL_FLIP_ORDER[_b] = _b, _a
_AXIS_SIGN = np.array([1.0, -1.0, -1.0])


def flip_smpl_pose(pose: np.ndarray) -> np.ndarray:
  """(..., 72) axis-angles mirrored left-right, in numpy (official `flip_thetas`).

  The same map as `mbjax.data.rotations.flip_thetas_batch` (swap SMPL_FLIP_PAIRS, negate y
  and z of every axis-angle), without jax so that it runs cheaply in grain workers.
  """
  pose = np.asarray(pose)
  if pose.shape[-1:] != (POSE_DIM,):
    raise ValueError(f'flip_smpl_pose: expected (..., {POSE_DIM}) axis-angles, got {pose.shape}')
  joints = pose.reshape(pose.shape[:-1] + (_SMPL_JOINTS, 3))
  flipped = joints[..., _SMPL_FLIP_ORDER, :] * _AXIS_SIGN.astype(pose.dtype)
  return flipped.reshape(pose.shape)


def _clip_arrays(record: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  for key in ('joint_2d', 'smpl_pose', 'smpl_shape'):
    if key not in record:
      raise ValueError(f'mesh_example: record has no {key!r} (keys: {sorted(record)})')
  x = np.asarray(record['joint_2d'], np.float32)
  pose = np.asarray(record['smpl_pose'], np.float32)
  shape = np.asarray(record['smpl_shape'], np.float32)
  if x.ndim != 3 or x.shape[1:] != (transforms.NUM_JOINTS, 3):
    raise ValueError(f'mesh_example: joint_2d has shape {x.shape}, expected (T, 17, 3)')
  t = x.shape[0]
  if pose.shape != (t, POSE_DIM) or shape.shape != (t, SHAPE_DIM):
    raise ValueError(f'mesh_example: smpl_pose {pose.shape} / smpl_shape {shape.shape}, '
                     f'expected ({t}, {POSE_DIM}) / ({t}, {SHAPE_DIM}) to match joint_2d')
  return x, pose, shape


def mesh_example(record: dict, rng: np.random.Generator, *, flip: bool = True) -> Example:
  """One mesh clip (official `MotionSMPL.__getitem__`, minus the SMPL forward pass).

  The confidence is clipped to [0, 1] (official, train and test). With `flip`, probability 0.5:
  the 2D through `transforms.flip_pose` (official `flip_data`) and the pose through
  `flip_smpl_pose` (official `flip_thetas`); the shape is unchanged. Ground-truth kp_3d and
  vertices are the model side's: SMPL of `theta`.

  Args:
    record: `joint_2d` (T, 17, 3), `smpl_pose` (T, 72), `smpl_shape` (T, 10).
    rng: generator for the flip draw (drawn only when `flip`).
    flip: random left-right flip (official `flip`, training only: pass False to evaluate).

  Returns:
    {'input': (T, 17, 3), 'theta': (T, 82) = concat(pose, shape)}, float32.
  """
  x, pose, shape = _clip_arrays(record)
  x = x.copy()
  x[..., 2] = np.clip(x[..., 2], 0, 1)
  if flip and rng.random() < 0.5:
    x = transforms.flip_pose(x)
    pose = flip_smpl_pose(pose)
  theta = np.concatenate([pose, shape], axis=-1).astype(np.float32)
  return {'input': x.astype(np.float32), 'theta': theta}


# --------------------------------------------------------------------------------------------
# The official schedule.


class MeshCurriculum(pipelines.Curriculum):
  """A Curriculum whose epochs each run a given list of phases, in that order.

  `schedule[e]` lists the phase ids of epoch e (an epoch may be empty). Everything else (steps
  per phase, locate, HostBatches) is `pipelines.Curriculum`'s.
  """

  def __init__(self, phases: Sequence[pipelines.Phase], schedule: Sequence[Sequence[int]], *,
               global_batch: int):
    super().__init__(phases, [], epochs=0, curriculum_3d_epochs=0, global_batch=global_batch)
    self.segments, self.epoch_starts, step = [], [], 0
    for epoch, phase_ids in enumerate(schedule):
      self.epoch_starts.append(step)
      for pid in phase_ids:
        self.segments.append((step, epoch, int(pid)))
        step += self.steps_in(int(pid))
    self.total_steps = step
    self._starts = [s[0] for s in self.segments]


def mesh_schedule(epochs: int, *, h36m: bool, coco: bool, pw3d: bool,
                  warmup_h36m: int | None = None, warmup_coco: int | None = None
                  ) -> list[list[str]]:
  """Names of the datasets trained in each epoch, in official order (see the module docstring)."""
  plan = []
  for epoch in range(epochs):
    names = []
    if h36m and (warmup_h36m is None or epoch < warmup_h36m):
      names.append('h36m')
    if coco and (warmup_coco is None or epoch < warmup_coco):
      names.append('coco')
    if pw3d:
      names.append('pw3d')
    plan.append(names)
  return plan


def make_mesh_curriculum(*, h36m: Any = None, coco: Any = None, pw3d: Any = None, epochs: int,
                         global_batch: int, flip: bool = True, warmup_h36m: int | None = None,
                         warmup_coco: int | None = None, no_conf: bool = False
                         ) -> MeshCurriculum:
  """Mesh finetuning over the given train sources (mesh_h36m / mesh_coco / mesh_pw3d records).

  One KIND_MESH phase per source (named 'h36m', 'coco', 'pw3d'), scheduled as official
  train_mesh.py (module docstring); `pw3d` given means official `train_pw3d`. Each phase has one
  clip length (16, COCO 1), so each batch has a single T.

  Args:
    h36m, coco, pw3d: record sources (len + getitem), or None for a dataset not configured.
    epochs: epochs of the schedule.
    global_batch: clips per step, every phase.
    flip: random flip of `mesh_example`.
    warmup_h36m, warmup_coco: H36M / COCO train only in epochs below these (None: every epoch).
    no_conf: input x, y only (official `no_conf`).
  """
  sources = {'h36m': h36m, 'coco': coco, 'pw3d': pw3d}
  present = [name for name, source in sources.items() if source is not None]
  if not present:
    raise ValueError('make_mesh_curriculum: no source given (h36m, coco or pw3d)')
  make = functools.partial(mesh_example, flip=flip)
  if no_conf:
    make = functools.partial(pipelines.input_xy_only, make)
  phases = [pipelines.Phase(name, KIND_MESH, sources[name], make) for name in present]
  ids = {name: i for i, name in enumerate(present)}
  plan = mesh_schedule(epochs, h36m=h36m is not None, coco=coco is not None,
                       pw3d=pw3d is not None, warmup_h36m=warmup_h36m, warmup_coco=warmup_coco)
  return MeshCurriculum(phases, [[ids[n] for n in names] for names in plan],
                        global_batch=global_batch)
