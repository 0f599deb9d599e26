"""Training input pipelines: per-clip corruption, MotionBERT's curriculum, per-process batches.

The pipeline is a grain `MapDataset` whose item `s` is this process's share of the global batch of
training step `s`. A `Curriculum` says which phase (a source of clips with one clip length and one
loss kind) and which epoch step `s` belongs to; each (phase, epoch) has its own seeded permutation,
and every clip's augmentation draws from a generator seeded by (seed, step, clip). So:
- a batch depends only on (seed, step): deterministic, and exactly resumable from grain's iterator
  state (saved with the model by orbax);
- each batch has a single T, so the trainer compiles at most once per distinct clip length;
- process p of P takes rows [p*B/P, (p+1)*B/P) of every global batch: disjoint, and covering.

Phase order per epoch is the official one: after `curriculum_3d_epochs` epochs of 3D only, every
epoch runs the 2D sources first (PoseTrack, then InstaVariety) and then the 3D sources, all of
them in one shuffled phase (official: one ConcatDataset of AMASS and H36M), so their clips share
one length.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
from typing import Any, Callable, Mapping, Sequence

import grain
import numpy as np

from mbjax.data import transforms

Example = dict[str, np.ndarray]

KIND_3D = '3d'  # target: root-relative 3D, loss: MPJPE + scale + velocity terms
KIND_2D = '2d'  # target: clean 2D with its confidences as weights, loss: weighted 2D error


class ConcatSource:
  """Random access over several record sources, one after the other."""

  def __init__(self, sources: Sequence[Any]):
    self.sources = list(sources)
    self._ends = np.cumsum([len(s) for s in self.sources]).tolist()

  def __len__(self) -> int:
    return self._ends[-1] if self._ends else 0

  def __getitem__(self, index: int) -> dict:
    i = bisect.bisect_right(self._ends, index)
    start = self._ends[i - 1] if i else 0
    return self.sources[i][index - start]


class FieldSource:
  """Random access to `source` with each record cut down to `fields`: {new name: record field}.

  Sources that name the same thing differently (AMASS `joints3d`, H36M `joint_3d`) then share one
  record layout, one example function and so one shuffled phase.
  """

  def __init__(self, source: Any, fields: Mapping[str, str]):
    self.source = source
    self.fields = dict(fields)

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> dict:
    record = self.source[index]
    missing = sorted(f for f in self.fields.values() if f not in record)
    if missing:
      raise KeyError(f'{self.source!r} record {index} has no field {", ".join(missing)} '
                     f'(fields: {", ".join(sorted(record))})')
    return {new: record[old] for new, old in self.fields.items()}


# --------------------------------------------------------------------------------------------
# Per-clip examples. Module-level functions (bound with functools.partial) so that grain worker
# processes can pickle them.


def target_3d(motion: np.ndarray, rootrel: bool) -> np.ndarray:
  """The 3D training target of a (T, 17, 3) clip, as official train.py makes every batch's.

  `rootrel`: every frame minus its root joint. Otherwise only the depth moves, so that the first
  frame's root is at depth 0 (`batch_gt[..., 2] -= batch_gt[:, 0:1, 0:1, 2]`); x, y stay as stored.
  """
  motion = np.asarray(motion)
  if rootrel:
    return motion - motion[:, :1]
  target = motion.copy()
  target[..., 2] -= motion[0, 0, 2]
  return target


def pretrain_3d_example(record: dict, rng: np.random.Generator, *, key: str = 'joint_3d',
                        flip: bool, noise: transforms.SyntheticNoise | None, mask_ratio: float,
                        mask_t_ratio: float, scale_range: Sequence[float] | None = None,
                        rootrel: bool = True, key_2d: str | None = None) -> Example:
  """3D clip -> corrupted 2D input and 3D target (official `MotionDataset3D` + `train_epoch`).

  Synthetic 2D (official `synthetic: True`, `key_2d` None): the clip as stored, crop-scaled to
  [-1, 1] only when `scale_range` is given (official `scale_range_pretrain`, set by no shipped
  config), then flipped; its x, y with confidence 1 are the clean 2D. Stored 2D (official
  `synthetic: False`, `key_2d` names it): the record's 2D, flipped together with the 3D. Then
  detector noise, then masks (only when both ratios are > 0, as officially).

  Args:
    record: `key` (T, 17, 3) 3D clip; `key_2d` (T, 17, C) 2D when given.
    rng: generator for every draw of this clip.
    key, key_2d: the record fields of the 3D clip and of its stored 2D (None: synthetic 2D).
    flip: random left-right flip.
    noise: synthetic detector noise, or None.
    mask_ratio, mask_t_ratio: probabilities of masking a joint and a whole frame.
    scale_range: crop-scale ratio range of the synthetic path; None keeps the clip as stored.
    rootrel: target minus its root joint in every frame (official `rootrel`), else with only the
      first frame's root depth subtracted (`target_3d`).

  Returns:
    {'input': (T, 17, 3), 'target': (T, 17, 3), 'conf': (T, 17, 1) ones}, float32.
  """
  motion = np.asarray(record[key], np.float32)
  if key_2d is None:
    if scale_range is not None:
      motion = transforms.crop_scale_3d(motion, scale_range, rng).astype(np.float32)
    if flip and rng.random() < 0.5:
      motion = transforms.flip_pose(motion)
    x = np.concatenate([motion[..., :2], np.ones_like(motion[..., :1])], axis=-1)
  else:
    x = np.asarray(record[key_2d], np.float32)
    if flip and rng.random() < 0.5:
      x, motion = transforms.flip_pose(x), transforms.flip_pose(motion)
  x = _corrupt(x, rng, noise, mask_ratio, mask_t_ratio)
  return {'input': x.astype(np.float32), 'target': target_3d(motion, rootrel).astype(np.float32),
          'conf': np.ones(motion.shape[:2] + (1,), np.float32)}


def pretrain_2d_example(record: dict, rng: np.random.Generator, *, key: str, flip: bool,
                        noise: transforms.SyntheticNoise | None, mask_ratio: float,
                        mask_t_ratio: float, scale_range=(0.25, 1.0),
                        rootrel: bool = True) -> Example:
  """2D-only clip (PoseTrack / InstaVariety) -> corrupted input, clean 2D target + confidences.

  Official: crop-scale with a random ratio in [0.25, 1], zero joints of confidence 0, flip; the
  loss weights are the original confidences; noise only for PoseTrack, masks for both (when both
  ratios are > 0). With `rootrel` (official `rootrel`, on in pretraining) the target's x, y are
  relative to its root joint in every frame, as the official loop makes every batch's target.
  """
  motion = transforms.crop_scale_2d(np.asarray(record[key], np.float32), scale_range, rng)
  motion = np.where(motion[..., 2:3] == 0, 0.0, motion).astype(np.float32)
  if flip and rng.random() < 0.5:
    motion = transforms.flip_pose(motion)
  x = _corrupt(motion, rng, noise, mask_ratio, mask_t_ratio)
  xy = motion[..., :2] - motion[:, :1, :2] if rootrel else motion[..., :2]
  target = np.concatenate([xy, np.zeros_like(motion[..., :1])], axis=-1)
  return {'input': x.astype(np.float32), 'target': target, 'conf': motion[..., 2:3].copy()}


def _corrupt(x: np.ndarray, rng: np.random.Generator, noise: transforms.SyntheticNoise | None,
             mask_ratio: float, mask_t_ratio: float) -> np.ndarray:
  """Detector noise (if any), then masks: official `augment2D` with `mask = (mask_ratio > 0 and
  mask_T_ratio > 0)` (train.py), so one ratio alone masks nothing."""
  if noise is not None:
    x = noise.add_noise(x, rng)
  if mask_ratio > 0 and mask_t_ratio > 0:
    x = transforms.add_mask(x, rng, mask_ratio, mask_t_ratio)
  return x


def input_xy_only(make_example: Callable[[dict, np.random.Generator], Example], record: dict,
                  rng: np.random.Generator) -> Example:
  """`make_example` with the confidence channel dropped from `input` (official `no_conf`).

  Bind it with `functools.partial(input_xy_only, make_example)`; the model then has dim_in 2.
  """
  example = make_example(record, rng)
  return {**example, 'input': example['input'][..., :2]}


@dataclasses.dataclass(frozen=True)
class Visit:
  """What an example function that keeps per-clip state across epochs gets (`Phase.visits`).

  The official action pipeline draws some augmentation once per clip and changes its stored clip
  in place on every visit (`random_move` writes through a view, per persistent DataLoader
  worker); both are replayed here from (seed, step) alone, so batches stay deterministic and
  resumable.
  """

  index: int  # the record's index in the phase's source
  clip_rng: np.random.Generator  # seeded by (seed, 4, index): the same draws on every visit
  # One generator per visit of this clip by its worker so far, oldest first, this visit last:
  # seeded by (seed, 3, step, row) of that visit (row: within the global batch). Empty when the
  # phase has no `workers`.
  moves: tuple[np.random.Generator, ...] = ()


@dataclasses.dataclass
class Phase:
  """A stream of clips that share one clip length and one loss kind."""

  name: str
  kind: str  # KIND_3D or KIND_2D
  source: Any  # len() + __getitem__ -> record dict
  make_example: Callable[[dict, np.random.Generator], Example]
  # fn(generator seeded by (seed, phase, epoch)) -> the epoch's record order (at least
  # steps x global batch indices, e.g. `mbjax.data.per_class.ClassBatchOrder`); None: a plain
  # shuffle of the source.
  order: Callable[[np.random.Generator], np.ndarray] | None = None
  # True: `make_example(record, rng, visit=Visit(...))`, for per-clip state across epochs.
  visits: bool = False
  # With `visits`: the official DataLoader workers (persistent, each with its own copy of the
  # data) whose in-place changes `Visit.moves` replays; batch b of an epoch goes to worker
  # b % workers, as a DataLoader hands them out. 0: no moves.
  workers: int = 0


class Curriculum:
  """Global step -> (epoch, phase, batch within the phase), for MotionBERT's schedule."""

  def __init__(self, phases_3d: Sequence[Phase], phases_2d: Sequence[Phase], *, epochs: int,
               curriculum_3d_epochs: int, global_batch: int):
    self.phases = list(phases_2d) + list(phases_3d)
    self.global_batch = global_batch
    ids_3d = list(range(len(phases_2d), len(self.phases)))
    ids_2d = list(range(len(phases_2d)))
    for phase in self.phases:
      if len(phase.source) < global_batch:
        raise ValueError(f'phase {phase.name!r} has {len(phase.source)} clips, fewer than one '
                         f'global batch of {global_batch}')
    self.segments: list[tuple[int, int, int]] = []  # (start_step, epoch, phase_id)
    step = 0
    self.epoch_starts: list[int] = []
    for epoch in range(epochs):
      self.epoch_starts.append(step)
      for pid in (ids_2d + ids_3d if epoch >= curriculum_3d_epochs else ids_3d):
        self.segments.append((step, epoch, pid))
        step += self.steps_in(pid)
    self.total_steps = step
    self._starts = [s[0] for s in self.segments]

  def steps_in(self, phase_id: int) -> int:
    return len(self.phases[phase_id].source) // self.global_batch  # official drop_last=False;
    # a partial last batch would add a new T x B shape to compile, so we drop it.

  def locate(self, step: int) -> tuple[int, int, int]:
    """(epoch, phase_id, batch index within the phase) of global `step`."""
    if not 0 <= step < self.total_steps:
      raise IndexError(f'step {step} outside the curriculum of {self.total_steps} steps')
    i = bisect.bisect_right(self._starts, step) - 1
    start, epoch, pid = self.segments[i]
    return epoch, pid, step - start

  def epoch_steps(self, epoch: int) -> int:
    """Steps of `epoch` (epochs differ once the 2D phases join the curriculum)."""
    ends = self.epoch_starts[1:] + [self.total_steps]
    return ends[epoch] - self.epoch_starts[epoch]

  def epoch_of(self, step: int) -> int:
    return bisect.bisect_right(self.epoch_starts, step) - 1

  def kind_of(self, step: int) -> str:
    return self.phases[self.locate(step)[1]].kind


class HostBatches:
  """Item `step` = this process's rows of the global batch of that step, as stacked arrays."""

  def __init__(self, curriculum: Curriculum, *, seed: int, process_index: int = 0,
               process_count: int = 1):
    if curriculum.global_batch % process_count:
      raise ValueError(f'global batch {curriculum.global_batch} is not divisible by '
                       f'{process_count} processes')
    self.curriculum = curriculum
    self.seed = seed
    self.process_index = process_index
    self.host_batch = curriculum.global_batch // process_count
    self._visit_tables: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

  def __len__(self) -> int:
    return self.curriculum.total_steps

  @functools.lru_cache(maxsize=8)
  def _permutation(self, phase_id: int, epoch: int) -> np.ndarray:
    phase = self.curriculum.phases[phase_id]
    rng = np.random.default_rng([self.seed, phase_id, epoch])
    if phase.order is not None:
      return np.asarray(phase.order(rng))
    return rng.permutation(len(phase.source))

  def indices(self, step: int) -> np.ndarray:
    """Record indices (within the phase's source) of this process's rows at `step`."""
    epoch, pid, b = self.curriculum.locate(step)
    G = self.curriculum.global_batch
    rows = self._permutation(pid, epoch)[b * G:(b + 1) * G]
    lo = self.process_index * self.host_batch
    return rows[lo:lo + self.host_batch]

  def __getitem__(self, step: int) -> Example:
    step = int(step)
    _, pid, _ = self.curriculum.locate(step)
    phase = self.curriculum.phases[pid]
    examples = []
    for row, index in enumerate(self.indices(step), start=self.process_index * self.host_batch):
      rng = np.random.default_rng([self.seed, 1, step, int(index)])
      try:
        record = phase.source[int(index)]
        if phase.visits:
          examples.append(phase.make_example(record, rng, visit=self.visit(step, row)))
        else:
          examples.append(phase.make_example(record, rng))
      except Exception as e:
        raise ValueError(f'phase {phase.name!r}, record {int(index)}: {e}') from e
    batch = {k: np.stack([ex[k] for ex in examples]) for k in examples[0]}
    batch['step'] = np.full((len(examples),), step, np.int32)
    return batch

  # ------------------------------------------------------------------------------------------
  # Per-clip state across epochs (Phase.visits): every visit of a clip, found from the orders.

  def _visit_table(self, phase_id: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(clip ids of the epoch's visited rows, sorted; their rows) of `phase_id` in `epoch`."""
    key = (phase_id, epoch)
    if key not in self._visit_tables:
      visited = self.curriculum.steps_in(phase_id) * self.curriculum.global_batch
      rows = np.asarray(self._permutation(phase_id, epoch))[:visited]
      sorter = np.argsort(rows, kind='stable').astype(np.int32)
      self._visit_tables[key] = (rows[sorter].astype(np.int32), sorter)
    return self._visit_tables[key]

  def visit_moves(self, step: int, row: int) -> list[tuple[int, int]]:
    """(step, row) of every visit of the clip at `row` (within the global batch) of `step` by its
    worker, oldest first and this one last (`Phase.workers`; [] for none)."""
    epoch, pid, b = self.curriculum.locate(step)
    workers = self.curriculum.phases[pid].workers
    if not workers:
      return []
    G = self.curriculum.global_batch
    index = np.int32(self._permutation(pid, epoch)[b * G + row])  # the tables' dtype: no casts
    here = (epoch, b * G + row)
    visits = []
    for start, seg_epoch, seg_pid in self.curriculum.segments:
      if seg_epoch > epoch:
        break
      if seg_pid != pid:
        continue
      clips, sorter = self._visit_table(pid, seg_epoch)
      lo, hi = clips.searchsorted(index, 'left'), clips.searchsorted(index, 'right')
      for position in sorted(sorter[lo:hi].tolist()):
        if (seg_epoch, position) > here:
          break
        if (position // G) % workers == b % workers:
          visits.append((start + position // G, position % G))
    return visits

  def visit(self, step: int, row: int) -> Visit:
    """The `Visit` of the clip at `row` (within the global batch) of `step`."""
    epoch, pid, b = self.curriculum.locate(step)
    index = int(self._permutation(pid, epoch)[b * self.curriculum.global_batch + row])
    moves = tuple(np.random.default_rng([self.seed, 3, s, r])
                  for s, r in self.visit_moves(step, row))
    return Visit(index=index, clip_rng=np.random.default_rng([self.seed, 4, index]), moves=moves)


def make_iterator(batches: HostBatches, *, num_workers: int = 0, prefetch: int = 2,
                  start: int = 0):
  """A checkpointable grain iterator over host batches (worker processes if num_workers > 0).

  `start` positions a fresh iterator at a step (used when a checkpoint's iterator state was saved
  under another process count); normally grain's own saved state does that.
  """
  ds = grain.MapDataset.source(batches)
  if start:
    ds = ds[start:]
  ds = ds.to_iter_dataset(
      grain.ReadOptions(num_threads=1 if num_workers else 2, prefetch_buffer_size=prefetch))
  if num_workers > 0:
    from absl import flags
    if not flags.FLAGS.is_parsed():  # grain workers read absl flags; plain-argparse programs
      flags.FLAGS.mark_as_parsed()  # (the benches, tests) have not parsed them
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return iter(ds)
