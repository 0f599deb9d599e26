"""`python -m mbjax.bench video`: decode / 2D / lift / render frames/s of a video to 3D.

  python -m mbjax.bench video                           # the shipped vtest.avi, every frame
  python -m mbjax.bench video --video=clip.mp4 --frames=300 --variant=lite

On one input (default the shared footage `data/video/vtest.avi`, found through $MBJAX_SHARED or
../shared): decoding alone; the `--detector` (the `video` extra) over the frames with the
tracker, as `python -m mbjax.infer VIDEO` runs it; lifting every track of at least half a
second with a random-weight DSTformer of `--variant` and the infer CLI's default windows (first
call, which compiles each window length, and a second call); the render of the 2D over the
video beside the 3D. Each stage reports frames/s of wall time and the CPU seconds of this
process (on a loaded machine the CPU time is the steadier figure); `people_frames_per_s` counts
a frame once per person in it. The last line printed is JSON.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import time

from mbjax.bench import infer as infer_bench
from mbjax.data import person_tracks
from mbjax.infer import lift, pipeline
from mbjax.video import media, source


def default_video() -> str:
  shared = os.environ.get('MBJAX_SHARED') or str(pathlib.Path(__file__).resolve().parents[3] /
                                                 'shared')
  return os.path.join(shared, 'data', 'video', 'vtest.avi')


class _Clock:
  """Wall and process CPU seconds of a `with` block."""

  def __enter__(self):
    self.wall, self.cpu = time.perf_counter(), time.process_time()
    return self

  def __exit__(self, *exc):
    self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def _rate(frames: int, seconds: float) -> float:
  return round(frames / max(seconds, 1e-9), 2)


def decode(path: str, max_frames: int | None) -> dict:
  with _Clock() as c:
    count = 0
    for _ in media.open_frames(path):
      count += 1
      if max_frames and count >= max_frames:
        break
  return dict(frames=count, decode_frames_per_s=_rate(count, c.wall), decode_cpu_s=round(c.cpu, 2))


def keypoints(path: str, options: source.Options) -> tuple[dict, source.Read]:
  with _Clock() as c:
    read = source.read(path, options)
  dets = read.detections
  frames = int(dets.frames.max()) + 1 if len(dets.frames) else 0
  return dict(keypoints_2d_s=round(c.wall, 2), keypoints_2d_cpu_s=round(c.cpu, 2),
              keypoints_2d_frames_per_s=_rate(frames, c.wall),
              keypoints_2d_people_frames_per_s=_rate(len(dets.frames), c.wall),
              people_frames=len(dets.frames), tracks_found=int(dets.persons.max()) + 1,
              stage_rates=read.rates), read


def lifting(read: source.Read, variant: str) -> tuple[dict, dict, dict]:
  tracks, _ = person_tracks.tracks(read.detections, min_frames=read.min_frames)
  lifter = infer_bench.random_lifter(variant)
  options = pipeline.window_options(pipeline.Request(input=''), lifter)
  inputs = {k: lift.normalise(t.keypoints, 'crop')[0] for k, t in tracks.items()}
  frames = sum(len(x) for x in inputs.values())
  with _Clock() as first:
    joints = lift.lift(lifter.predict, inputs, options)
  with _Clock() as again:
    lift.lift(lifter.predict, inputs, options)
  result = dict(tracks_lifted=len(tracks), lifted_frames=frames,
                lift_first_call_frames_per_s=_rate(frames, first.wall),
                lift_first_call_s=round(first.wall, 2), lift_frames_per_s=_rate(frames, again.wall),
                lift_cpu_s=round(again.cpu, 2))
  return result, tracks, joints


def rendering(path: str, tracks: dict, joints: dict, size: int, fps: float) -> dict:
  from mbjax.infer import render
  per_track = {k: dict(frames=t.frames, keypoints_px=t.keypoints, joints3d_px=joints[k])
               for k, t in tracks.items()}
  with tempfile.TemporaryDirectory() as tmp, _Clock() as c:
    done = render.render_tracks(os.path.join(tmp, 'render.mp4'), per_track, video=path,
                                size=size, fps=fps)
  return dict(render_frames=done['frames'], render_frames_per_s=_rate(done['frames'], c.wall),
              render_cpu_s=round(c.cpu, 2), render_size=size)


PAN_MARGIN = 8  # px cut from each side of an image; the crop window wanders inside them


def panned_clip(image_path: str, frames: int, out_path: str, fps: float = 30.0) -> str:
  """An mp4 of `frames` crops of one image, the window moving around a PAN_MARGIN px circle (a
  still person moving a little in the frame: the one-person speed case from a shipped image)."""
  import imageio.v3 as iio
  import numpy as np
  image = iio.imread(image_path)[..., :3]
  # sides a multiple of 16: the encoder would rescale the frames to that
  h, w = ((side - 2 * PAN_MARGIN) // 16 * 16 for side in image.shape[:2])
  angles = 2 * np.pi * np.arange(frames) / frames
  offsets = np.round(PAN_MARGIN * (1 + np.stack([np.sin(angles), np.cos(angles)], 1))).astype(int)
  clip = np.stack([image[y:y + h, x:x + w] for y, x in offsets])
  iio.imwrite(out_path, clip, fps=fps, codec='libx264')
  return out_path


def run(fv) -> dict:
  path = fv.video or default_video()
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path}: no such video (pass --video or set MBJAX_SHARED)')
  if fv.pan_frames:
    if media.kind(path) != 'image':
      raise ValueError(f'--pan_frames={fv.pan_frames}: needs an image --video, got {path}')
    with tempfile.TemporaryDirectory() as tmp:
      clip = panned_clip(path, fv.pan_frames, os.path.join(tmp, 'panned.mp4'))
      return dict(_run(fv, clip), video=path, pan_frames=fv.pan_frames)
  return _run(fv, path)


def _run(fv, path: str) -> dict:
  result = dict(bench='video', video=path, detector=fv.detector, every=fv.every, tile=fv.tile,
                variant=fv.variant, cpus=os.cpu_count())
  result.update(decode(path, fv.frames))
  options = source.Options(detector=fv.detector, every=fv.every, tile=fv.tile,
                           threads=fv.threads, max_frames=fv.frames, progress=False)
  found, read = keypoints(path, options)
  result.update(found)
  lifted, tracks, joints = lifting(read, fv.variant)
  result.update(lifted)
  seconds = result['keypoints_2d_s'] + result['lift_first_call_s']
  result.update(end_to_end_s=round(seconds, 2),
                end_to_end_frames_per_s=_rate(result['frames'], seconds))
  if fv.render_size:
    result.update(rendering(path, tracks, joints, fv.render_size, read.fps))
  return result


def define_flags(fv) -> None:
  """This bench's flags, in their own absl FlagValues `fv`."""
  from absl import flags
  flags.DEFINE_string('video', None, 'input video, image or image folder (default: the shared '
                      'data/video/vtest.avi)', flag_values=fv)
  flags.DEFINE_integer('frames', None, 'at most this many frames (default: all)', flag_values=fv)
  flags.DEFINE_integer('pan_frames', 0, 'with an image --video: a clip of this many frames '
                       'panned across it (e.g. messi5.jpg: one person)', flag_values=fv)
  flags.DEFINE_string('detector', 'blazepose', '2D detector (mbjax/video/keypoints2d.py)',
                      flag_values=fv)
  flags.DEFINE_integer('every', None, 'frames between person detections (default: a '
                       'second\'s)', flag_values=fv)
  flags.DEFINE_integer('tile', 256, 'detector tile side in px (0: whole frame only)',
                       flag_values=fv)
  flags.DEFINE_integer('threads', source.DEFAULT_THREADS, 'LiteRT threads per model',
                       flag_values=fv)
  flags.DEFINE_enum('variant', 'lite', ['lite', 'tiny', 'release'], 'DSTformer size (random '
                    'weights)', flag_values=fv)
  flags.DEFINE_integer('render_size', 512, 'render height in px (0: no render)', flag_values=fv)
