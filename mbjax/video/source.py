"""What `python -m mbjax.infer` reads when INPUT is a video, an image or a folder of images.

  read = source.read('vtest.avi', options)       # detects (keypoints2d.make(options.detector))
  read = source.read('vtest.avi', options, keypoints='out/keypoints2d.json')   # no detection
  read.detections    # keypoint_files.Detections with track ids and the frame size

Detections come from the detector (then with the tracker's ids, mbjax/video/detect.py) or from
the keypoint file given by `--keypoints` (any format mbjax/data/keypoint_files.py reads; its
track ids are used as written, so a COCO JSON written by a detecting run lifts the same tracks).
Tracks shorter than half a second (at most the whole input) are skipped unless --min_frames says
otherwise: a tracker fragment that short says little about 3D motion.
"""

from __future__ import annotations

import dataclasses
import os

from mbjax.data import keypoint_files, tracker
from mbjax.video import detect, keypoints2d, media

DEFAULT_FPS = 30.0
MIN_TRACK_SECONDS = 0.5
# The tracker's defaults for a detector's people (keypoint files keep OKS 0.3): on vtest.avi
# BlazePose's small, jittery people (left and right legs often swapped) split into 191 tracks
# with OKS 0.3, 83 with OKS 0.1, 58 with box IoU 0.1 (15 of >= 100 frames against 6).
TRACK_METRIC, TRACK_THRESHOLD = 'iou', 0.1


def tracker_options(metric: str | None, threshold: float | None, max_gap: int
                    ) -> tracker.TrackerOptions:
  """--track_metric / --track_threshold / --max_gap for a detector's people: IoU 0.1 unless
  given (a metric given alone keeps its own default threshold)."""
  if metric is None and threshold is None:
    metric, threshold = TRACK_METRIC, TRACK_THRESHOLD
  return tracker.TrackerOptions(metric=metric or TRACK_METRIC, threshold=threshold,
                                max_gap=max_gap)


# LiteRT threads per model: two ran the 2D of one person 1.19x as fast as one on a 2-core Zen 3
# (`python -m mbjax.bench video --threads N`); the models are small, so more are not assumed.
DEFAULT_THREADS = min(2, os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True)
class Options:
  """How to find people (the CLI's --detector, --detect_every, --detect_tile)."""

  detector: str = 'blazepose'
  every: int | None = None  # default: once a second of video
  tile: int = 256
  threads: int = DEFAULT_THREADS
  max_frames: int | None = None
  progress: bool = True


@dataclasses.dataclass
class Read:
  """A video input read: its detections, its frames' facts, and the 2D stage's frames/s."""

  detections: keypoint_files.Detections
  frames: media.Frames
  fps: float
  detected: bool  # by a detector (not from --keypoints)
  rates: dict[str, float]
  min_frames: int


def read(path: str, options: Options, *, keypoints: str | None = None,
         skeleton: str | None = None, fps: float | None = None,
         options_for_tracker: tracker.TrackerOptions | None = None) -> Read:
  """The detections of a media input (module docstring).

  Args:
    path: a video, an image or a folder of images (`media.kind`).
    options: the detector's.
    keypoints: a keypoint file to use instead of detecting.
    skeleton: --format of that file.
    fps: the frame rate where the container has none (and over it: the caller's choice).
    options_for_tracker: how the detector's people get track ids (default
      `tracker_options(None, None, DEFAULT_MAX_GAP)`).
  """
  frames = media.open_frames(path)
  rate = float(fps or frames.fps or DEFAULT_FPS)
  if keypoints:
    dets = keypoint_files.read(keypoints, skeleton, frames.size)
    dets.size = dets.size or frames.size
    found, rates = None, {}
  else:
    every = options.every or max(1, int(round(rate)))
    detector = keypoints2d.make(options.detector, every=every, tile=options.tile,
                                threads=options.threads)
    found = detect.detect(path, detector, max_frames=options.max_frames,
                          progress=options.progress)
    if found.detections is None:
      raise ValueError(f'{path}: {options.detector} found nobody in {found.count} frames')
    dets = detect.with_track_ids(found.detections,
                                 options_for_tracker or tracker_options(None, None,
                                                                        tracker.DEFAULT_MAX_GAP))
    rates = found.rates
  count = found.count if found else (frames.count or frames.expected or 1)
  min_frames = max(1, min(int(round(MIN_TRACK_SECONDS * rate)), count))
  return Read(dets, frames, rate, keypoints is None, rates, min_frames)
