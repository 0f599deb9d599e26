"""A keypoint file -> one action clip in the NTU record layout (`keypoint` (2, T, 17, 3)).

  keypoint, notes = action_clips.read_clip('clips/wave/001.json')

Used for the user's own action datasets (`python -m data_prep.build actions`) and for predicting
the action of one clip (`python -m mbjax.predict_action`), so both see the same input. The file
is read by `mbjax.data.keypoint_files` (AlphaPose, COCO / MMPose JSON, OpenPose folders,
MediaPipe, `.npy` / `.npz`) and split into H36M-17 tracks by `mbjax.data.person_tracks`. The two
tracks with the most detected frames are the clip's two persons (NTU clips hold one or two),
over the frames from the first to the last detection of either; frames where a person is absent
are zeros, as the official NTU loader pads a missing second person. x, y are mapped to [-1, 1] by
the longer side of the frame (official `make_cam`), the frame size from the file or `size`; with
neither, the extent of the keypoints stands in (the action pipeline crop-scales every clip by its
own box afterwards, so only the aspect of that choice is visible). The third channel is the
keypoint confidence in H36M order (the official NTU pickles keep their COCO-order scores, a quirk
`data_prep/ntu.py` keeps for the released checkpoints).
"""

from __future__ import annotations

import numpy as np

from mbjax.data import keypoint_files, person_tracks, transforms

PERSONS = 2
# The NTU record layout (data_prep/ntu.py writes it too; mbjax.data.finetune.action_example reads).
FEATURES = {
    'keypoint': ((PERSONS, None, 17, 3), 'float32'),  # x, y (make_cam units), confidence
    'label': ((), 'int64'),
    'orig_label': ((), 'int64'),  # the dataset's own label (NTU: before one-shot relabelling)
    'frame_dir': ((), 'str'),  # the clip's name
    'total_frames': ((), 'int64'),
}


class NoPersonError(ValueError):
  """A clip in which no person has at least 4 detected joints."""


def _chosen_tracks(tracks: dict[int, person_tracks.Track]) -> list[person_tracks.Track]:
  """The (at most) two tracks with the most detected frames, in increasing id order."""
  ranked = sorted(tracks.values(), key=lambda t: (-int(t.detected.sum()), t.person))
  return sorted(ranked[:PERSONS], key=lambda t: t.person)


def clip_keypoint(dets: keypoint_files.Detections, *, size: tuple[int, int] | None = None
                  ) -> tuple[np.ndarray, list[str]]:
  """(keypoint (2, T, 17, 3) float32 [x, y, confidence] in make_cam units, notes) of `dets`.

  Args:
    dets: the detections of one clip (`keypoint_files.read`).
    size: (width, height) of the frames; default the file's, else the keypoints' extent.

  Raises:
    NoPersonError: no person with at least 4 detected joints.
  """
  tracks, skipped = person_tracks.tracks(dets)
  if not tracks:
    raise NoPersonError(f'{dets.source}: no person with at least 4 detected joints '
                        f'(skipped: {skipped})')
  chosen = _chosen_tracks(tracks)
  notes = list(dets.notes)
  if len(tracks) > PERSONS:
    dropped = sorted(set(tracks) - {t.person for t in chosen})
    notes.append(f'{len(tracks)} tracks: kept {[t.person for t in chosen]} (most detected '
                 f'frames), dropped {dropped}')
  return from_tracks(chosen, size=size or dets.size), notes


def from_tracks(chosen: list[person_tracks.Track], *, size: tuple[int, int] | None = None
                ) -> np.ndarray:
  """(2, T, 17, 3) float32 of one or two tracks over the frames from the first to the last
  detection of either (absent: zeros); x, y by make_cam of `size` or the keypoints' extent."""
  if not 1 <= len(chosen) <= PERSONS:
    raise ValueError(f'from_tracks: expected 1 or {PERSONS} tracks, got {len(chosen)}')
  first = min(int(t.frames[0]) for t in chosen)
  last = max(int(t.frames[-1]) for t in chosen)
  out = np.zeros((PERSONS, last - first + 1, 17, 3), np.float64)
  present = np.zeros(out.shape[:2], bool)  # absent: zeros, as the official padding
  for i, track in enumerate(chosen):
    out[i, track.frames - first] = track.keypoints
    present[i, track.frames - first] = True
  width, height = size or _extent(out)
  out[present, :, :2] = transforms.make_cam(out[present, :, :2], (height, width))
  return out.astype(np.float32)


def _extent(keypoint: np.ndarray) -> tuple[float, float]:
  """(width, height) standing in for the frame size: the largest detected x and y (at least 1)."""
  seen = keypoint[keypoint[..., 2] > 0]
  return float(max(seen[:, 0].max(), 1.0)), float(max(seen[:, 1].max(), 1.0))


def read_clip(path, *, skeleton: str | None = None, size: tuple[int, int] | None = None
              ) -> tuple[np.ndarray, list[str]]:
  """(keypoint (2, T, 17, 3) float32, notes) of a keypoint file or folder (module docstring).

  Args:
    path: any input `keypoint_files.read` takes.
    skeleton: the skeleton of `.npy` / `.npz` arrays (coco, halpe, h36m, ...); JSON formats
      know theirs.
    size: (width, height) of the frames.
  """
  dets = keypoint_files.read(path, skeleton, size)
  return clip_keypoint(dets, size=size)
