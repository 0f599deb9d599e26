"""Identities for detections without track ids: frame-by-frame association by OKS or box IoU.

  ids, notes = tracker.assign(dets, tracker.TrackerOptions(metric='oks', threshold=0.3))

Frames are visited in increasing frame number, the detections of a frame in file order. Each open
track predicts its pose in the frame at constant velocity from its last two detections (the mean
per-frame displacement of the joints detected in both; a track with one detection, or with
`velocity=False`, stays at its last detected pose). Similarity of a prediction and a detection:
- 'oks': COCO object keypoint similarity, the mean over the joints detected (confidence > 0) in
  both poses of exp(-d^2 / (2 s^2 k^2)), d the joint distance in pixels, k = 2 sigma (COCO's
  per-joint sigmas for joints named as in COCO-17, `DEFAULT_SIGMA` for the others), s^2 the
  object area: the larger of the two boxes around the detected joints (COCO uses the ground
  truth's segment area; the keypoint box is what a detection file has). No joint in common: 0.
- 'iou': intersection over union of the two boxes around the detected joints.
Detections are assigned to tracks by the Hungarian method (`scipy.optimize.linear_sum_assignment`)
on 1 - similarity; a pair below `threshold` is no match, and an unmatched detection starts a new
track. A track unmatched for more than `max_gap` frames is closed: a later detection of that
person starts a new id. Ids are 0, 1, ... in order of first appearance (new tracks of a frame
in file order). Deterministic: no randomness, and where costs tie the older tracks and the
earlier detections in the file are matched first (a tie among as many tracks as detections,
e.g. two identical poses, goes the same way on every run). A frame's duplicate detection of one
person starts a (short) track of its own: no pose NMS here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import optimize

from mbjax.data import skeletons
from mbjax.data.keypoint_files import Detections

METRICS = ('oks', 'iou')
DEFAULT_THRESHOLDS = {'oks': 0.3, 'iou': 0.3}
DEFAULT_MAX_GAP = 10  # a third of a second at 30 fps; longer gaps would be interpolated blindly
# COCO-17 keypoint sigmas (the COCO keypoint evaluation's), by joint name.
COCO_SIGMAS = dict(zip(skeletons.COCO_JOINTS, (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079,
                                               0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087,
                                               0.087, 0.089, 0.089)))
DEFAULT_SIGMA = 0.07  # joints COCO does not name (neck, pelvis, toes...): about COCO's mean sigma
MIN_AREA = 1.0  # px^2: the object area of a pose with fewer than two distinct detected joints
_FORBIDDEN = 1e6  # cost of a pair below the threshold (dropped after the assignment)
_TIE = 1e-9  # cost per row / column index: equal costs prefer older tracks, earlier detections


@dataclasses.dataclass(frozen=True)
class TrackerOptions:
  """How detections without track ids become tracks (the CLI's --track_* flags).

  Attributes:
    metric: 'oks' (object keypoint similarity) or 'iou' (keypoint box IoU).
    threshold: the least similarity of a match; None: `DEFAULT_THRESHOLDS[metric]`.
    max_gap: frames a track may go unmatched and still continue.
    velocity: match against the constant-velocity prediction (else the last detected pose).
  """

  metric: str = 'oks'
  threshold: float | None = None
  max_gap: int = DEFAULT_MAX_GAP
  velocity: bool = True

  def __post_init__(self):
    if self.metric not in METRICS:
      raise ValueError(f'--track_metric={self.metric!r}: expected one of {", ".join(METRICS)}')
    if self.threshold is not None and not 0 <= self.threshold <= 1:
      raise ValueError(f'--track_threshold={self.threshold}: expected a similarity in [0, 1]')
    if self.max_gap < 0:
      raise ValueError(f'--max_gap={self.max_gap}: expected a number of frames >= 0')

  @property
  def min_similarity(self) -> float:
    return DEFAULT_THRESHOLDS[self.metric] if self.threshold is None else float(self.threshold)


def sigmas(skeleton: str) -> np.ndarray:
  """(J,) OKS sigmas of a `skeletons.SKELETONS` skeleton: COCO's by joint name, else default."""
  names = skeletons.SKELETONS[skeleton][0]
  return np.array([COCO_SIGMAS.get(name, DEFAULT_SIGMA) for name in names], np.float64)


def boxes(poses: np.ndarray) -> np.ndarray:
  """(N, J, 3) poses -> (N, 4) x0, y0, x1, y1 around the detected joints (NaN: none detected)."""
  seen = poses[..., 2] > 0
  x = np.where(seen, poses[..., 0], np.nan)
  y = np.where(seen, poses[..., 1], np.nan)
  out = np.full((len(poses), 4), np.nan)
  some = seen.any(axis=-1)
  out[some] = np.stack([np.nanmin(x[some], -1), np.nanmin(y[some], -1), np.nanmax(x[some], -1),
                        np.nanmax(y[some], -1)], axis=-1)
  return out


def _areas(box: np.ndarray) -> np.ndarray:
  return np.nan_to_num((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))


def oks(a: np.ndarray, b: np.ndarray, sigma: np.ndarray) -> np.ndarray:
  """(A, B) object keypoint similarity of poses a (A, J, 3) and b (B, J, 3) (module docstring);
  only joints detected in both poses count."""
  both = (a[:, None, :, 2] > 0) & (b[None, :, :, 2] > 0)
  d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)
  area = np.maximum(_areas(boxes(a))[:, None], _areas(boxes(b))[None, :])
  area = np.maximum(area, MIN_AREA)
  e = d2 / (2 * area[..., None] * (2 * sigma) ** 2)
  count = both.sum(-1)
  return np.where(count > 0, (np.exp(-e) * both).sum(-1) / np.maximum(count, 1), 0.0)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """(A, B) IoU of the boxes around the detected joints of poses a (A, J, 3) and b (B, J, 3)."""
  ba, bb = boxes(a)[:, None], boxes(b)[None, :]
  w = np.minimum(ba[..., 2], bb[..., 2]) - np.maximum(ba[..., 0], bb[..., 0])
  h = np.minimum(ba[..., 3], bb[..., 3]) - np.maximum(ba[..., 1], bb[..., 1])
  inter = np.nan_to_num(np.clip(w, 0, None) * np.clip(h, 0, None))
  union = _areas(boxes(a))[:, None] + _areas(boxes(b))[None, :] - inter
  return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclasses.dataclass
class _Open:
  """A track still open: its id and its last two detections (frame, (J, 3) pose)."""

  id: int
  last: tuple[int, np.ndarray]
  before: tuple[int, np.ndarray] | None = None

  def predict(self, frame: int, velocity: bool) -> np.ndarray:
    t1, p1 = self.last
    if not velocity or self.before is None:
      return p1
    t0, p0 = self.before
    common = (p0[:, 2] > 0) & (p1[:, 2] > 0)
    if not common.any():
      return p1
    step = (p1[common, :2] - p0[common, :2]).mean(axis=0) / (t1 - t0)
    out = p1.copy()
    out[:, :2] += step * (frame - t1)
    return out


def _match(similarity: np.ndarray, threshold: float) -> list[tuple[int, int]]:
  """(track row, detection column) pairs of the best assignment with similarity >= threshold."""
  if similarity.size == 0:
    return []
  rows, cols = np.indices(similarity.shape)
  cost = np.where(similarity >= threshold, 1.0 - similarity, _FORBIDDEN) + _TIE * (rows + cols)
  r, c = optimize.linear_sum_assignment(cost)
  return [(i, j) for i, j in zip(r, c) if similarity[i, j] >= threshold]


def assign_ids(frames: np.ndarray, keypoints: np.ndarray, skeleton: str,
               options: TrackerOptions) -> tuple[np.ndarray, int]:
  """Track ids of detections (module docstring).

  Args:
    frames: (N,) frame number of each detection, in file order.
    keypoints: (N, J, 3) x, y, confidence (0: undetected) in the `skeleton`'s joint order.
    skeleton: a `skeletons.SKELETONS` key (for the OKS sigmas).
    options: metric, threshold, max_gap.

  Returns:
    (N,) int64 ids, 0, 1, ... in order of first appearance, and the number of tracks closed after
    more than `max_gap` unmatched frames.
  """
  sigma, threshold = sigmas(skeleton), options.min_similarity
  ids = np.full(len(frames), -1, np.int64)
  open_tracks: list[_Open] = []
  closed, next_id = 0, 0
  order = np.argsort(frames, kind='stable')
  starts = np.flatnonzero(np.diff(frames[order], prepend=frames[order][0] - 1))
  for rows in np.split(order, starts[1:]):
    frame = int(frames[rows[0]])
    alive = [t for t in open_tracks if frame - t.last[0] - 1 <= options.max_gap]
    closed += len(open_tracks) - len(alive)
    open_tracks = alive
    dets = keypoints[rows]
    if open_tracks:
      preds = np.stack([t.predict(frame, options.velocity) for t in open_tracks])
      sim = oks(preds, dets, sigma) if options.metric == 'oks' else iou(preds, dets)
    else:
      sim = np.zeros((0, len(rows)))
    taken = {}
    for i, j in _match(sim, threshold):
      taken[j] = open_tracks[i]
    for j, row in enumerate(rows):
      track = taken.get(j)
      if track is None:
        track = _Open(next_id, (frame, dets[j]))
        open_tracks.append(track)
        next_id += 1
      else:
        track.before, track.last = track.last, (frame, dets[j])
      ids[row] = track.id
  return ids, closed


def assign(dets: Detections, options: TrackerOptions | None = None) -> tuple[np.ndarray, list[str]]:
  """(N,) int64 track ids of `dets` (file order) and notes on what the tracker did."""
  options = options or TrackerOptions()
  ids, closed = assign_ids(dets.frames, dets.keypoints, dets.skeleton, options)
  note = (f'no track ids in the file: tracked {len(ids)} detections into {ids.max() + 1} tracks '
          f'({options.metric}, threshold {options.min_similarity:g}, max_gap {options.max_gap}); '
          f'{closed} closed after more than {options.max_gap} unmatched frames')
  return ids, [note]
