"""MotionBERT mesh recovery (official `train_mesh.py` with MB_ft_pw3d.yaml / MB_ft_h36m.yaml).

A task module for `mbjax.train` (`mbjax/tasks/base.py`): `MeshNet` (the DSTformer of
`config.model` + the SMPL regressor of `config.model.head`, version 'mesh', whose SMPL model is
read from `head.smpl_dir`) on batches of `input` (B, T, 17, 3) normalised 2D + confidence and
`theta` (B, T, 82) ground-truth SMPL pose (axis-angles) and betas, from
`mbjax.data.mesh_clips.make_mesh_curriculum` (the official H36M + COCO + 3DPW schedule). The
ground-truth joints and vertices come from `theta` through SMPL (x 1000, the H36M regressor), as
official; the loss is the official MeshLoss weighted by `config.loss` (`mbjax.losses_mesh`). The
`mesh` evaluator (`mbjax/evaluate/mesh.py`) reports MPVE / MPJPE / PA-MPJPE as official
`evaluate_mesh`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mbjax import checkpoint, models
from mbjax.models import flops
from mbjax.losses import mesh as losses_mesh
from mbjax.data import holdout, mesh_clips, records
from mbjax.evaluate import registry
from mbjax.evaluate.inputs import TaskInputs
from mbjax.models import mesh_head
from mbjax.models.smpl import NUM_BETAS, NUM_JOINTS, smpl_from_axis_angle
from mbjax.tasks import base

KIND = mesh_clips.KIND_MESH
THETA_DIM = mesh_head.THETA_DIM
# A new head starts from its init; everything else must come from the pretrained file.
FRESH = (r'^params/head/', r'^batch_stats/head/', r'^constants/head/')
DATASETS = ('h36m', 'coco', 'pw3d')  # config.data.<name>: the record dataset, or '' for none
# Per vertex: shape and pose blend shapes (3 x (10 + 207) MACs), skinning (24 x 12 MACs).
_SMPL_FLOPS_PER_VERTEX = 2 * 3 * (NUM_BETAS + 9 * (NUM_JOINTS - 1)) + 2 * NUM_JOINTS * 12


def make_model(config):
  """MeshNet: the DSTformer of `config.model` with its `head` (version 'mesh', smpl_dir)."""
  head = config.model.get('head') or {}
  if head.get('version') != 'mesh':
    raise ValueError("task mesh: config.model.head.version must be 'mesh', got "
                     f'{head.get("version")!r}')
  return models.from_config(config.model)


def clip_len(config) -> int:
  """Frames per training clip (official clip_len 16); COCO phases have one frame."""
  return int(config.clip_len)


def example_batch(config) -> dict:
  """`input` (B, clip_len, 17, 3) float32 and `theta` (B, clip_len, 82) float32."""
  B, T, J = config.batch_size, clip_len(config), config.model.get('num_joints', 17)
  return {'input': jax.ShapeDtypeStruct((B, T, J, 3), jnp.float32),
          'theta': jax.ShapeDtypeStruct((B, T, THETA_DIM), jnp.float32)}


def train_source(config, name: str):
  """The training records of dataset `name` ('h36m', 'coco', 'pw3d'), without the validation
  slice of `config.data.val_fraction` (taken from the `val_dataset` only); None when unset."""
  data = config.data
  dataset = data.get(name) or ''
  if not dataset:
    return None
  source = records.load(dataset, 'train', data_dir=data.data_dir)
  if dataset == data.get('val_dataset') and float(data.get('val_fraction', 0.0)):
    source, _ = holdout.split(source, float(data.val_fraction), int(data.get('val_seed', 0)))
  return source


def make_curriculum(config) -> mesh_clips.MeshCurriculum:
  """The official schedule over the configured datasets (`mesh_clips.make_mesh_curriculum`)."""
  base.check_init_from(config)
  sources = {name: train_source(config, name) for name in DATASETS}
  return mesh_clips.make_mesh_curriculum(
      **sources, epochs=config.epochs, global_batch=config.batch_size, flip=config.flip,
      warmup_h36m=config.get('warmup_h36m'), warmup_coco=config.get('warmup_coco'),
      no_conf=config.get('no_conf', False))


def ground_truth(smpl, theta) -> dict:
  """(B, T, 82) ground-truth theta -> {'theta', 'verts' (mm), 'kp_3d' (mm)} through SMPL with
  the axis-angle path (official: smplx with pose2rot=True, x 1000, the H36M regressor)."""
  B, T = theta.shape[:2]
  flat = theta.reshape(B * T, THETA_DIM).astype(jnp.float32)
  verts = smpl_from_axis_angle(smpl, flat[:, 3 * NUM_JOINTS:], flat[:, :3 * NUM_JOINTS])[
      'vertices'] * mesh_head.METRES_TO_MM
  out = {'theta': flat, 'verts': verts, 'kp_3d': smpl.joints_h36m(verts)}
  return {k: v.reshape((B, T) + v.shape[1:]) for k, v in out.items()}


def lambdas(config) -> dict:
  """The `lambda_*` weights of `config.loss` (official names, losses_mesh.MESH_TERMS)."""
  return {k: float(config.loss[k]) for k in losses_mesh.MESH_TERMS if k in config.loss}


def loss_fn(model, variables, batch, rng, kind: str, config):
  """(weighted MeshLoss, (metrics, BatchNorm state)) of one batch; MPJPE / MPVE in mm."""
  if kind != KIND:
    raise ValueError(f'mesh.loss_fn: batch kind {kind!r}, expected {KIND!r}')
  pred, model_state = base.apply_train(model, variables, batch['input'], rng)
  gt = ground_truth(model.smpl, batch['theta'])
  total, parts = losses_mesh.mesh_objective(pred, gt, loss_type=config.loss.loss_type,
                                            lambdas=lambdas(config))
  rel = lambda x: x - x[:, :, :1]  # noqa: E731 (root-relative, as compute_error)
  mpjpe = jnp.mean(jnp.linalg.norm(rel(pred['kp_3d']) - rel(gt['kp_3d']), axis=-1))
  metrics = dict({k: v for k, v in parts.items() if k.startswith('loss_')}, loss=total,
                 mpjpe_mm=mpjpe)
  return total, ({f'{kind}/{k}': v for k, v in metrics.items()}, model_state)


def make_evaluators(config, model) -> base.Evaluators:
  """`config.evals` through the registry (`mesh` evaluators; the `part='val'` ones only with a
  validation slice)."""
  return registry.make_evaluators(config, model, inputs=evaluator_inputs(config))


def evaluator_inputs(config) -> TaskInputs:
  """What the mesh evaluators need of this task: its ground truth through SMPL."""
  del config  # the same for every mesh config
  return TaskInputs(ground_truth=ground_truth)


def load_pretrained(variables, path):
  """A pretrained DSTformer onto `backbone/` (head fresh), or a whole mesh checkpoint."""
  return checkpoint.load_pretrained(variables, path, fresh=FRESH)


def flops_per_step(config) -> float:
  """3x the forward FLOPs of the backbone, the head's matmuls and the prediction's SMPL, plus the
  ground truth's SMPL (blend shapes and skinning of `smpl_vertices`, 6890 for SMPL)."""
  m = config.model
  fields = {k: v for k, v in m.items() if k not in ('head', 'maxlen')}
  B, T = config.batch_size, clip_len(config)
  backbone = flops.dstformer_forward_flops(batch=B, frames=T, with_head=False, **fields)
  J, rep, hidden = m.get('num_joints', 17), m.get('dim_rep', 512), m.head.get('hidden_dim', 2048)
  head = 2 * B * T * (J * rep * hidden + hidden * 6 * NUM_JOINTS)
  head += 2 * B * (J * rep * hidden + hidden * NUM_BETAS)
  smpl = B * T * int(config.get('smpl_vertices', 6890)) * _SMPL_FLOPS_PER_VERTEX
  return 3 * (backbone + head + smpl) + smpl  # the prediction's SMPL is differentiated
