"""Finetuning input pipelines: Human3.6M 3D pose and skeleton action recognition (NTU RGB+D).

Training reuses the pretraining machinery of `mbjax.data.pipelines`: a finetuning run is a
`Curriculum` with a single phase and `curriculum_3d_epochs=0`, so batches stay deterministic in
(seed, step), shard by process and resume exactly. The phase kind tells the trainer which loss to
use: '3d' (pipelines.KIND_3D) for pose, 'action' (KIND_ACTION) for classification.

Evaluation walks a whole split in order with `eval_batches`: fixed-size batches (one compiled
shape), the last one padded by repeating the final record, with a `valid` mask marking the padding.

Records (see data_prep/h36m.py and data_prep/ntu.py):
  h36m: `joint_2d` (T, 17, 3) normalised detected 2D + confidence, `joint_3d` (T, 17, 3) normalised.
  ntu:  `keypoint` (2, T, 17, 3) normalised camera x, y + score, `label`, `total_frames`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from mbjax.data import pipelines, transforms

Example = pipelines.Example

KIND_ACTION = 'action'  # input: (2, T, 17, 3) two persons, label: class index; loss: cross-entropy
NUM_PERSONS = 2


def _array(record: dict, key: str, fn: str) -> np.ndarray:
  if key not in record:
    raise ValueError(f'{fn}: record has no {key!r} (keys: {sorted(record)})')
  return np.asarray(record[key])


# --------------------------------------------------------------------------------------------
# Per-clip examples (module-level, bound with functools.partial, so grain workers can pickle them).


def h36m_example(record: dict, rng: np.random.Generator, *, flip: bool = True,
                 rootrel: bool = True, gt_2d: bool = False) -> Example:
  """One Human3.6M clip for 3D pose finetuning (official `MotionDataset3D` train + train loop).

  Input is the detected 2D with its confidence, as stored (or, with `gt_2d`, the ground truth's
  x, y with confidence 1); no noise and no masks (official finetuning configs). With probability
  0.5 input and target are mirrored together.

  Args:
    record: `joint_2d` (T, 17, C) normalised 2D (+ confidence), `joint_3d` (T, 17, 3) normalised 3D.
    rng: generator for the flip draw.
    flip: random left-right flip (official `flip`).
    rootrel: target minus its root joint in every frame (official `rootrel`); otherwise only the
      depth is shifted so that the first frame's root is at depth 0 (official `rootrel=False`).
    gt_2d: input from `joint_3d`'s x, y with confidence 1 instead of `joint_2d` (official
      `gt_2d`).

  Returns:
    {'input': (T, 17, C), 'target': (T, 17, 3), 'conf': (T, 17, 1) ones}, float32.
  """
  x = _array(record, 'joint_2d', 'h36m_example').astype(np.float32)
  gt = _array(record, 'joint_3d', 'h36m_example').astype(np.float32)
  if gt.ndim != 3 or gt.shape[1:] != (transforms.NUM_JOINTS, 3):
    raise ValueError(f'h36m_example: joint_3d has shape {gt.shape}, expected (T, 17, 3)')
  if x.ndim != 3 or x.shape[:2] != gt.shape[:2] or x.shape[2] < 2:
    raise ValueError(f'h36m_example: joint_2d has shape {x.shape}, expected '
                     f'({gt.shape[0]}, 17, C>=2) to match joint_3d {gt.shape}')
  if gt_2d:
    x = np.concatenate([gt[..., :2], np.ones_like(gt[..., :1])], axis=-1)
  if flip and rng.random() < 0.5:
    x = transforms.flip_pose(x)
    gt = transforms.flip_pose(gt)
  return {'input': x, 'target': pipelines.target_3d(gt, rootrel).astype(np.float32),
          'conf': np.ones(gt.shape[:2] + (1,), np.float32)}


def action_example(record: dict, rng: np.random.Generator, *, n_frames: int = 243,
                   train: bool = True, random_move: bool = True,
                   scale_range: Sequence[float] = (1, 1), resample_offset: float = 0.0,
                   resample_once: bool = False,
                   visit: pipelines.Visit | None = None) -> Example:
  """One skeleton sequence for action recognition (official `ActionDataset` + `NTURGBD`).

  Order as official: resample the whole sequence to `n_frames` (random positions for training,
  evenly spaced ones otherwise), for training a smooth random rotation / scale / shift of both
  persons (`random_move`), then `crop_scale` of both persons together into [-1, 1].

  By default every visit draws afresh. Official, with persistent DataLoader workers, draws the
  positions once per clip (at dataset build, `resample_once` here) and moves its stored clip in
  place, so each worker's copy of a clip carries every earlier move: with a `visit` whose `moves`
  are not empty, the moves of all visits so far are applied, composed into one per frame (the
  official float32 store between moves rounds at 1e-7 relative), instead of one fresh move.

  Args:
    record: `keypoint` (2, T, 17, 3) normalised x, y and score (a missing second person is zeros),
      `label` () class index; `total_frames`, when present, must equal T.
    rng: generator for resampling, random_move and the crop-scale ratio.
    n_frames: frames per clip after resampling.
    train: training-time randomness (random resampling, random_move).
    random_move: apply random_move when training (official: off for the validation sets).
    scale_range: range of the crop-scale box enlargement (official train [1, 3], test [2, 2]).
    resample_offset: test only: the evenly spaced frame positions moved by this fraction of their
      spacing (0: official; k / N for clip k of N-clip testing).
    resample_once: training positions drawn from `visit.clip_rng`, the same on every visit.
    visit: the clip's `pipelines.Visit` (given by the pipeline to phases with `visits`).

  Returns:
    {'input': (2, n_frames, 17, 3) float32, 'label': () int32}.
  """
  motion = _array(record, 'keypoint', 'action_example').astype(np.float32)
  if motion.ndim != 4 or motion.shape[0] != NUM_PERSONS or motion.shape[2:] != (
      transforms.NUM_JOINTS, 3) or motion.shape[1] < 1:
    raise ValueError(f'action_example: keypoint has shape {motion.shape}, expected '
                     f'({NUM_PERSONS}, T>=1, {transforms.NUM_JOINTS}, 3)')
  total = motion.shape[1]
  if 'total_frames' in record and int(np.asarray(record['total_frames'])) != total:
    raise ValueError(f'action_example: total_frames is {int(np.asarray(record["total_frames"]))} '
                     f'but keypoint has {total} frames')
  label = _array(record, 'label', 'action_example')
  if label.shape != () or not np.issubdtype(label.dtype, np.integer):
    raise ValueError(f'action_example: label must be an integer scalar, got {label.dtype} '
                     f'with shape {label.shape}')
  if resample_once and visit is None:
    raise ValueError('action_example: resample_once draws from the clip\'s visit, none given '
                     '(a Phase with visits=True gives it)')
  # Official resamples once when the dataset is built (np.random.seed(0)), so every epoch sees
  # the same frames; by default we draw new positions per (seed, step, clip) each epoch.
  if train:
    frames = transforms.resample_indices(total, n_frames,
                                         visit.clip_rng if resample_once else rng)
  else:
    frames = transforms.resample_indices(total, n_frames, offset=resample_offset)
  motion = motion[:, frames]
  if train and random_move and visit is not None and visit.moves:
    T = motion.shape[1]
    moves = [transforms.random_move_params(T, move_rng) for move_rng in visit.moves]
    motion = transforms.apply_move(motion, *transforms.compose_moves(moves))
  elif train and random_move:
    motion = transforms.random_move(motion, rng)
  motion = transforms.crop_scale_2d(motion, scale_range, rng)
  return {'input': motion.astype(np.float32), 'label': label.astype(np.int32)}


# --------------------------------------------------------------------------------------------
# Training curricula.


def make_h36m_curriculum(train_source: Any, *, epochs: int, global_batch: int, flip: bool,
                         rootrel: bool, gt_2d: bool = False,
                         no_conf: bool = False) -> pipelines.Curriculum:
  """Human3.6M 3D pose finetuning: one '3d' phase over `train_source` for `epochs` epochs.

  `gt_2d`: ground-truth 2D input (see `h36m_example`); `no_conf`: input x, y only (official
  `no_conf`).
  """
  make = functools.partial(h36m_example, flip=flip, rootrel=rootrel, gt_2d=gt_2d)
  if no_conf:
    make = functools.partial(pipelines.input_xy_only, make)
  phase = pipelines.Phase('h36m', pipelines.KIND_3D, train_source, make)
  return pipelines.Curriculum([phase], [], epochs=epochs, curriculum_3d_epochs=0,
                              global_batch=global_batch)


def action_phase(name: str, train_source: Any, *, n_frames: int, random_move: bool,
                 scale_range: Sequence[float], resample_once: bool = False,
                 compounding_workers: int = 0, order=None) -> pipelines.Phase:
  """An 'action' training phase of `action_example` over `train_source`.

  `resample_once`: each clip's frame positions drawn once (official); `compounding_workers` W > 0:
  random_move compounds over the visits of each of W official DataLoader workers (official
  in-place `random_move`, 8 workers); `order`: the phase's record order (`Phase.order`).
  """
  make = functools.partial(action_example, n_frames=n_frames, train=True,
                           random_move=random_move, scale_range=tuple(scale_range),
                           resample_once=resample_once)
  if compounding_workers < 0:
    raise ValueError(f'action_phase: compounding_workers must be >= 0, got {compounding_workers}')
  return pipelines.Phase(name, KIND_ACTION, train_source, make, order=order,
                         visits=resample_once or compounding_workers > 0,
                         workers=compounding_workers)


def make_action_curriculum(train_source: Any, *, epochs: int, global_batch: int, n_frames: int,
                           random_move: bool, scale_range: Sequence[float],
                           resample_once: bool = False, compounding_workers: int = 0
                           ) -> pipelines.Curriculum:
  """Action recognition training: one 'action' phase over `train_source` for `epochs` epochs
  (see `action_phase`)."""
  phase = action_phase('action', train_source, n_frames=n_frames, random_move=random_move,
                       scale_range=scale_range, resample_once=resample_once,
                       compounding_workers=compounding_workers)
  return pipelines.Curriculum([phase], [], epochs=epochs, curriculum_3d_epochs=0,
                              global_batch=global_batch)


# --------------------------------------------------------------------------------------------
# Evaluation batches.


class EvalBatches:
  """Item `i` = batch `i` of a whole split, in record order, padded to `batch_size` rows.

  Each batch holds the stacked example arrays plus `index` (B,) int32, the record index of each
  row, and `valid` (B,) bool, False on the padding rows (copies of the final record's example).
  Example functions get a generator seeded by (seed, record index), so a split's batches are the
  same on every pass.
  """

  def __init__(self, source: Any, example_fn: Callable[[dict, np.random.Generator], Example],
               batch_size: int, *, seed: int = 0):
    if batch_size < 1:
      raise ValueError(f'eval_batches: batch_size must be >= 1, got {batch_size}')
    if len(source) == 0:
      raise ValueError('eval_batches: the source has no records; expected at least one')
    self.source = source
    self.example_fn = example_fn
    self.batch_size = batch_size
    self.seed = seed
    self.num_records = len(source)

  def __len__(self) -> int:
    return -(-self.num_records // self.batch_size)

  def _example(self, index: int) -> Example:
    rng = np.random.default_rng([self.seed, 2, index])
    try:
      return self.example_fn(self.source[index], rng)
    except Exception as e:
      raise ValueError(f'eval_batches: record {index}: {e}') from e

  def __getitem__(self, i: int) -> Example:
    i = int(i)
    if not 0 <= i < len(self):
      raise IndexError(f'eval batch {i} outside the {len(self)} batches of the split')
    indices = list(range(i * self.batch_size, min((i + 1) * self.batch_size, self.num_records)))
    examples = [self._example(index) for index in indices]
    pad = self.batch_size - len(examples)
    # Only the last batch is short, and its final row is the split's final record.
    examples += [examples[-1]] * pad
    batch = {k: np.stack([ex[k] for ex in examples]) for k in examples[0]}
    batch['index'] = np.asarray(indices + [indices[-1]] * pad, np.int32)
    batch['valid'] = np.arange(self.batch_size) < len(indices)
    return batch

  def __iter__(self):
    for i in range(len(self)):
      yield self[i]


def eval_batches(source: Any, example_fn: Callable[[dict, np.random.Generator], Example],
                 batch_size: int, *, seed: int = 0) -> EvalBatches:
  """Deterministic, unshuffled, fixed-size batches over every record of `source` (see EvalBatches).

  `example_fn(record, rng)` is e.g. `functools.partial(h36m_example, flip=False)` or
  `functools.partial(action_example, train=False, scale_range=(2, 2))`.
  """
  return EvalBatches(source, example_fn, batch_size, seed=seed)
