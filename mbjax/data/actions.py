"""The user's own action clips: one folder per label -> an action dataset in the NTU record layout.

A dataset module (`mbjax.data.writer`), registered as `data_prep/actions.py`:

  python -m data_prep.build actions --source my_clips --data_dir data/tfds [--opt format=coco]
      [--opt test_fraction=0.2] [--opt seed=0] [--opt size=(1920, 1080)]

Source layout: `my_clips/<label>/<clip>`, one folder per label (the label names, sorted, are the
classes 0..K-1, stored as `label_names` in the dataset's metadata.json); a clip is any keypoint
input `mbjax.data.keypoint_files` reads: an AlphaPose or COCO / MMPose results JSON, a folder of
OpenPose or MMPose per-frame JSON files, MediaPipe JSON, or a `.npy` / `.npz` array (T, J, 2|3)
or (P, T, J, 2|3), whose skeleton `--opt format=coco|halpe|h36m|body25|mediapipe` names.
Each clip becomes one record as `data_prep/ntu.py` writes them (`mbjax.data.action_clips`): the
two persons with the most detected frames, x, y by the longer frame side in [-1, 1], confidence.

Splits: 'train' and 'test'. When the source holds exactly two folders `train/` and `test/`, each
with label folders, those are the splits (labels: the train folder's; a test label must be one of
them), and test_fraction / seed are unused. Otherwise, per label: its clips in a permutation
seeded by (seed, label index), the first round(test_fraction x count) to test (at least one of
each split when the label has two or more clips and test_fraction is in (0, 1)). A clip in which
nobody is detected is skipped and reported; an empty detection file or any other unreadable clip
stops the build with an error naming it.
"""

from __future__ import annotations

import pathlib
from typing import Iterator

import numpy as np

from mbjax.data import action_clips
from mbjax.data.report import BuildReport

NAME = 'actions'
SPLITS = ('train', 'test')
FEATURES = action_clips.FEATURES
OPTION_RANGES = {'test_fraction': (0, 1), 'seed': (0, None), 'size': (1, None)}
CLIP_SUFFIXES = ('.json', '.npy', '.npz')
SKIP_NOBODY = 'no person with at least 4 detected joints'


def _folders(path: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith('.'))


def given_splits(source: pathlib.Path) -> bool:
  """Whether `source` holds its own `train/` and `test/` folders (module docstring)."""
  return {p.name for p in _folders(pathlib.Path(source))} == set(SPLITS)


def label_folders(source: pathlib.Path) -> list[pathlib.Path]:
  """The label folders of `source` (of `source/train` when it has its own splits), sorted by
  name, hidden ones left out."""
  source = pathlib.Path(source)
  if not source.is_dir():
    raise ValueError(f'{source}: expected a folder with one sub-folder of clips per label')
  if given_splits(source):
    source = source / 'train'
  folders = _folders(source)
  if len(folders) < 2:
    raise ValueError(f'{source}: found {len(folders)} label folder(s); an action dataset needs '
                     'at least two labels, one folder of clips each')
  return folders


def clips_of(folder: pathlib.Path) -> list[pathlib.Path]:
  """The clips of one label folder, sorted: keypoint files and per-frame JSON folders."""
  clips = sorted(p for p in folder.iterdir() if not p.name.startswith('.') and (
      p.is_dir() or p.suffix in CLIP_SUFFIXES))
  if not clips:
    raise ValueError(f'{folder}: label {folder.name!r} has no clips (expected '
                     f'{", ".join(CLIP_SUFFIXES)} files or per-frame JSON folders)')
  return clips


def test_clips(count: int, fraction: float, seed: int, label: int) -> set[int]:
  """Indices of the test clips among `count` clips of one label."""
  n_test = int(round(fraction * count))
  if count >= 2 and 0 < fraction < 1:
    n_test = min(max(n_test, 1), count - 1)
  order = np.random.default_rng([seed, label]).permutation(count)
  return set(order[:n_test].tolist())


def _split_clips(source: pathlib.Path, split: str, test_fraction: float, seed: int
                 ) -> Iterator[tuple[int, pathlib.Path, pathlib.Path]]:
  """(label, label folder, clip) of `split`, label by label, clips in name order."""
  folders = label_folders(source)
  if given_splits(source):
    names = [f.name for f in folders]
    for folder in _folders(pathlib.Path(source) / split):
      if folder.name not in names:
        raise ValueError(f'{folder}: label {folder.name!r} is not a label of '
                         f'{pathlib.Path(source) / "train"} ({", ".join(names)})')
      for clip in clips_of(folder):
        yield names.index(folder.name), folder, clip
    return
  for label, folder in enumerate(folders):
    clips = clips_of(folder)
    held = test_clips(len(clips), test_fraction, seed, label)
    for index, clip in enumerate(clips):
      if (index in held) == (split == 'test'):
        yield label, folder, clip


def metadata(source: pathlib.Path, **options) -> dict:
  """`label_names`: the classes 0..K-1 of the dataset (its label folders, sorted)."""
  del options  # the labels depend on the folders only
  return {'label_names': [p.name for p in label_folders(source)]}


def generate(source: pathlib.Path, split: str, report: BuildReport, format: str | None = None,
             test_fraction: float = 0.2, seed: int = 0,
             size: tuple[int, int] | None = None) -> Iterator[tuple[str, dict]]:
  """Yields ('<label>/<clip>', record) of `split`, label by label, clips in name order.

  Args:
    source: the folder of label folders (or of `train/` and `test/` folders of them).
    split: 'train' or 'test'.
    report: counts written and skipped clips.
    format: the skeleton of `.npy` / `.npz` clips (JSON formats know theirs).
    test_fraction: fraction of each label's clips in 'test'.
    seed: seeds the per-label split.
    size: (width, height) of the frames, when the files do not give it.
  """
  if split not in SPLITS:
    raise ValueError(f'{NAME}: unknown split {split!r}; expected one of {SPLITS}')
  for label, folder, clip in _split_clips(source, split, test_fraction, seed):
    key = f'{folder.name}/{clip.name}'
    try:
      skeleton = format if clip.suffix in ('.npy', '.npz') else None  # JSON knows its own
      keypoint, _ = action_clips.read_clip(clip, skeleton=skeleton, size=size)
    except action_clips.NoPersonError:
      report.skipped(split, SKIP_NOBODY)
      continue
    report.written(split)
    yield key, {'keypoint': keypoint, 'label': np.int64(label), 'orig_label': np.int64(label),
                'frame_dir': key, 'total_frames': np.int64(keypoint.shape[1])}
