"""AMASS 243-frame 3D motion clips for pretraining (official AMASS preprocessing).

Source: the official intermediate `amass_joints_h36m_60.pkl`, a pickled list with one array per
sequence of H36M-17 joints (17, T, 3) in metres at 60 fps, Z up. Each sequence becomes (T, 17, 3)
in the official camera-like frame: p @ [[1, 0, 0], [0, 0, 1], [0, -1, 0]] (row vectors, i.e. y
takes -z and z takes y), times 0.298 to bring metres to the scale of the normalised H36M clips.

Clips: 243 frames, stride 81, with the official `split_clips` rule over all kept sequences in file
order (see `mbjax.data.transforms.split_clips`): tails that do not fill a window are dropped,
shorter sequences are resampled to 243 frames, a short last sequence is dropped. Sequences that
are not (17, T, 3) arrays or hold NaN/Inf are skipped with a reason in the build report (the
official script assumes clean input).
"""

from __future__ import annotations

import pathlib
from typing import Iterator

import numpy as np

from mbjax.data import source_files
from mbjax.data.report import BuildReport
from mbjax.data.transforms import split_clips

NAME = 'amass'
SPLITS = ('train',)
CLIP_LEN = 243
STRIDE = 81
OPTION_RANGES = {'seed': (0, None), 'stride': (1, None)}  # checked before the build
NUM_JOINTS = 17
FEATURES = {
    'joints3d': ((CLIP_LEN, NUM_JOINTS, 3), 'float32'),
    'source': ((), 'str'),       # index of the sequence in the source list
    'start_frame': ((), 'int32'),  # first frame of the clip in its sequence
}
# Z-up world -> y-down camera-like axes, applied to row vectors (official preprocessing).
Z_UP_TO_CAMERA = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], np.float32)
SCALE = 0.298

SKIP_NOT_ARRAY = 'not a numeric (17, T, 3) array'
SKIP_JOINTS = f'wrong joint count (expected {NUM_JOINTS} joints on axis 0)'
SKIP_EMPTY = 'no frames'
SKIP_NONFINITE = 'NaN or Inf in joints'
SKIP_SHORT_LAST = (f'last sequence shorter than {CLIP_LEN} frames '
                   '(official split_clips drops it)')


def amass_to_camera(joints: np.ndarray) -> np.ndarray:
  """(17, T, 3) Z-up metres -> (T, 17, 3) float32 in the official training frame and scale."""
  joints = np.asarray(joints, np.float32).transpose(1, 0, 2)
  return joints @ Z_UP_TO_CAMERA * SCALE


def _skip_reason(item) -> str | None:
  """Why a list entry is not a usable sequence, or None if it is."""
  try:
    array = np.asarray(item, dtype=np.float64)
  except (TypeError, ValueError):
    return SKIP_NOT_ARRAY
  if array.ndim != 3 or array.shape[2] != 3:
    return SKIP_NOT_ARRAY
  if array.shape[0] != NUM_JOINTS:
    return SKIP_JOINTS
  if array.shape[1] == 0:
    return SKIP_EMPTY
  if not np.isfinite(array).all():
    return SKIP_NONFINITE
  return None


def read_sequences(path: pathlib.Path) -> list:
  """The pickled list of (17, T, 3) arrays; ValueError naming the file if it is not a list."""
  path = pathlib.Path(path)
  data = source_files.read_pickle(path, 'the AMASS joints pickle (amass_joints_h36m_60.pkl)')
  if not isinstance(data, (list, tuple)):
    raise ValueError(f'{path}: expected a pickled list of (17, T, 3) arrays, '
                     f'found {type(data).__name__}')
  return list(data)


def generate(source: pathlib.Path, split: str, report: BuildReport, *, seed: int = 0,
             stride: int = STRIDE) -> Iterator[tuple[str, dict]]:
  """Yields (key, clip) for the 'train' split; see the module docstring and FEATURES.

  Args:
    source: the official `amass_joints_h36m_60.pkl`.
    split: 'train'.
    report: counts written clips and skipped sequences (by reason).
    seed: seeds the resampling of short sequences (the official code draws it unseeded).
    stride: frames between clip starts.
  """
  if split not in SPLITS:
    raise ValueError(f'amass has only the split(s) {SPLITS}, not {split!r}')
  sequences = read_sequences(source)
  kept = []  # indices into `sequences`
  for index, item in enumerate(sequences):
    reason = _skip_reason(item)
    if reason is None:
      kept.append(index)
    else:
      report.skipped(split, reason)
  lengths = np.array([np.shape(sequences[i])[1] for i in kept], np.int64)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  frame_sequence = np.repeat(np.arange(len(kept), dtype=np.int32), lengths)
  clips = split_clips(frame_sequence, CLIP_LEN, stride, np.random.default_rng(seed))

  produced = set()
  for rows in clips:
    position = int(frame_sequence[rows[0]])
    index = kept[position]
    frames = rows - offsets[position]
    produced.add(position)
    joints = amass_to_camera(np.asarray(sequences[index])[:, frames])
    report.written(split)
    yield f'{index:06d}_{int(frames[0]):06d}', {
        'joints3d': joints,
        'source': str(index),
        'start_frame': np.int32(frames[0]),
    }
  if len(produced) < len(kept):
    report.skipped(split, SKIP_SHORT_LAST, len(kept) - len(produced))
