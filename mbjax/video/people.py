"""Every person of a video with BlazePose: the `Keypoints2D` of `--detector=blazepose`.

Each frame: the people followed from the previous frame keep the region their landmarks gave
(MediaPipe's own tracking); every `every` frames (and on the first) the detector looks for new
people over the whole frame and its tiles, and a detection whose region overlaps a followed
person's by more than `NEW_PERSON_IOU` is that person, not a new one. The landmark model then
poses every region; a pose flag below `MIN_POSE_FLAG` drops the person (lost, or a false
detection), and of two poses whose keypoint boxes overlap by more than `DUPLICATE_IOU` (two
regions drifted onto one person) the lower-flagged one is dropped.

Output per person: the 33 MediaPipe landmarks (x, y, visibility), the region's box (what the
landmark model saw) and the pose flag as the score.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mbjax.video import blazepose
from mbjax.video.keypoints2d import Poses

NEW_PERSON_IOU = 0.3
DUPLICATE_IOU = 0.5
MIN_SIDE = 24  # px: a smaller region cannot hold a person the landmark model can pose
# Frames a followed person may go unposed (pose flag below MediaPipe's 0.5: behind a lamp post,
# a passer-by) before being dropped; meanwhile the region moves on at its last velocity.
PATIENCE = 10


def check_installed() -> None:
  """Raises ModuleNotFoundError (what to install) unless LiteRT and the models are here."""
  import ai_edge_litert.interpreter  # noqa: F401
  blazepose.model_paths()


def _box(region: blazepose.Region) -> np.ndarray:
  corners = region.to_frame(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]))
  return np.concatenate([corners.min(0), corners.max(0)])


def _keypoint_box(keypoints: np.ndarray) -> np.ndarray:
  xy = keypoints[keypoints[:, 2] > 0.5, :2]
  xy = xy if len(xy) >= 2 else keypoints[:, :2]
  return np.concatenate([xy.min(0), xy.max(0)])


def _overlaps(box: np.ndarray, others: list[np.ndarray], threshold: float) -> bool:
  return bool(others) and float(blazepose.iou(box, np.stack(others)).max()) > threshold


@dataclasses.dataclass
class _Followed:
  """A person followed from frame to frame: the region to pose next, its motion per frame, and
  frames since the last pose."""

  region: blazepose.Region
  velocity: tuple[float, float] = (0.0, 0.0)
  missed: int = 0

  def moved_on(self) -> '_Followed':
    r, (vx, vy) = self.region, self.velocity
    return _Followed(dataclasses.replace(r, cx=r.cx + vx, cy=r.cy + vy), self.velocity,
                     self.missed + 1)

  def posed(self, following: blazepose.Region) -> '_Followed':
    velocity = (following.cx - self.region.cx, following.cy - self.region.cy)
    if self.missed:  # the region was guessed: keep the old velocity
      velocity = self.velocity
    return _Followed(following, velocity, 0)


class BlazePosePeople:
  """Keypoints2D of every person (module docstring).

  Args:
    every: frames between detector runs (1: every frame).
    tile: side in pixels of the overlapping tiles the detector also runs on (small people);
      0 or None: the whole frame only.
    threads: LiteRT threads per model.
    max_people: at most this many people followed at once (the best detections first).
  """

  name = 'blazepose'
  skeleton = 'mediapipe'

  def __init__(self, every: int = 10, tile: int | None = 256, threads: int = 1,
               max_people: int = 32):
    if every < 1:
      raise ValueError(f'--detect_every={every}: expected a number of frames >= 1')
    self.every, self.tile, self.max_people = int(every), tile or None, int(max_people)
    self.model = blazepose.BlazePose(threads=threads)
    self._followed: list[_Followed] = []
    self._index = 0

  def _new_people(self, image) -> list[_Followed]:
    taken = [_box(f.region) for f in self._followed]
    fresh = []
    for region, _ in self.model.detect(image, tile=self.tile):
      box = _box(region)
      if region.side >= MIN_SIDE and not _overlaps(box, taken, NEW_PERSON_IOU):
        fresh.append(_Followed(region))
        taken.append(box)
    return fresh

  def __call__(self, frame: np.ndarray) -> Poses:
    from PIL import Image
    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
    people = list(self._followed)
    if self._index % self.every == 0:
      people += self._new_people(image)
    self._index += 1
    posed, waiting = [], []
    for person in people[:self.max_people]:
      landmarks, flag, following = self.model.landmarks(image, person.region)
      if flag >= blazepose.MIN_POSE_FLAG and following.side >= MIN_SIDE:
        posed.append((flag, landmarks[:, [0, 1, 3]], person, following))
      elif person.missed < PATIENCE:
        waiting.append(person.moved_on())
    kept, boxes = [], []
    for flag, keypoints, person, following in sorted(posed, key=lambda p: -p[0]):
      box = _keypoint_box(keypoints)
      if not _overlaps(box, boxes, DUPLICATE_IOU):
        kept.append((flag, keypoints, person))
        boxes.append(box)
        self_next = person.posed(following)
        waiting.insert(len(kept) - 1, self_next)
    regions = [_box(p.region) for p in waiting[:len(kept)]]
    self._followed = waiting[:len(kept)] + [
        p for p in waiting[len(kept):] if not _overlaps(_box(p.region), regions, DUPLICATE_IOU)]
    if not kept:
      return Poses.empty(blazepose.NUM_LANDMARKS)
    return Poses(keypoints=np.stack([k[1] for k in kept]),
                 boxes=np.stack([_box(k[2].region) for k in kept]),
                 scores=np.array([k[0] for k in kept]))
