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
- render: `mbjax.infer.render.measure` (rasterise and encode the 2D + 3D views);
- `--heads`: the action head (and with `--smpl_dir` the mesh head) on the lifting windows, one
  backbone pass shared with the pose head against every model apart (mbjax/infer/shared.py).
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
  apply = model_lib.masked_apply(model)
  config = model_lib.load_config_file(model_lib.DEFAULT_CONFIG)
  return model_lib.Lifter(predict=lambda x: apply(variables, x), maxlen=int(fields['maxlen']),
                          rootrel=bool(config.rootrel), flip=bool(config.flip_test), gt_2d=False,
                          no_conf=False, config=config, source=f'random {variant}', model=model,
                          variables=variables, masks_padding=True)


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


def _head_models(lifter: model_lib.Lifter, variant: str, smpl_dir: str | None):
  """(action Classifier, MeshPredictor or None) of random heads on `lifter`'s backbone weights,
  as partial finetuning leaves them (the mesh head needs an SMPL folder)."""
  import jax
  import jax.numpy as jnp
  from flax.core import meta
  from mbjax import models
  from mbjax.infer import action as action_lib
  from mbjax.infer import mesh as mesh_lib
  from mbjax.models import dstformer
  fields = dict(dstformer.VARIANTS[variant])

  def on_lifter_backbone(model, x):
    variables = meta.unbox(jax.jit(model.init)(jax.random.key(1), x))
    own_head = variables['params']['backbone']['head']
    variables['params']['backbone'] = dict(lifter.variables['params'], head=own_head)
    return variables

  action = models.from_config(dict(fields, head=dict(version='class', num_classes=60)))
  action_vars = on_lifter_backbone(action, jnp.zeros((1, 1, 1, 17, 3)))
  classifier = action_lib.Classifier(
      apply=jax.jit(lambda v, x: (action.apply(v, x), None)), variables=action_vars,
      version='class', label_names=tuple(map(str, range(60))), clip_len=lifter.maxlen,
      scale_range=(1.0, 1.0), source='random', model=action)
  if not smpl_dir:
    return classifier, None
  from mbjax.models.smpl import SMPL
  mesh = models.from_config(dict(fields, head=dict(version='mesh', hidden_dim=1024)),
                            smpl=SMPL.from_file(smpl_dir))
  mesh_vars = on_lifter_backbone(mesh, jnp.zeros((1, 1, 17, 3)))
  return classifier, mesh_lib.MeshPredictor(
      apply=jax.jit(lambda x: mesh.apply(mesh_vars, x)), clip_len=lifter.maxlen, channels=3,
      source='random', model=mesh, variables=mesh_vars)


def heads(lifter: model_lib.Lifter, track: np.ndarray, variant: str, smpl_dir: str | None
          ) -> dict:
  """Frames/s of lifting with the action (and mesh) heads on the lifting windows: one backbone
  pass shared by every head (mbjax/infer/shared.py) against each model apart."""
  from mbjax.infer import shared
  from mbjax.infer import windows as windows_lib
  classifier, mesh = _head_models(lifter, variant, smpl_dir)
  plan, _ = shared.plan(lifter, mesh=mesh, classifier=classifier)
  options = pipeline.window_options(pipeline.Request(input=''), lifter)
  x, _ = lift.normalise(track, 'crop')
  clips = np.stack([x[s:e] for s, e in windows_lib.windows(len(x), options.clip_len,
                                                            options.stride)])

  def apart():
    lift.lift(lifter.predict, {0: x}, options)
    for start in range(0, len(clips), options.batch_size):
      batch = clips[start:start + options.batch_size]
      np.asarray(classifier.apply(classifier.variables, batch[:, None])[0])
      if mesh:
        np.asarray(mesh.apply(batch)['theta'])

  def together():
    lift.lift(plan.predict, {0: x}, options, mirrored=plan.mirrored, extras={})

  result = dict(heads_shared=list(plan.heads), heads_windows=len(clips))
  for name, fn in (('apart', apart), ('shared', together)):
    fn()  # compiles
    t0 = time.perf_counter()
    fn()
    result[f'heads_{name}_frames_per_s'] = round(len(track) / (time.perf_counter() - t0), 2)
  result['heads_speedup'] = round(result['heads_shared_frames_per_s'] /
                                  result['heads_apart_frames_per_s'], 3)
  return result


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
  if fv.heads:
    result.update(heads(lifter, track[:fv.frames], fv.variant, fv.smpl_dir))
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
  flags.DEFINE_boolean('heads', False, 'also lift with action (and --smpl_dir: mesh) heads, one '
                       'shared backbone pass against each model apart', flag_values=fv)
  flags.DEFINE_string('smpl_dir', None, '--heads: an SMPL folder (SMPL_NEUTRAL.pkl and extras) '
                      'for the mesh head', flag_values=fv)
  flags.DEFINE_integer('render_frames', 60, 'frames rendered (0: skip render)', flag_values=fv)
  flags.DEFINE_integer('render_size', 512, 'render panel size in px', flag_values=fv)
  flags.DEFINE_boolean('encode', True, 'render: also encode the video', flag_values=fv)
