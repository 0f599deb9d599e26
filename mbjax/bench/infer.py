"""`python -m mbjax.bench infer`: offline, streaming and render frames/s of in-the-wild inference.

  python -m mbjax.bench infer --variant lite --frames 486 --stream_frames 100 --latency 10

A random-weight DSTformer of `--variant` (no checkpoint; the cost does not depend on the weights)
with the default infer config's test-time options (flip test, rootrel=False), one person:
- offline: `lift.lift` with the infer CLI's default windows (the model maxlen, stride a third of
  it), as `python -m mbjax.infer` runs it, timed after a first compiling call;
- streaming: `StreamLifter.push` of `--stream_frames` frames at `--latency` k with a
  `--stream_clip_len` window; the first push (which compiles) is reported on its own, the rest
  give frames/s and the per-frame push time (ms, mean and p95). A pose comes out k frames after
  its frame went in, so the latency at `--fps` is k / fps plus the push time;
- render: `mbjax.infer.render.measure` (rasterise and encode the 2D + 3D views).
The last line printed is JSON.
"""

from __future__ import annotations

import time

import numpy as np

from mbjax.infer import lift, pipeline
from mbjax.infer import model as model_lib


def random_lifter(variant: str, seed: int = 0) -> model_lib.Lifter:
  """A Lifter of `variant` (dstformer.VARIANTS) with random weights and the default config's
  test-time options, jitted as `model.load` jits a checkpoint."""
  import jax
  import jax.numpy as jnp
  from flax.core import meta
  from mbjax import models
  from mbjax.models import dstformer
  fields = dict(dstformer.VARIANTS[variant])
  model = models.from_config(fields)
  variables = meta.unbox(jax.jit(model.init)(jax.random.key(seed), jnp.zeros((1, 1, 17, 3))))
  apply = jax.jit(model.apply)
  config = model_lib.load_config_file(model_lib.DEFAULT_CONFIG)
  return model_lib.Lifter(predict=lambda x: apply(variables, x), maxlen=int(fields['maxlen']),
                          rootrel=bool(config.rootrel), flip=bool(config.flip_test), gt_2d=False,
                          no_conf=False, config=config, source=f'random {variant}')


def synthetic_track(frames: int, seed: int = 0) -> np.ndarray:
  """(frames, 17, 3) pixel keypoints of a person wandering over a 1920x1080 frame."""
  rng = np.random.default_rng(seed)
  body = rng.uniform(-80, 80, (17, 2)) * [1, 2.5]
  path = np.cumsum(rng.normal(0, 3, (frames, 1, 2)), axis=0) + [960, 540]
  wobble = 10 * np.sin(np.arange(frames)[:, None, None] / 5 + np.arange(17)[None, :, None])
  return np.concatenate([body + path + wobble, np.full((frames, 17, 1), 0.9)], axis=-1)


def offline(lifter: model_lib.Lifter, track: np.ndarray) -> dict:
  """Frames/s of `lift.lift` over one track with the infer CLI's default windows."""
  options = pipeline.window_options(pipeline.Request(input=''), lifter)
  x, _ = lift.normalise(track, 'crop')
  t0 = time.perf_counter()
  lift.lift(lifter.predict, {0: x}, options)  # compiles the window shapes
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  lift.lift(lifter.predict, {0: x}, options)
  seconds = time.perf_counter() - t0
  return dict(offline_frames_per_s=round(len(track) / seconds, 2), offline_s=round(seconds, 3),
              offline_first_call_s=round(first, 3), offline_clip_len=options.clip_len,
              offline_stride=options.stride)


def streaming(lifter: model_lib.Lifter, track: np.ndarray, latency: int, clip_len: int | None,
              fps: float) -> dict:
  """Frames/s and per-push milliseconds of `StreamLifter` over `track` (first push apart)."""
  from mbjax.infer.stream import StreamLifter
  s = StreamLifter.from_lifter(lifter, latency=latency, clip_len=clip_len)
  t0 = time.perf_counter()
  s.push(track[0])
  first = time.perf_counter() - t0
  times = []
  for frame in track[1:]:
    t0 = time.perf_counter()
    s.push(frame)
    times.append(time.perf_counter() - t0)
  ms = np.asarray(times) * 1e3
  mean = float(ms.mean())
  return dict(stream_frames_per_s=round(1e3 / mean, 2), stream_push_ms_mean=round(mean, 2),
              stream_push_ms_p95=round(float(np.percentile(ms, 95)), 2),
              stream_first_push_s=round(first, 3), stream_latency_frames=latency,
              stream_latency_ms_at_fps=round(latency / fps * 1e3 + mean, 1),
              stream_clip_len=s.clip_len, stream_compiles=s.traces, stream_pushes=len(track))


def run(fv) -> dict:
  import jax
  from mbjax.infer import render
  if fv.stream_frames < 2:
    raise ValueError(f'--stream_frames={fv.stream_frames}: need at least 2 (the first compiles)')
  lifter = random_lifter(fv.variant)
  result = dict(bench='infer', variant=fv.variant, backend=jax.default_backend(), people=1,
                frames=fv.frames, flip=lifter.flip, fps=fv.fps)
  track = synthetic_track(max(fv.frames, fv.stream_frames))
  if fv.frames:
    result.update(offline(lifter, track[:fv.frames]))
  result.update(streaming(lifter, track[:fv.stream_frames], fv.latency, fv.stream_clip_len,
                          fv.fps))
  if fv.render_frames:
    fps = render.measure(fv.render_frames, fv.render_size, 1, encode=fv.encode)
    result.update(render_frames_per_s=round(fps, 2), render_size=fv.render_size,
                  render_encode=fv.encode)
  return result


def define_flags(fv) -> None:
  """This bench's flags, in their own absl FlagValues `fv`."""
  from absl import flags
  flags.DEFINE_enum('variant', 'lite', ['lite', 'tiny', 'release'], 'DSTformer size',
                    flag_values=fv)
  flags.DEFINE_integer('frames', 486, 'offline track length (0: skip offline)', flag_values=fv)
  flags.DEFINE_integer('stream_frames', 100, 'frames pushed to the StreamLifter', flag_values=fv)
  flags.DEFINE_integer('latency', 10, 'StreamLifter latency k in frames', flag_values=fv)
  flags.DEFINE_integer('stream_clip_len', None, 'StreamLifter window (default: its own)',
                       flag_values=fv)
  flags.DEFINE_float('fps', 30.0, 'input frame rate, for the latency in ms', flag_values=fv)
  flags.DEFINE_integer('render_frames', 60, 'frames rendered (0: skip render)', flag_values=fv)
  flags.DEFINE_integer('render_size', 512, 'render panel size in px', flag_values=fv)
  flags.DEFINE_boolean('encode', True, 'render: also encode the video', flag_values=fv)
