"""A video, an image or a folder of images -> 2D keypoints of every person, with track ids.

  found = detect.detect('vtest.avi', keypoints2d.make('blazepose'))
  dets = detect.with_track_ids(found.detections, tracker.TrackerOptions())
  detect.write_coco(dets, 'DIR/keypoints2d.json')

`detect` runs a `Keypoints2D` over every frame (media.open_frames) into `Detections` (the
detector's skeleton, frame numbers from 0, its boxes and person scores), timing decoding and
detection apart. `with_track_ids` gives them the tracker's ids (mbjax/data/tracker.py), and
`write_coco` writes them as COCO keypoint results with those ids: `python -m mbjax.infer VIDEO
--keypoints keypoints2d.json` reads them back (mbjax/data/keypoint_files.py) and lifts the
same tracks without detecting again.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time

import numpy as np

from mbjax.files import atomic
from mbjax.data import keypoint_files, skeletons, tracker
from mbjax.video import media
from mbjax.video.keypoints2d import Keypoints2D
from mbjax.video.progress import StageProgress


@dataclasses.dataclass
class Found:
  """What `detect` found: detections (None: nobody in any frame), the input, stage frames/s."""

  detections: keypoint_files.Detections | None
  frames: media.Frames
  count: int
  rates: dict[str, float]


def detect(path: str, detector: Keypoints2D, *, max_frames: int | None = None,
           progress: bool | StageProgress = True) -> Found:
  """Runs `detector` on every frame of `path` (at most `max_frames`) in order."""
  frames = media.open_frames(path)
  total = min(frames.expected, max_frames) if frames.expected and max_frames else (
      frames.expected or max_frames)
  bar = progress if isinstance(progress, StageProgress) else StageProgress(
      total, use_bar=None if progress else False, file=None if progress else io.StringIO())
  rows, count = [], 0
  stream = iter(frames)
  while max_frames is None or count < max_frames:
    t0 = time.perf_counter()
    item = next(stream, None)
    if item is None:
      break
    index, rgb = item
    t1 = time.perf_counter()
    poses = detector(rgb)
    bar.update({'decode': t1 - t0, '2D': time.perf_counter() - t1}, people=len(poses))
    rows += [(index, poses.keypoints[p], poses.boxes[p], poses.scores[p])
             for p in range(len(poses))]
    count += 1
  rates = bar.close()
  if not rows:
    return Found(None, frames, count, rates)
  index, kp, boxes, scores = zip(*rows)
  dets = keypoint_files.Detections(
      source=str(path), skeleton=detector.skeleton, frames=np.asarray(index, np.int64),
      persons=None, keypoints=np.stack(kp).astype(np.float64),
      scores=np.asarray(scores, np.float64), size=frames.size,
      notes=[f'2D keypoints: {detector.name} on {count} frames of {path}'],
      boxes=np.stack(boxes).astype(np.float64))
  return Found(dets, frames, count, rates)


def with_track_ids(dets: keypoint_files.Detections, options: tracker.TrackerOptions
                   ) -> keypoint_files.Detections:
  """`dets` with the tracker's ids as `persons`: always tracked, so that a person who leaves
  and another who comes later are two tracks even with one person a frame."""
  ids, notes = tracker.assign(dets, options)
  return dataclasses.replace(dets, persons=ids, notes=dets.notes + notes)


def write_coco(dets: keypoint_files.Detections, path: str) -> str:
  """COCO keypoint results with track ids: [{image_id (frame number), category_id 1, keypoints
  (17 x [x, y, score], COCO order), score, bbox [x, y, w, h], track_id}], one per detection."""
  coco = skeletons.to_coco(dets.keypoints, dets.skeleton)
  out = []
  for i in range(len(dets.frames)):
    entry = dict(image_id=int(dets.frames[i]), category_id=1,
                 keypoints=coco[i].reshape(-1).tolist(), score=float(dets.scores[i]))
    if dets.boxes is not None:
      x0, y0, x1, y1 = dets.boxes[i].tolist()
      entry['bbox'] = [x0, y0, x1 - x0, y1 - y0]
    if dets.persons is not None:
      entry['track_id'] = int(dets.persons[i])
    out.append(entry)
  atomic.write_text(path, json.dumps(out))  # the caller refused an existing one unasked
  return path
