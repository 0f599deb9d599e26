"""PoseTrack18 tracks as 30-frame 2D motion clips for pretraining (official `PoseTrackDataset2D`).

Source: the PoseTrack18 annotation folder, i.e. `posetrack_data/annotations/` (or its `train/`
subfolder), holding one COCO-style json per video with `images` and `annotations`; each annotation
has `track_id`, `image_id` and `keypoints` (51 numbers: x, y, visibility for the 17 PoseTrack
joints).

Official rules, applied per file: group annotations by `track_id` in file order, keep tracks with at
least 30 annotations, take the first 30, drop a track whose visibility sum over the 30x17 joints is
<= 306, convert to H36M-17, zero every channel of joints with confidence 0, drop a track whose root
(joint 0) is not visible in all 30 frames. Each drop is a skip reason in the build report.

Coordinates stay in pixels. The official code normalises with `crop_scale(scale_range=[0.25, 1])`
once, at dataset construction, before the H36M conversion; we crop in the data pipeline instead so
each epoch draws a fresh crop (the crop box then spans the H36M joints, which leave out the ears).
"""

from __future__ import annotations

import json
import pathlib
from typing import Iterator

import numpy as np

from mbjax.data import skeletons
from mbjax.data.report import BuildReport

NAME = 'posetrack'
SPLITS = ('train',)
CLIP_LEN = 30
MIN_VISIBLE_SUM = 306  # official "valid joint number" threshold: skip when the sum is <= 306
FEATURES = {
    'joint_2d': ((CLIP_LEN, 17, 3), 'float32'),
    'source': ((), 'str'),
    'track_id': ((), 'int64'),
    'img_width': ((), 'int64'),
    'img_height': ((), 'int64'),
}

SKIP_SHORT = f'track has fewer than {CLIP_LEN} annotations'
SKIP_FEW_VISIBLE = f'visibility sum over the first {CLIP_LEN} frames <= {MIN_VISIBLE_SUM}'
SKIP_ROOT = f'root (joint 0) not visible in all {CLIP_LEN} frames'


def annotation_files(source: pathlib.Path, split: str) -> list[pathlib.Path]:
  """The sorted `*.json` files of `split` under a PoseTrack18 annotation folder."""
  source = pathlib.Path(source)
  candidates = (source / split, source / 'annotations' / split,
                source / 'posetrack_data' / 'annotations' / split, source)
  for folder in candidates:
    files = sorted(folder.glob('*.json')) if folder.is_dir() else []
    if files:
      return files
  tried = ', '.join(str(c) for c in candidates)
  raise ValueError(f'{source}: no PoseTrack18 *.json annotation files for split {split!r} '
                   f'(looked in {tried})')


def _read_json(path: pathlib.Path) -> dict:
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f'{path}: cannot read PoseTrack18 json: {e}') from e
  if not isinstance(data, dict) or not isinstance(data.get('annotations'), list):
    raise ValueError(f'{path}: expected a json object with an "annotations" list')
  return data


def _image_sizes(path: pathlib.Path, data: dict) -> dict:
  """image id -> (width, height) for the images that give both (PoseTrack18 files usually don't)."""
  sizes = {}
  for image in data.get('images') or []:
    if isinstance(image, dict) and 'id' in image and 'width' in image and 'height' in image:
      try:
        sizes[image['id']] = (int(image['width']), int(image['height']))
      except (TypeError, ValueError) as e:
        raise ValueError(f'{path}: image {image["id"]}: width/height must be integers, got '
                         f'{image["width"]!r} x {image["height"]!r}') from e
  return sizes


def _keypoints(path: pathlib.Path, index: int, annot: dict) -> np.ndarray:
  """The (17, 3) keypoints of one annotation; missing keypoints read as a frame with none seen."""
  what = f'{path}: annotation {index} (id {annot.get("id")}, track {annot.get("track_id")})'
  raw = annot.get('keypoints')
  if raw is None or (isinstance(raw, list) and not raw):
    # Deliberate: the official loader would crash here; a frame with no visible joint keeps the
    # track's frames consecutive and fails the visibility filters if it falls in the first 30.
    return np.zeros((17, 3))
  try:
    kp = np.asarray(raw, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise ValueError(f'{what}: keypoints must be numbers') from e
  if kp.shape != (51,):
    raise ValueError(f'{what}: expected 51 keypoint numbers (17 joints x [x, y, visibility]), '
                     f'got shape {kp.shape}')
  if not np.all(np.isfinite(kp)):
    raise ValueError(f'{what}: keypoints contain NaN or Inf')
  return kp.reshape(17, 3)


def _tracks(path: pathlib.Path, data: dict) -> dict:
  """track_id -> list of (keypoints (17, 3), image_id), both in file order."""
  tracks: dict = {}
  for index, annot in enumerate(data['annotations']):
    if not isinstance(annot, dict) or 'track_id' not in annot:
      raise ValueError(f'{path}: annotation {index}: expected an object with a "track_id"')
    track_id = annot['track_id']
    if isinstance(track_id, bool) or not isinstance(track_id, int):
      raise ValueError(f'{path}: annotation {index} (id {annot.get("id")}): track_id must be an '
                       f'integer, got {track_id!r}')
    tracks.setdefault(track_id, []).append((_keypoints(path, index, annot), annot.get('image_id')))
  return tracks


def track_to_clip(poses: np.ndarray, report: BuildReport | None = None,
                  split: str = 'train') -> np.ndarray | None:
  """Official filters + conversion for one track's first 30 poses.

  Args:
    poses: (30, 17, 3) PoseTrack-17 [x, y, visibility] in pixels.
    report: where to count a skip (optional).
    split: split name for the report.

  Returns:
    (30, 17, 3) float32 H36M-17 clip, joints with zero confidence zeroed; None if a filter drops it.
  """
  if np.sum(poses[:, :, 2]) <= MIN_VISIBLE_SUM:
    if report is not None:
      report.skipped(split, SKIP_FEW_VISIBLE)
    return None
  clip = skeletons.posetrack_to_h36m(poses)
  clip[clip[:, :, 2] == 0] = 0
  if np.sum(clip[:, 0, 2]) < CLIP_LEN:  # the root is needed for frame-wise root-relative targets
    if report is not None:
      report.skipped(split, SKIP_ROOT)
    return None
  return clip.astype(np.float32)


def generate(source: pathlib.Path, split: str, report: BuildReport) -> Iterator[tuple[str, dict]]:
  """Yields (`<file stem>/<track_id>`, example) for every PoseTrack18 track passing the filters."""
  if split not in SPLITS:
    raise ValueError(f'posetrack: unknown split {split!r}; expected one of {SPLITS}')
  for path in annotation_files(source, split):
    data = _read_json(path)
    sizes = _image_sizes(path, data)
    for track_id, frames in _tracks(path, data).items():
      if len(frames) < CLIP_LEN:
        report.skipped(split, SKIP_SHORT)
        continue
      clip = track_to_clip(np.stack([kp for kp, _ in frames[:CLIP_LEN]]), report, split)
      if clip is None:
        continue
      width, height = sizes.get(frames[0][1], (0, 0))
      report.written(split)
      yield f'{path.stem}/{track_id}', {
          'joint_2d': clip,
          'source': path.stem,
          'track_id': np.int64(track_id),
          'img_width': np.int64(width),
          'img_height': np.int64(height),
      }
