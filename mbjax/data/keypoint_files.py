"""2D keypoint files -> `Detections`: one row per detected person per frame, in the file's skeleton.

Readers (`read` picks one from the path and the content):
- AlphaPose results / COCO keypoint results JSON: a list of `{image_id, keypoints: [x, y, score]
  * J, score, idx | track_id}`; `image_id` a frame number or an image name holding one ('12.jpg');
  J = 26 (Halpe), 17 (COCO), 136 (Halpe-136: its first 26) or 133 (COCO-WholeBody: its first 17).
- MMPose predictions JSON: a list of `{frame_id, instances: [{keypoints: [[x, y]] * J,
  keypoint_scores: [s] * J, bbox_score, track_id?}]}` (MMPoseInferencer on a video), or
  `{meta_info, instance_info: <that list>}` (MMPose demo scripts).
- A folder of per-frame JSON files, the frame number the last number in each file name: OpenPose
  (`{people: [{person_id, pose_keypoints_2d: [x, y, c] * 25}]}`, BODY_25; COCO-18 is not
  accepted) or MMPose per-image predictions (a list of instances as above).
- MediaPipe Pose JSON: a list of frames (or `{frames, width, height}`); a frame is null / [] (no
  person), a list of 33 landmarks `{x, y, z?, visibility?}`, a list of such lists (several
  persons) or `{landmark(s) | pose_landmarks: ...}` wrapping either. x, y are MediaPipe's
  normalised image coordinates (converted with the frame size) unless some |x| or |y| exceeds
  `NORMALISED_LIMIT` (then they are read as pixels); confidence = visibility (1 if absent).
- `.npy` / `.npz` arrays (T, J, C) or (P, T, J, C) (P persons), C = 2 (x, y; confidence 1) or 3
  (x, y, confidence); MediaPipe arrays may also have C = 4 (x, y, z, visibility) or 5 (+ presence).
  `.npz`: `keypoints` (or its only array), optional `frames` (T,) and `size` (width, height).
  A person-frame that is all NaN is a missing detection (reported); any other NaN is an error.

Missing joints are confidence 0 (OpenPose and COCO write 0, 0, 0). Every error names the file and
the detection / frame / field at fault.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re

import numpy as np

from mbjax.data import skeletons, wild

# Joint counts a file may hold -> (skeleton, joints kept from the front of the list).
JOINT_COUNTS = {17: 'coco', 26: 'halpe', 25: 'body25', 33: 'mediapipe', 133: 'coco', 136: 'halpe'}
ARRAY_FORMATS = tuple(skeletons.SKELETONS)  # --format words
NORMALISED_LIMIT = 4.0  # MediaPipe landmarks beyond +-4 image sizes can only be pixels


@dataclasses.dataclass
class Detections:
  """Every detection of one input, in file order.

  Attributes:
    source: the file or folder read.
    skeleton: a `skeletons.SKELETONS` key: the joint order of `keypoints`.
    frames: (N,) int64 frame number of each detection.
    persons: (N,) int64 track ids from the file, or None when it has none.
    keypoints: (N, J, 3) float64 x, y in pixels, confidence (0: not detected).
    scores: (N,) float64 detection scores (mean keypoint confidence where the file has none).
    size: (width, height) of the frames when the file gives it, else None.
    notes: what was read in a way worth reporting (missing detections, coordinate units).
    boxes: (N, 4) float64 x0, y0, x1, y1 person boxes in pixels where the source has them (a
      detector run by mbjax.video), else None.
  """

  source: str
  skeleton: str
  frames: np.ndarray
  persons: np.ndarray | None
  keypoints: np.ndarray
  scores: np.ndarray
  size: tuple[int, int] | None = None
  notes: list[str] = dataclasses.field(default_factory=list)
  boxes: np.ndarray | None = None


# ----------------------------------------------------------------------------------------------
# Shared checks.


def skeleton_for(joints: int, given: str | None, what: str) -> tuple[str, int]:
  """(skeleton, joints to keep) for a file holding `joints` joints per person."""
  if given is not None:
    if given not in skeletons.SKELETONS:
      raise ValueError(f'--format={given!r}: expected one of {", ".join(ARRAY_FORMATS)}')
    want = len(skeletons.SKELETONS[given][0])
    if joints == want or JOINT_COUNTS.get(joints) == given:
      return given, want
    raise ValueError(f'{what}: {joints} joints per person, but --format={given} has {want}')
  if joints not in JOINT_COUNTS:
    raise ValueError(f'{what}: {joints} joints per person; expected '
                     f'{", ".join(f"{n} ({s})" for n, s in JOINT_COUNTS.items())}')
  skeleton = JOINT_COUNTS[joints]
  return skeleton, len(skeletons.SKELETONS[skeleton][0])


def _check_keypoints(kp: np.ndarray, what: str) -> np.ndarray:
  if not np.all(np.isfinite(kp)):
    raise ValueError(f'{what}: keypoints hold NaN or Inf (mark an undetected joint with '
                     'confidence 0 instead)')
  if np.any(kp[..., 2] < 0):
    raise ValueError(f'{what}: negative keypoint confidence {kp[..., 2].min()} (is channel 2 a '
                     'depth? pass x, y or x, y, confidence)')
  return kp


def _numbers(value, what: str, field: str) -> np.ndarray:
  try:
    return np.asarray(value, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise ValueError(f'{what}: {field} must hold numbers') from e


def _score(value, kp: np.ndarray, what: str) -> float:
  if value is None:
    return float(kp[:, 2].mean())
  if isinstance(value, list) and value:  # MMPose writes bbox_score as a one-element list
    value = value[0]
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ValueError(f'{what}: score must be a number, got {value!r}')
  return float(value)


def _load_json(path: pathlib.Path):
  try:
    with open(path) as f:
      text = f.read()
    if not text.strip():
      raise ValueError(f'{path}: the file is empty')
    return json.loads(text)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f'{path}: cannot read JSON: {e}') from e


def _frame_of_name(path: pathlib.Path) -> int:
  numbers = re.findall(r'\d+', path.stem)
  if not numbers:
    raise ValueError(f'{path}: no frame number in the file name (expected e.g. '
                     'video_000000000012_keypoints.json)')
  return int(numbers[-1])


class _Rows:
  """Collects detections, then checks that their skeletons agree and builds `Detections`."""

  def __init__(self, source, given: str | None):
    self.source, self.given = str(source), given
    self.frames, self.persons, self.kps, self.scores, self.skeleton = [], [], [], [], None
    self.notes: list[str] = []

  def add(self, frame: int, person, kp: np.ndarray, score, what: str) -> None:
    skeleton, keep = skeleton_for(len(kp), self.given, what)
    if self.skeleton is None:
      self.skeleton = skeleton
    elif skeleton != self.skeleton:
      raise ValueError(f'{what}: {len(kp)} joints ({skeleton}), but earlier detections are '
                       f'{self.skeleton}')
    kp = _check_keypoints(kp[:keep], what)
    self.frames.append(frame)
    self.persons.append(person)
    self.kps.append(kp)
    self.scores.append(_score(score, kp, what))

  def build(self, size=None) -> Detections:
    if not self.frames:
      raise ValueError(f'{self.source}: no detections in the file')
    given = [p is not None for p in self.persons]
    if any(given) and not all(given):
      first = given.index(not given[0])
      raise ValueError(f'{self.source}: detection {first} has no track id but detection 0 '
                       'does (or the reverse): every detection needs one, or none')
    return Detections(self.source, self.skeleton, np.asarray(self.frames, np.int64),
                      np.asarray(self.persons, np.int64) if all(given) else None,
                      np.stack(self.kps), np.asarray(self.scores), size, self.notes)


# ----------------------------------------------------------------------------------------------
# JSON detection lists: AlphaPose, COCO results, MMPose.


def _track_id(det: dict, what: str):
  if 'idx' in det:
    return wild.person_id(what, det['idx'])
  value = det.get('track_id')
  if value is None:
    return None
  if isinstance(value, bool) or not isinstance(value, int):
    raise ValueError(f'{what}: track_id must be an integer, got {value!r}')
  return value


def _read_results(path: pathlib.Path, data: list, given) -> Detections:
  """AlphaPose results / COCO keypoint results."""
  rows = _Rows(path, given)
  for index, det in enumerate(data):
    what = f'{path}: detection {index}'
    if not isinstance(det, dict) or 'keypoints' not in det or 'image_id' not in det:
      raise ValueError(f'{what}: expected an object with image_id and keypoints')
    what = f'{what} (image_id {det["image_id"]!r})'
    flat = _numbers(det['keypoints'], what, 'keypoints')
    if flat.ndim != 1 or len(flat) % 3:
      raise ValueError(f'{what}: keypoints must be a flat list of x, y, score triples, got '
                       f'shape {flat.shape}')
    rows.add(wild.frame_number(what, det['image_id']), _track_id(det, what),
             flat.reshape(-1, 3), det.get('score'), what)
  return rows.build()


def _mmpose_instance(rows: _Rows, frame: int, inst, what: str) -> None:
  if not isinstance(inst, dict) or 'keypoints' not in inst:
    raise ValueError(f'{what}: expected an instance object with keypoints')
  xy = _numbers(inst['keypoints'], what, 'keypoints')
  if xy.ndim != 2 or xy.shape[1] < 2:
    raise ValueError(f'{what}: keypoints must be a list of [x, y] pairs, got shape {xy.shape}')
  scores = _numbers(inst.get('keypoint_scores', np.ones(len(xy))), what, 'keypoint_scores')
  if scores.shape != (len(xy),):
    raise ValueError(f'{what}: keypoint_scores has shape {scores.shape}, expected ({len(xy)},)')
  kp = np.concatenate([xy[:, :2], scores[:, None]], axis=1)
  rows.add(frame, _track_id(inst, what), kp, inst.get('bbox_score'), what)


def _read_mmpose(path: pathlib.Path, frames: list, given) -> Detections:
  rows = _Rows(path, given)
  for index, item in enumerate(frames):
    if not isinstance(item, dict) or 'frame_id' not in item or 'instances' not in item:
      raise ValueError(f'{path}: entry {index}: expected an object with frame_id and instances')
    frame = item['frame_id']
    if isinstance(frame, bool) or not isinstance(frame, int):
      raise ValueError(f'{path}: entry {index}: frame_id must be an integer, got {frame!r}')
    for k, inst in enumerate(item['instances'] or ()):
      _mmpose_instance(rows, frame, inst, f'{path}: frame {frame} instance {k}')
  return rows.build()


# ----------------------------------------------------------------------------------------------
# MediaPipe Pose JSON.


def _landmark_lists(frame, what: str) -> list:
  """The persons of one MediaPipe frame, each a list of landmark dicts."""
  if isinstance(frame, dict):
    for key in ('pose_landmarks', 'landmarks', 'landmark'):
      if key in frame:
        return _landmark_lists(frame[key], what)
    raise ValueError(f'{what}: expected landmarks, pose_landmarks or landmark in the object')
  if not frame:
    return []
  if not isinstance(frame, list):
    raise ValueError(f'{what}: expected a list of landmarks, got {type(frame).__name__}')
  if all(isinstance(p, dict) and 'x' in p for p in frame):
    return [frame]
  return [p for person in frame for p in _landmark_lists(person, what)]


def _landmarks(person: list, what: str) -> np.ndarray:
  try:
    return np.array([[p['x'], p['y'], p.get('visibility', 1.0)] for p in person], np.float64)
  except (KeyError, TypeError, ValueError) as e:
    raise ValueError(f'{what}: every landmark needs numeric x and y ({e})') from e


def _read_mediapipe(path: pathlib.Path, data, given, size) -> Detections:
  frames, file_size = data, None
  if isinstance(data, dict):
    frames = data.get('frames')
    if 'width' in data and 'height' in data:
      file_size = (int(data['width']), int(data['height']))
  if not isinstance(frames, list):
    raise ValueError(f'{path}: expected a list of MediaPipe frames (or {{"frames": [...]}})')
  rows = _Rows(path, given or 'mediapipe')
  for t, frame in enumerate(frames):
    for k, person in enumerate(_landmark_lists(frame, f'{path}: frame {t}')):
      what = f'{path}: frame {t} person {k}'
      rows.add(t, None, _landmarks(person, what), None, what)
  dets = rows.build(file_size)
  _to_pixels(dets, size or file_size)
  return dets


def _to_pixels(dets: Detections, size) -> None:
  """MediaPipe's normalised x, y (fractions of width and height) -> pixels, in place."""
  if np.abs(dets.keypoints[..., :2]).max() > NORMALISED_LIMIT:
    dets.notes.append('MediaPipe coordinates read as pixels (values beyond +-4)')
    return
  if size is None:
    raise ValueError(f'{dets.source}: MediaPipe landmarks are normalised to the image; pass '
                     '--size WxH (the frame size) to convert them to pixels')
  dets.keypoints[..., :2] *= np.asarray(size, np.float64)
  dets.notes.append(f'MediaPipe coordinates normalised, scaled by {size[0]}x{size[1]}')


# ----------------------------------------------------------------------------------------------
# Per-frame JSON folders: OpenPose, MMPose per image.


def _read_folder(path: pathlib.Path, given) -> Detections:
  files = sorted(path.glob('*.json'))
  if not files:
    raise ValueError(f'{path}: no *.json files in the folder (expected OpenPose or MMPose '
                     'per-frame predictions)')
  numbered = sorted((_frame_of_name(f), f) for f in files)
  for (a, fa), (b, fb) in zip(numbered, numbered[1:]):
    if a == b:
      raise ValueError(f'{path}: {fa.name} and {fb.name} are both frame {a}')
  rows = _Rows(path, given)
  for frame, file in numbered:
    data = _load_json(file)
    if isinstance(data, dict) and 'people' in data:
      _openpose_people(rows, frame, data['people'], file)
    elif isinstance(data, list):
      for k, inst in enumerate(data):
        _mmpose_instance(rows, frame, inst, f'{file}: instance {k}')
    else:
      raise ValueError(f'{file}: expected OpenPose {{"people": [...]}} or an MMPose list of '
                       'instances')
  return rows.build()


def _openpose_people(rows: _Rows, frame: int, people, file: pathlib.Path) -> None:
  for k, person in enumerate(people or ()):
    what = f'{file}: person {k}'
    if not isinstance(person, dict) or 'pose_keypoints_2d' not in person:
      raise ValueError(f'{what}: expected pose_keypoints_2d')
    flat = _numbers(person['pose_keypoints_2d'], what, 'pose_keypoints_2d')
    if flat.ndim != 1 or len(flat) != 75:
      raise ValueError(f'{what}: pose_keypoints_2d has {flat.size} numbers; expected 75 '
                       '(BODY_25: 25 joints x [x, y, confidence])')
    pid = person.get('person_id', -1)
    pid = pid[0] if isinstance(pid, list) and pid else pid
    track = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid >= 0 else None
    rows.add(frame, track, flat.reshape(25, 3), None, what)
  return None


# ----------------------------------------------------------------------------------------------
# Arrays.


def _array_channels(x: np.ndarray, skeleton: str, what: str) -> np.ndarray:
  """(..., J, C) -> (..., J, 3) x, y, confidence."""
  c = x.shape[-1]
  if c == 2:
    return np.concatenate([x, np.where(np.isnan(x[..., :1]), np.nan, 1.0)], axis=-1)
  if c == 3:
    return x
  if skeleton == 'mediapipe' and c in (4, 5):
    return x[..., [0, 1, 3]]  # x, y, (z dropped), visibility
  raise ValueError(f'{what}: {c} channels per joint; expected 2 (x, y) or 3 (x, y, confidence)'
                   + (' or MediaPipe 4 / 5' if skeleton == 'mediapipe' else ''))


def _load_array(path: pathlib.Path):
  try:
    if path.suffix == '.npz':
      with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
      if 'keypoints' not in data and len(data) != 1:
        raise ValueError(f'{path}: expected a `keypoints` array (arrays: {sorted(data)})')
      kp = data.pop('keypoints') if 'keypoints' in data else data.popitem()[1]
      return kp, data.get('frames'), data.get('size')
    return np.load(path, allow_pickle=False), None, None
  except (OSError, ValueError, EOFError) as e:
    if str(path) in str(e):
      raise
    raise ValueError(f'{path}: cannot read the array: {e}') from e


def _read_array(path: pathlib.Path, given, size) -> Detections:
  kp, frames, file_size = _load_array(path)
  kp = np.asarray(kp, np.float64)
  if kp.ndim == 3:
    kp = kp[None]
  if kp.ndim != 4 or kp.size == 0:
    raise ValueError(f'{path}: expected keypoints (T, J, C) or (P, T, J, C), got {kp.shape}')
  if given is None and kp.shape[2] == 17:
    raise ValueError(f'{path}: 17 joints per person can be COCO or H36M order; pass '
                     '--format coco or --format h36m')
  skeleton, keep = skeleton_for(kp.shape[2], given, str(path))
  kp = _array_channels(kp[:, :, :keep], skeleton, str(path))
  n_persons, n_frames = kp.shape[:2]
  frames = np.arange(n_frames) if frames is None else np.asarray(frames, np.int64)
  if frames.shape != (n_frames,):
    raise ValueError(f'{path}: frames has shape {frames.shape}, expected ({n_frames},)')
  rows = _Rows(path, skeleton)
  missing = 0
  for p in range(n_persons):
    for t in range(n_frames):
      if np.all(np.isnan(kp[p, t])):
        missing += 1
        continue
      bad = np.argwhere(~np.isfinite(kp[p, t]))
      if len(bad):
        raise ValueError(f'{path}: person {p} frame {t} joint {bad[0][0]} channel {bad[0][1]}: '
                         'NaN or Inf (a frame of all NaN is read as missing; mark one undetected '
                         'joint with confidence 0)')
      rows.add(int(frames[t]), p, kp[p, t], None, f'{path}: person {p} frame {t}')
  if missing:
    rows.notes.append(f'{missing} person-frames all NaN: read as missing')
  file_size = None if file_size is None else tuple(int(v) for v in np.ravel(file_size))
  dets = rows.build(file_size)
  if skeleton == 'mediapipe':
    _to_pixels(dets, size or file_size)
  return dets


# ----------------------------------------------------------------------------------------------
# Dispatch.


def _read_json_file(path: pathlib.Path, given, size) -> Detections:
  data = _load_json(path)
  if isinstance(data, dict) and 'instance_info' in data:
    return _read_mmpose(path, data['instance_info'], given)
  if isinstance(data, dict) and 'frames' in data:
    return _read_mediapipe(path, data, given, size)
  if not isinstance(data, list):
    raise ValueError(f'{path}: expected a JSON list of detections or frames, got '
                     f'{type(data).__name__}')
  if not data:
    raise ValueError(f'{path}: no detections in the file (an empty list)')
  first = next((d for d in data if d), None)
  if isinstance(first, dict) and 'image_id' in first:
    return _read_results(path, data, given)
  if isinstance(first, dict) and 'frame_id' in first:
    return _read_mmpose(path, data, given)
  return _read_mediapipe(path, data, given, size)


def read(path: str | pathlib.Path, skeleton: str | None = None,
         size: tuple[int, int] | None = None) -> Detections:
  """The detections of a keypoint file or folder (formats in the module docstring).

  Args:
    path: a `.json`, `.npy` or `.npz` file, or a folder of per-frame JSON files.
    skeleton: the `--format` word; None reads it from the joint count (17 joints in an array
      must be named: COCO and H36M both have 17).
    size: (width, height) of the frames, for MediaPipe's normalised coordinates.
  """
  path = pathlib.Path(path)
  if path.is_dir():
    return _read_folder(path, skeleton)
  if not path.is_file():
    raise FileNotFoundError(f'{path}: no such file or folder')
  if path.suffix in ('.npy', '.npz'):
    return _read_array(path, skeleton, size)
  return _read_json_file(path, skeleton, size)
