"""InstaVariety 2D motion cut into 81-frame clips for pretraining (official `InstaVDataset2D`).

Source: a folder with `motion_all.npy` (N, 17, 3) float32, H36M-17 2D poses already normalised by
the official `tools/convert_insta.py` (x, y, confidence; concatenated over videos), and `id_all.npy`
(N,) the video id of each row.

Clips follow the official `split_clips(id_all, 81, 27)`: within each run of equal ids, windows of 81
rows start every 27 rows; a run too short for any window is resampled to 81 frames, but only if its
id has not been cut before and it is not the last run of the file (the official loop never
resamples the last run). A clip is kept if the root of its first frame is visible (official
`valid_threshold=0.0`). The official loader applies `crop_scale(scale_range=[0.25, 1])` to each clip
at load time; that stays in the data pipeline.
"""

from __future__ import annotations

import pathlib
from typing import Iterator

import numpy as np

from mbjax.data import transforms
from mbjax.data.report import BuildReport

NAME = 'instavariety'
SPLITS = ('train',)
CLIP_LEN = 81
STRIDE = 27
OPTION_RANGES = {'seed': (0, None)}  # checked before the build
FEATURES = {
    'joint_2d': ((CLIP_LEN, 17, 3), 'float32'),
    'source': ((), 'str'),
    'start_frame': ((), 'int64'),
}

SKIP_ROOT = 'root (joint 0) not visible in the first frame'
SKIP_LAST_SHORT = f'last video of id_all shorter than {CLIP_LEN} frames (official split_clips)'
SKIP_REPEATED_SHORT = (f'run shorter than {CLIP_LEN} frames of a video id already cut earlier '
                       '(official split_clips)')


def split_clips(ids: np.ndarray, rng: np.random.Generator, clip_len: int = CLIP_LEN,
                stride: int = STRIDE) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
  """Clips of the official `split_clips`, as (start row, row indices (clip_len,), skip reason).

  Rows are None (and a reason is given) for a short run the official rule does not emit.
  """
  n = len(ids)
  bounds = np.flatnonzero(ids[1:] != ids[:-1]) + 1
  starts = np.concatenate([[0], bounds])
  ends = np.concatenate([bounds, [n]])
  saved = set()
  for a, b in zip(starts.tolist(), ends.tolist()):
    vid = ids[a].item() if isinstance(ids[a], np.generic) else ids[a]
    windows = list(range(a, b - clip_len + 1, stride))
    for st in windows:
      yield st, np.arange(st, st + clip_len), None
    if windows:
      saved.add(vid)
    elif b == n:
      yield a, None, SKIP_LAST_SHORT
    elif vid in saved:
      yield a, None, SKIP_REPEATED_SHORT
    else:
      saved.add(vid)
      yield a, a + transforms.resample_indices(b - a, clip_len, rng), None


def _load(path: pathlib.Path, allow_pickle: bool) -> np.ndarray:
  try:
    return np.load(path, mmap_mode=None if allow_pickle else 'r', allow_pickle=allow_pickle)
  except (OSError, ValueError, EOFError) as e:
    raise ValueError(f'{path}: cannot read InstaVariety array: {e}') from e


def generate(source: pathlib.Path, split: str, report: BuildReport,
             seed: int = 0) -> Iterator[tuple[str, dict]]:
  """Yields (`<video id>@<start row>`, example) for each kept clip.

  `start_frame` is the clip's first row in `motion_all.npy`. `seed` drives the random resampling
  of short videos (the official code uses the unseeded global numpy RNG).
  """
  if split not in SPLITS:
    raise ValueError(f'instavariety: unknown split {split!r}; expected one of {SPLITS}')
  source = pathlib.Path(source)
  motion_path, id_path = source / 'motion_all.npy', source / 'id_all.npy'
  motion = _load(motion_path, allow_pickle=False)  # memory-mapped: the full file is ~0.5 GB
  ids = _load(id_path, allow_pickle=True)  # ids may be stored as an object array of strings
  if motion.ndim != 3 or motion.shape[1:] != (17, 3):
    raise ValueError(f'{motion_path}: expected shape (N, 17, 3), got {motion.shape}')
  if ids.ndim != 1 or len(ids) != len(motion):
    raise ValueError(f'{id_path}: expected shape ({len(motion)},) to match {motion_path.name}, '
                     f'got {ids.shape}')
  if len(ids) == 0:
    raise ValueError(f'{motion_path}: no frames')

  rng = np.random.default_rng(seed)
  for start, rows, reason in split_clips(ids, rng):
    vid = str(ids[start])
    if rows is None:
      report.skipped(split, reason)
      continue
    clip = np.asarray(motion[rows], dtype=np.float32)
    if not np.all(np.isfinite(clip)):
      bad = int(rows[np.flatnonzero(~np.isfinite(clip).all(axis=(1, 2)))[0]])
      raise ValueError(f'{motion_path}: row {bad} (video {vid}) contains NaN or Inf')
    if not clip[0, 0, 2] > 0.0:
      report.skipped(split, SKIP_ROOT)
      continue
    report.written(split)
    yield f'{vid}@{start}', {'joint_2d': clip, 'source': vid, 'start_frame': np.int64(start)}
