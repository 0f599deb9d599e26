"""Detections of any format -> per-person H36M-17 tracks in pixels, gaps filled.

  dets = keypoint_files.read('video.json')      # AlphaPose, COCO, MMPose, OpenPose, MediaPipe,
  tracks, skipped = person_tracks.tracks(dets)  # .npy / .npz (see mbjax/data/keypoint_files.py)

Each format has one map to H36M-17 (`mbjax.data.skeletons.SKELETONS`): Halpe-26 the official
`halpe2h36m`, COCO-17 the official `coco2h36m`, BODY_25 and MediaPipe the COCO convention
(`skeletons.body25_to_h36m`, `skeletons.mediapipe_to_h36m`). An H36M joint made of several source
joints (pelvis, neck, head, belly) is detected only when all of them are; otherwise its
confidence is 0.

Tracks come from the file's track ids (AlphaPose `idx`, MMPose `track_id`, OpenPose
`person_id`, array persons), used exactly as written. A file without ids with at most one person
per frame is one track, id 0; one with several persons in a frame is tracked
(`mbjax.data.tracker`: OKS or box IoU, Hungarian assignment, `TrackerOptions`), and what the
tracker did is added to `notes`. Within a track not made by the tracker, frame numbers must
not decrease in file order (an error names the detection); two detections of one frame keep the
higher detection score (reported). Frames missing inside a track and undetected joints
(confidence 0) get x, y linearly interpolated in time from the frames where that joint is detected
(held constant before the first and after the last), confidence 0, so normalisation ignores them;
a joint never detected in a track sits at the mean of that frame's detected joints.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mbjax.data import skeletons, tracker
from mbjax.data.keypoint_files import Detections
from mbjax.data.tracker import TrackerOptions

SKIP_SHORT = 'shorter than --min_frames'
SKIP_EMPTY = 'fewer than 4 detected joints in the whole track'


@dataclasses.dataclass
class Track:
  """One person's H36M-17 keypoints over consecutive frames.

  Attributes:
    person: the track id (0 for a file without ids and one person per frame; the tracker's id
      for one with several).
    frames: (T,) int64 consecutive frame numbers.
    keypoints: (T, 17, 3) float64 x, y in pixels, confidence (0: filled, not detected).
    detected: (T,) bool: the frame had a detection of this person.
    duplicates: detections dropped because the frame already had a better one.
  """

  person: int
  frames: np.ndarray
  keypoints: np.ndarray
  detected: np.ndarray
  duplicates: int = 0

  @property
  def joints_filled(self) -> int:
    """Joints of detected frames that were undetected and got interpolated positions."""
    return int((self.keypoints[self.detected, :, 2] == 0).sum())


def h36m_keypoints(dets: Detections) -> np.ndarray:
  """(N, 17, 3) float64 H36M-17 keypoints of every detection; a joint not fully detected has
  confidence 0."""
  kp = skeletons.to_h36m(dets.keypoints, dets.skeleton)
  detected = skeletons.h36m_detected(dets.keypoints[..., 2], dets.skeleton)
  kp[..., 2] = np.where(detected, kp[..., 2], 0.0)
  return kp


def group_by_id(dets: Detections, options: TrackerOptions | None = None,
                notes: list[str] | None = None) -> dict[int, np.ndarray]:
  """person id -> indices of its detections: the file's ids (file order), id 0 for a file without
  ids and one person per frame, else the tracker's ids (frame order, one detection a frame).

  Args:
    dets: from `keypoint_files.read`.
    options: tracker options for a file without ids; None: `TrackerOptions()`.
    notes: when given, receives what the tracker did.
  """
  if dets.persons is not None:
    return {int(p): np.flatnonzero(dets.persons == p) for p in np.unique(dets.persons)}
  _, counts = np.unique(dets.frames, return_counts=True)
  if not np.any(counts > 1):
    return {0: np.arange(len(dets.frames))}
  ids, tracker_notes = tracker.assign(dets, options)
  if notes is not None:
    notes.extend(tracker_notes)
  groups = {}
  for p in range(int(ids.max()) + 1):
    rows = np.flatnonzero(ids == p)
    groups[p] = rows[np.argsort(dets.frames[rows], kind='stable')]
  return groups


def _best_per_frame(dets: Detections, person: int, rows: np.ndarray) -> tuple[np.ndarray, int]:
  """`rows` (file order) with one detection per frame (the higher score), checked in order."""
  frames = dets.frames[rows]
  back = np.flatnonzero(np.diff(frames) < 0)
  if len(back):
    i = back[0] + 1
    raise ValueError(f'{dets.source}: person {person}: detection {rows[i]} is frame {frames[i]} '
                     f'but comes after frame {frames[i - 1]}; detections must be in frame order')
  keep = []
  for i, row in enumerate(rows):
    if keep and dets.frames[keep[-1]] == frames[i]:
      if dets.scores[row] > dets.scores[keep[-1]]:
        keep[-1] = row
      continue
    keep.append(row)
  return np.asarray(keep), len(rows) - len(keep)


def fill_gaps(frames: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Consecutive frames with every undetected joint interpolated in time (module docstring).

  Args:
    frames: (N,) strictly increasing frame numbers.
    keypoints: (N, 17, 3) x, y, confidence (0: undetected).

  Returns:
    frames (T,) = frames[0] .. frames[-1] and keypoints (T, 17, 3) float64: detected joints as
    given, others interpolated with confidence 0.
  """
  full = np.arange(frames[0], frames[-1] + 1, dtype=np.int64)
  out = np.zeros((len(full),) + keypoints.shape[1:], np.float64)
  at = frames - frames[0]
  out[at] = keypoints
  seen = np.zeros(out.shape[:2], bool)
  seen[at] = keypoints[..., 2] > 0
  for j in range(out.shape[1]):
    known = np.flatnonzero(seen[:, j])
    if len(known) == 0:
      continue
    for c in range(2):
      out[:, j, c] = np.interp(np.arange(len(full)), known, out[known, j, c])
  never = ~seen.any(axis=0)
  if never.any():  # a joint never detected: the mean of the frame's other joints
    out[:, never, :2] = out[:, ~never, :2].mean(axis=1, keepdims=True)
  return full, out


def _track(dets: Detections, kp: np.ndarray, person: int, rows: np.ndarray) -> Track:
  rows, duplicates = _best_per_frame(dets, person, rows)
  frames, filled = fill_gaps(dets.frames[rows], kp[rows])
  detected = np.zeros(len(frames), bool)
  detected[dets.frames[rows] - frames[0]] = True
  return Track(person, frames, filled, detected, duplicates)


def tracks(dets: Detections, *, min_frames: int = 1, focus: int | None = None,
           tracker_options: TrackerOptions | None = None, notes: list[str] | None = None
           ) -> tuple[dict[int, Track], list[dict]]:
  """The persons of `dets` as H36M-17 tracks.

  Args:
    dets: from `keypoint_files.read`.
    min_frames: tracks with fewer frames (after filling gaps) are skipped.
    focus: keep only this track id (official `--focus`).
    tracker_options: how a file without ids and several persons a frame is tracked.
    notes: when given, receives what the tracker did (module docstring).

  Returns:
    (person id -> Track in increasing id order, skipped: [{person, frames, reason}]).
  """
  kp = h36m_keypoints(dets)
  groups = group_by_id(dets, tracker_options, notes)
  if focus is not None:
    if focus not in groups:
      raise ValueError(f'{dets.source}: --focus={focus}: no such track; track ids: '
                       f'{sorted(groups)}')
    groups = {focus: groups[focus]}
  out, skipped = {}, []
  for person in sorted(groups):
    track = _track(dets, kp, person, groups[person])
    reason = None
    if len(track.frames) < min_frames:
      reason = SKIP_SHORT
    elif (track.keypoints[..., 2] > 0).sum() < 4:
      reason = SKIP_EMPTY
    if reason:
      skipped.append(dict(person=person, frames=len(track.frames), reason=reason))
    else:
      out[person] = track
  return out, skipped
