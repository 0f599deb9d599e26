"""In-the-wild AlphaPose (Halpe-26) detections as 2D motion clips: pixels + detector score only.

Source: an AlphaPose results json, or a folder searched for `*alphapose-results.json` (at any
depth; if there is none, the `*.json` files of the folder itself). The json is a list of detections
`{'image_id': '12.jpg', 'category_id': 1, 'keypoints': [78 numbers: 26 Halpe joints x (x, y,
score)], 'score': float, 'box': [...], 'idx': person id (an int, or a list whose first element is
the id)}`, in pixels, possibly several persons per frame. data_prep/assets/wild holds a real one
(boxing2).

Per file, detections are grouped by person and ordered by the integer in `image_id` (the video
frame number). A person's track spans its first to its last frame; frames inside that span without
a detection of the person (AlphaPose writes nothing for a frame where it finds nobody, and trackers
lose people for a few frames) are filled by linear interpolation of x and y between the nearest
detections before and after, with confidence 0 so masks and losses ignore them. Two detections of
one person in one frame keep the one with the higher detection score. Joints are converted with the
official `halpe2h36m`. A track shorter than `clip_len` frames is skipped; a longer one is cut into
windows of `clip_len` frames every `stride` frames (frames after the last full window are unused,
as in the official `split_clips`).

Coordinates stay in pixels. `img_width` / `img_height` record the video resolution when it is
given (option `img_size`), for `normalize_screen`; they are 0 when unknown, and the pipeline then
normalises each clip by its own box (`crop_scale`), as the official in-the-wild script does by
default. The official script (`infer_wild.py`, `WildDetDataset`) instead reads every detection of
a file, in file order, as one sequence (optionally only person `--focus`) and cuts it into
consecutive non-overlapping 243-frame clips for inference; we keep persons apart for training.
"""

from __future__ import annotations

import json
import pathlib
import re
import types
from typing import Iterator

import numpy as np

from mbjax.data.report import BuildReport
from mbjax.data.skeletons import NUM_HALPE, halpe_to_h36m

NAME = 'wild'
SPLITS = ('train',)
CLIP_LEN = 81
STRIDE = 27
OPTION_RANGES = {'clip_len': (1, None), 'stride': (1, None)}  # checked before a build

SKIP_SHORT = 'track shorter than clip_len frames (after filling gaps)'
_RESULTS_SUFFIX = 'alphapose-results'


def features(clip_len: int = CLIP_LEN) -> dict:
  """FEATURES for clips of `clip_len` frames."""
  return {
      'joint_2d': ((clip_len, 17, 3), 'float32'),
      'source': ((), 'str'),
      'start_frame': ((), 'int64'),
      'img_width': ((), 'int64'),
      'img_height': ((), 'int64'),
  }


FEATURES = features(CLIP_LEN)


# ----------------------------------------------------------------------------------------------
# Screen coordinates.


def _check_size(width, height, fn: str) -> tuple[float, float]:
  if not (np.isscalar(width) and np.isscalar(height) and width > 0 and height > 0):
    raise ValueError(f'{fn}: width and height must be positive numbers, got {width!r} x '
                     f'{height!r}')
  return float(width), float(height)


def _float_copy(x: np.ndarray, fn: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim < 1 or x.shape[-1] < 2:
    raise ValueError(f'{fn}: expected (..., C) with C >= 2 (x, y[, confidence]), got {x.shape}')
  return np.array(x, dtype=np.result_type(x.dtype, np.float32))


def normalize_screen(x: np.ndarray, width: float, height: float) -> np.ndarray:
  """Pixels -> screen coordinates: x, y -> xy / width * 2 - [1, height / width].

  The official H36M 2D normalisation (`datareader_h36m`, `normalize_screen_coordinates`): x spans
  [-1, 1] and y keeps the aspect ratio. For portrait or square video (width <= height) it equals
  the official in-the-wild `--pixel` input (`normalize_wild_pixels`); for landscape video the two
  differ by the factor height / width.

  Args:
    x: (..., C) with C >= 2: x, y in pixels, then channels kept as they are (confidence).
    width, height: the video resolution in pixels.

  Returns:
    (..., C) float32 (float64 if x is float64).
  """
  w, h = _check_size(width, height, 'normalize_screen')
  out = _float_copy(x, 'normalize_screen')
  out[..., :2] = out[..., :2] / w * 2 - np.array([1.0, h / w], out.dtype)
  return out


def normalize_wild_pixels(x: np.ndarray, width: float, height: float) -> np.ndarray:
  """Pixels -> official in-the-wild `--pixel` input: (xy - [width, height] / 2) / (min side / 2).

  As `read_input(vid_size=...)` of the official `dataset_wild.py`: centred on the image, scaled by
  half the shorter image side.

  Args:
    x: (..., C) with C >= 2: x, y in pixels, then channels kept as they are (confidence).
    width, height: the video resolution in pixels.

  Returns:
    (..., C) float32 (float64 if x is float64).
  """
  w, h = _check_size(width, height, 'normalize_wild_pixels')
  out = _float_copy(x, 'normalize_wild_pixels')
  out[..., :2] = (out[..., :2] - np.array([w / 2, h / 2], out.dtype)) / (min(w, h) / 2)
  return out


# ----------------------------------------------------------------------------------------------
# AlphaPose files.


def alphapose_files(source: str | pathlib.Path) -> list[pathlib.Path]:
  """The AlphaPose results files of `source` (a json file, or a folder), sorted."""
  source = pathlib.Path(source)
  if source.is_file():
    return [source]
  if source.is_dir():
    files = sorted(source.rglob(f'*{_RESULTS_SUFFIX}.json')) or sorted(source.glob('*.json'))
    if files:
      return files
  raise ValueError(f'{source}: no AlphaPose results (expected a json file, or a folder with '
                   f'*{_RESULTS_SUFFIX}.json files below it or *.json files in it)')


def video_name(path: str | pathlib.Path) -> str:
  """The video a results file is for: its stem without `alphapose-results` (else the folder name).

  `boxing2_alphapose-results.json` -> 'boxing2';
  `clips/boxing2/alphapose-results.json` -> 'boxing2'.
  """
  path = pathlib.Path(path)
  stem = path.stem
  if stem.endswith(_RESULTS_SUFFIX):
    stem = stem[:-len(_RESULTS_SUFFIX)].rstrip('_-. ')
  return stem or path.parent.name or path.stem


def _read_json(path: pathlib.Path) -> list:
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f'{path}: cannot read AlphaPose results json: {e}') from e
  if not isinstance(data, list):
    raise ValueError(f'{path}: expected a json list of AlphaPose detections, got '
                     f'{type(data).__name__}')
  return data


def frame_number(what: str, image_id) -> int:
  """The frame number of an image id: an int, or the last number in the name ('12.jpg' -> 12)."""
  if isinstance(image_id, int) and not isinstance(image_id, bool):
    return image_id
  if isinstance(image_id, str):
    numbers = re.findall(r'\d+', pathlib.PurePath(image_id).stem)
    if numbers:
      return int(numbers[-1])
  raise ValueError(f'{what}: image_id must be a frame number or an image name holding one '
                   f'(like "12.jpg"), got {image_id!r}')


def person_id(what: str, idx) -> int:
  """AlphaPose `idx`: the person id, or a list whose first element is the id."""
  first = idx[0] if isinstance(idx, list) and idx else idx
  if isinstance(first, bool) or not isinstance(first, int):
    raise ValueError(f'{what}: idx must be an integer person id or a list starting with one, '
                     f'got {idx!r}')
  return first


def _detection(path: pathlib.Path, index: int, det) -> tuple[int, int, float, np.ndarray]:
  """One detection -> (person id, frame number, detection score, Halpe keypoints (26, 3))."""
  what = f'{path}: detection {index}'
  if not isinstance(det, dict):
    raise ValueError(f'{what}: expected an object, got {type(det).__name__}')
  missing = [k for k in ('image_id', 'keypoints', 'idx') if k not in det]
  if missing:
    raise ValueError(f'{what}: missing {missing}')
  what = f'{what} (image_id {det["image_id"]!r})'
  frame = frame_number(what, det['image_id'])
  person = person_id(what, det['idx'])
  try:
    kp = np.asarray(det['keypoints'], dtype=np.float64)
    score = float(det.get('score', 0.0))
  except (TypeError, ValueError) as e:
    raise ValueError(f'{what}: keypoints and score must be numbers') from e
  if kp.shape != (NUM_HALPE * 3,):
    raise ValueError(f'{what}: expected {NUM_HALPE * 3} keypoint numbers ({NUM_HALPE} Halpe '
                     f'joints x [x, y, score]), got shape {kp.shape}')
  if not (np.all(np.isfinite(kp)) and np.isfinite(score)):
    raise ValueError(f'{what}: keypoints or score contain NaN or Inf')
  return person, frame, score, kp.reshape(NUM_HALPE, 3)


def fill_missing_frames(frames: np.ndarray, keypoints: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
  """Fills the frames missing between a track's detections.

  Args:
    frames: (T,) strictly increasing frame numbers.
    keypoints: (T, J, 3) x, y, confidence at those frames.

  Returns:
    frames (T',) = frames[0], ..., frames[-1] (int64) and keypoints (T', J, 3) in the dtype of
    `keypoints`: detected frames unchanged; missing frames with x, y linearly interpolated between
    the nearest detections and confidence 0.
  """
  frames = np.asarray(frames, dtype=np.int64)
  keypoints = np.asarray(keypoints)
  if frames.ndim != 1 or len(frames) == 0 or keypoints.shape[:1] != frames.shape:
    raise ValueError(f'fill_missing_frames: expected frames (T,) with T > 0 and keypoints '
                     f'(T, J, 3), got {frames.shape} and {keypoints.shape}')
  if np.any(np.diff(frames) <= 0):
    raise ValueError('fill_missing_frames: frames must be strictly increasing')
  full = np.arange(frames[0], frames[-1] + 1, dtype=np.int64)
  if len(full) == len(frames):
    return frames, keypoints
  before = np.searchsorted(frames, full, side='right') - 1  # last detection at or before
  after = np.minimum(before + 1, len(frames) - 1)
  gap = (frames[after] - frames[before]).astype(np.float64)
  weight = np.where(gap > 0, (full - frames[before]) / np.maximum(gap, 1), 0.0)[:, None, None]
  kp = keypoints.astype(np.float64)
  out = kp[before] * (1 - weight) + kp[after] * weight  # weight 0 on detected frames: exact
  detected = full == frames[before]
  out[~detected, :, 2] = 0.0
  return full, out.astype(keypoints.dtype)


def read_alphapose(path: str | pathlib.Path, fill_gaps: bool = True
                   ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
  """The persons of one AlphaPose results json as H36M-17 tracks.

  Args:
    path: the json file.
    fill_gaps: fill the frames missing inside each track (see `fill_missing_frames`); if False,
      only the detected frames are returned.

  Returns:
    person id -> (frames (T,) int64 increasing frame numbers, keypoints (T, 17, 3) float32 H36M-17
    [x, y, score] in pixels), persons in increasing id order.
  """
  path = pathlib.Path(path)
  best: dict[int, dict[int, tuple[float, np.ndarray]]] = {}  # person -> frame -> (score, kp)
  for index, det in enumerate(_read_json(path)):
    person, frame, score, kp = _detection(path, index, det)
    track = best.setdefault(person, {})
    if frame not in track or score > track[frame][0]:
      track[frame] = (score, kp)
  tracks = {}
  for person in sorted(best):
    frames = np.array(sorted(best[person]), dtype=np.int64)
    halpe = np.stack([best[person][f][1] for f in frames.tolist()])
    keypoints = halpe_to_h36m(halpe).astype(np.float32)
    tracks[person] = fill_missing_frames(frames, keypoints) if fill_gaps else (frames, keypoints)
  return tracks


# ----------------------------------------------------------------------------------------------
# Dataset module.


def clip_starts(length: int, clip_len: int = CLIP_LEN, stride: int = STRIDE) -> range:
  """Starts of the `clip_len`-frame windows, every `stride` frames, in a track of `length`."""
  return range(0, length - clip_len + 1, stride)


def _check_int(name: str, value) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f'wild: {name} must be a positive integer, got {value!r}')
  return int(value)


def _image_size(img_size) -> tuple[int, int]:
  if img_size is None:
    return 0, 0
  try:
    width, height = (int(v) for v in img_size)
  except (TypeError, ValueError) as e:
    raise ValueError(f'wild: img_size must be (width, height) in pixels, got {img_size!r}') from e
  if width < 1 or height < 1:
    raise ValueError(f'wild: img_size must be positive, got {img_size!r}')
  return width, height


def _generate(source: pathlib.Path, split: str, report: BuildReport, clip_len: int, stride: int,
              img_size) -> Iterator[tuple[str, dict]]:
  width, height = _image_size(img_size)
  root = pathlib.Path(source)
  for path in alphapose_files(root):
    name = video_name(path)
    file_key = path.relative_to(root).as_posix() if root.is_dir() else path.name
    for person, (frames, keypoints) in read_alphapose(path).items():
      if len(frames) < clip_len:
        report.skipped(split, SKIP_SHORT)
        continue
      for start in clip_starts(len(frames), clip_len, stride):
        report.written(split)
        yield f'{file_key}/{person}@{frames[start]}', {
            'joint_2d': keypoints[start:start + clip_len],
            'source': f'{name}/{person}',
            'start_frame': np.int64(frames[start]),
            'img_width': np.int64(width),
            'img_height': np.int64(height),
        }


def _generator_for(features_len: int):
  """`generate` for a module whose FEATURES hold `features_len`-frame clips."""

  def generate(source: pathlib.Path, split: str, report: BuildReport,
               clip_len: int = features_len, stride: int = STRIDE,
               img_size: tuple[int, int] | None = None) -> Iterator[tuple[str, dict]]:
    """Yields (`<file>/<person>@<start frame>`, example) for every clip of every person's track.

    Args:
      source: an AlphaPose results json, or a folder of them (see `alphapose_files`).
      split: 'train'.
      report: build report; counts tracks shorter than `clip_len` (SKIP_SHORT).
      clip_len: frames per clip; must match this module's FEATURES (`module_for(clip_len=...)`
        gives a module for another length).
      stride: frames between the starts of consecutive clips of a track.
      img_size: (width, height) of the videos in pixels, stored with each clip; None if unknown.
    """
    if split not in SPLITS:
      raise ValueError(f'wild: unknown split {split!r}; expected one of {SPLITS}')
    clip_len, stride = _check_int('clip_len', clip_len), _check_int('stride', stride)
    if clip_len != features_len:
      raise ValueError(f'wild: clip_len={clip_len} but this module stores {features_len}-frame '
                       f'clips; build with mbjax.data.wild.module_for(clip_len={clip_len}) (e.g. '
                       f'writer.make_builder(wild.module_for(clip_len={clip_len}), ...))')
    _image_size(img_size)  # fail before any file is read
    return _generate(source, split, report, clip_len, stride, img_size)

  return generate


generate = _generator_for(CLIP_LEN)


# `writer.build` passes the build options to `module_for` to get FEATURES (clip_len).
OPTION_DEPENDENT_FEATURES = True


def module_for(clip_len: int = CLIP_LEN, **_) -> types.SimpleNamespace:
  """A source module (NAME, SPLITS, FEATURES, generate) storing clips of `clip_len` frames.

  Other build options are accepted and ignored here; they go to `generate`.
  """
  clip_len = _check_int('clip_len', clip_len)
  return types.SimpleNamespace(NAME=NAME, SPLITS=SPLITS, FEATURES=features(clip_len),
                               generate=_generator_for(clip_len))
