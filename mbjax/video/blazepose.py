"""MediaPipe BlazePose (GHUM 3D, full) run on every person: its two TFLite models through LiteRT.

The models are the ones MediaPipe Pose ships in its wheels up to 0.10.21 (`pose_detection.tflite`,
`pose_landmark_full.tflite`, Apache-2.0); later wheels ship none and the old wheels pin
protobuf<5, so mediapipe itself is never imported: `pip install --no-deps mediapipe==0.10.21`
puts the files on disk and `model_paths` finds them through the package's file list (or in
`$MBJAX_BLAZEPOSE_DIR`). LiteRT (`ai-edge-litert`) runs them.

What MediaPipe's pose graph does for one person, done here for each (numbers from its graphs):
- Detector: the frame letterboxed to 224x224 in [-1, 1]; 2254 SSD anchors; score sigmoid >= 0.5;
  weighted NMS at IoU 0.3. A detection's keypoint 0 is the mid-hip, keypoint 1 a point whose
  distance to it is half the body's extent.
- Region: a square centred on the mid-hip, side 2 x that distance x 1.25, rotated so that
  hip -> keypoint 1 points up.
- Landmarks: the region warped to 256x256 in [0, 1]; 39 landmarks (x, y, z, visibility and
  presence logits); the first 33 are the MediaPipe Pose landmarks, 33 and 34 give the next
  frame's region the way the detector's keypoints 0 and 1 do (MediaPipe's own tracking), and a
  pose flag (probability that a person is in the region) ends a person lost.
Unlike MediaPipe we find small people too: the detector also runs on overlapping tiles
(`tile`), and every person found is followed, not only the best one. No landmark smoothing
(the lifting model smooths).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import math
import os

import numpy as np
from PIL import Image

ENV_DIR = 'MBJAX_BLAZEPOSE_DIR'
DETECTOR_FILE = 'pose_detection.tflite'
LANDMARK_FILE = 'pose_landmark_full.tflite'
DETECTOR_SIDE, LANDMARK_SIDE = 224, 256
NUM_LANDMARKS = 33  # MediaPipe Pose; 33 and 34 of the model's 39 are for the next region
MIN_DETECTION_SCORE = 0.5
NMS_IOU = 0.3
MIN_POSE_FLAG = 0.5  # MediaPipe's min_tracking_confidence default
ROI_SCALE = 1.25


def model_paths() -> tuple[str, str]:
  """(detector, landmark) .tflite paths: $MBJAX_BLAZEPOSE_DIR, else the installed mediapipe
  wheel's files (found from its file list; mediapipe is not imported)."""
  folder = os.environ.get(ENV_DIR)
  if folder:
    paths = tuple(os.path.join(folder, f) for f in (DETECTOR_FILE, LANDMARK_FILE))
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
      raise ModuleNotFoundError(f'${ENV_DIR}={folder}: no {", ".join(missing)}', name='mediapipe')
    return paths
  try:
    files = importlib.metadata.files('mediapipe') or []
  except importlib.metadata.PackageNotFoundError:
    files = []
  found = {f.name: str(f.locate()) for f in files if f.name in (DETECTOR_FILE, LANDMARK_FILE)}
  if len(found) != 2:
    raise ModuleNotFoundError(
        f'the BlazePose models {DETECTOR_FILE} and {LANDMARK_FILE} are not installed: they come '
        f'with the mediapipe==0.10.21 wheel, or set ${ENV_DIR} to a folder holding them',
        name='mediapipe')
  return found[DETECTOR_FILE], found[LANDMARK_FILE]


def _interpreter(path: str, threads: int):
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_path=path, num_threads=threads)
  interpreter.allocate_tensors()
  return interpreter


@functools.lru_cache(maxsize=1)
def anchors() -> np.ndarray:
  """(2254, 2) anchor centres (x, y) in [0, 1] of the detector (MediaPipe's SsdAnchorsCalculator
  with 5 layers, strides 8, 16, 32, 32, 32, fixed size, 2 anchors a cell per layer)."""
  out = []
  strides = (8, 16, 32, 32, 32)
  layer = 0
  while layer < len(strides):
    last = layer
    while last < len(strides) and strides[last] == strides[layer]:
      last += 1
    per_cell = 2 * (last - layer)
    side = math.ceil(DETECTOR_SIDE / strides[layer])
    y, x = np.meshgrid(np.arange(side), np.arange(side), indexing='ij')
    centres = np.stack([(x + 0.5) / side, (y + 0.5) / side], axis=-1).reshape(-1, 1, 2)
    out.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
    layer = last
  return np.concatenate(out).astype(np.float64)


@dataclasses.dataclass(frozen=True)
class Region:
  """A rotated square of the frame in pixels: centre, side, rotation (radians)."""

  cx: float
  cy: float
  side: float
  rotation: float

  @classmethod
  def from_points(cls, centre, scale_point) -> 'Region':
    """MediaPipe's AlignmentPointsRects + RectTransformation: side 2 |p1 - p0| x 1.25, rotated
    so that p0 -> p1 points up."""
    (x0, y0), (x1, y1) = centre, scale_point
    rotation = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
    rotation = rotation - 2 * math.pi * math.floor((rotation + math.pi) / (2 * math.pi))
    side = 2 * math.hypot(x1 - x0, y1 - y0) * ROI_SCALE
    return cls(float(x0), float(y0), float(side), float(rotation))

  def to_frame(self, uv: np.ndarray) -> np.ndarray:
    """(..., 2) positions in the region as fractions of its side -> frame pixels."""
    x, y = uv[..., 0] - 0.5, uv[..., 1] - 0.5
    c, s = math.cos(self.rotation), math.sin(self.rotation)
    return np.stack([self.cx + self.side * (c * x - s * y),
                     self.cy + self.side * (s * x + c * y)], axis=-1)

  def crop(self, image: Image.Image, out: int) -> np.ndarray:
    """(out, out, 3) float32 in [0, 1]: the region resampled (bilinear, zeros outside)."""
    c, s = math.cos(self.rotation), math.sin(self.rotation)
    k = self.side / out
    x0 = self.cx + self.side * (-0.5 * c + 0.5 * s)
    y0 = self.cy + self.side * (-0.5 * s - 0.5 * c)
    data = (k * c, -k * s, x0, k * s, k * c, y0)
    patch = image.transform((out, out), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    return np.asarray(patch, np.float32) / 255.0


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
  """IoU of one (4,) x0, y0, x1, y1 box with (N, 4) boxes."""
  w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
  h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
  inter = np.clip(w, 0, None) * np.clip(h, 0, None)
  area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
  return inter / np.maximum(area(box) + area(others) - inter, 1e-12)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray,
                 threshold: float = NMS_IOU):
  """MediaPipe's weighted NMS: each kept detection is the score-weighted mean of those that
  overlap it by more than `threshold`, with the best score. Returns (boxes, points, scores)."""
  order = np.argsort(-scores, kind='stable')
  kept_b, kept_p, kept_s = [], [], []
  while len(order):
    overlap = iou(boxes[order[0]], boxes[order]) > threshold
    group = order[overlap]
    w = scores[group][:, None]
    kept_b.append((boxes[group] * w).sum(0) / w.sum())
    kept_p.append((points[group] * w[..., None]).sum(0) / w.sum())
    kept_s.append(scores[order[0]])
    order = order[~overlap]
  if not kept_s:
    return np.zeros((0, 4)), np.zeros((0,) + points.shape[1:]), np.zeros(0)
  return np.stack(kept_b), np.stack(kept_p), np.asarray(kept_s)


class BlazePose:
  """The two models, loaded once: `detect` finds people, `landmarks` poses one region.

  Args:
    threads: LiteRT threads per model.
    paths: (detector, landmark) .tflite files; default `model_paths()`.
  """

  def __init__(self, threads: int = 1, paths: tuple[str, str] | None = None):
    detector, landmark = paths or model_paths()
    self._detector = _interpreter(detector, threads)
    self._landmark = _interpreter(landmark, threads)
    self._det_in = self._detector.get_input_details()[0]['index']
    self._det_out = [d['index'] for d in self._detector.get_output_details()]
    self._lm_in = self._landmark.get_input_details()[0]['index']
    outs = {d['name']: d['index'] for d in self._landmark.get_output_details()}
    self._lm_out, self._flag_out = outs['Identity'], outs['Identity_1']

  def _run_detector(self, image: Image.Image, box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections in the `box` (x0, y0, x1, y1) of the frame, letterboxed like MediaPipe's;
    (boxes (N, 4) px, keypoints (N, 4, 2) px, scores (N,)) before NMS."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    scale = DETECTOR_SIDE / max(w, h)
    rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.zeros((DETECTOR_SIDE, DETECTOR_SIDE, 3), np.float32)
    px, py = (DETECTOR_SIDE - rw) // 2, (DETECTOR_SIDE - rh) // 2
    part = image.crop(box).resize((rw, rh), Image.Resampling.BILINEAR)
    canvas[py:py + rh, px:px + rw] = np.asarray(part, np.float32) / 127.5 - 1.0
    self._detector.set_tensor(self._det_in, canvas[None])
    self._detector.invoke()
    raw, logits = (self._detector.get_tensor(i)[0] for i in self._det_out)
    scores = 1 / (1 + np.exp(-np.clip(logits[:, 0].astype(np.float64), -100, 100)))
    keep = scores >= MIN_DETECTION_SCORE
    raw, scores, a = raw[keep].astype(np.float64), scores[keep], anchors()[keep]
    centre = raw[:, :2] / DETECTOR_SIDE + a
    half = raw[:, 2:4] / DETECTOR_SIDE / 2
    points = raw[:, 4:12].reshape(-1, 4, 2) / DETECTOR_SIDE + a[:, None]
    to_px = lambda u: (u * DETECTOR_SIDE - (px, py)) / scale + (x0, y0)  # noqa: E731
    boxes = np.concatenate([to_px(centre - half), to_px(centre + half)], axis=-1)
    return boxes, to_px(points), scores

  def detect(self, image: Image.Image, tile: int | None = None) -> list[tuple[Region, float]]:
    """People in the frame: (region, score) each, best first. With `tile`, also in overlapping
    tiles of that side (stride half a tile), for people too small in the whole frame."""
    boxes = [(0, 0, image.width, image.height)]
    if tile and tile < max(image.size):
      step = tile // 2
      xs = range(0, max(1, image.width - tile) + step, step)
      ys = range(0, max(1, image.height - tile) + step, step)
      boxes += [(min(x, image.width - tile), min(y, image.height - tile),
                 min(x, image.width - tile) + tile, min(y, image.height - tile) + tile)
                for y in ys for x in xs]
    found = [self._run_detector(image, b) for b in dict.fromkeys(boxes)]
    b, p, s = (np.concatenate(parts) for parts in zip(*found))
    b, p, s = weighted_nms(b, p, s)
    return [(Region.from_points(p[i, 0], p[i, 1]), float(s[i])) for i in range(len(s))]

  def landmarks(self, image: Image.Image, region: Region) -> tuple[np.ndarray, float, Region]:
    """(33, 5) landmarks in frame pixels (x, y, z, visibility, presence; z in the region's pixel
    scale), the pose flag, and the region for the next frame."""
    self._landmark.set_tensor(self._lm_in, region.crop(image, LANDMARK_SIDE)[None])
    self._landmark.invoke()
    raw = self._landmark.get_tensor(self._lm_out)[0].reshape(-1, 5).astype(np.float64)
    flag = float(self._landmark.get_tensor(self._flag_out).ravel()[0])
    xy = region.to_frame(raw[:, :2] / LANDMARK_SIDE)
    out = np.concatenate([xy, raw[:, 2:3] * region.side / LANDMARK_SIDE,
                          1 / (1 + np.exp(-raw[:, 3:5]))], axis=-1)
    return out[:NUM_LANDMARKS], flag, Region.from_points(out[33, :2], out[34, :2])
