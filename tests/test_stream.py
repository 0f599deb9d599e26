"""mbjax.infer.StreamLifter: one fixed-shape jitted step, frame t - k out, causal normalisation."""

import dataclasses
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

import mbjax.infer
from mbjax import models
from mbjax.checkpoint import converted
from mbjax.data import skeletons, transforms
from mbjax.evaluate import h36m
from mbjax.infer import lift, stream
from mbjax.models import dstformer

TINY = dict(dstformer.TINY, maxlen=27)
CLIP, K = 9, 3
SIZE = (640, 480)


@pytest.fixture(scope='module')
def lifter(tmp_path_factory):
  """The infer CLI test's tiny random model, saved as an mbjax.convert dir and loaded back."""
  variables = meta.unbox(models.from_config(TINY).init(jax.random.key(0),
                                                       jnp.zeros((1, 27, 17, 3))))
  path = tmp_path_factory.mktemp('stream') / 'ckpt'
  converted.save(path, variables, {'model': 'pose', 'backbone': dict(TINY)})
  return stream.StreamLifter(str(path), latency=K, clip_len=CLIP).lifter


def _motion(n, seed=0):
  """(n, 17, 3) moving pixel keypoints, confidence in (0.5, 1)."""
  rng = np.random.default_rng(seed)
  base = rng.uniform(100, 400, (17, 2))
  t = np.arange(n)[:, None, None]
  xy = base + 40 * np.sin(t / 3.0 + np.arange(17)[None, :, None]) + 2 * t
  return np.concatenate([xy, rng.uniform(0.5, 1, (n, 17, 1))], axis=-1)


def _padded_window(frames, t, clip):
  """Frames t - clip + 1 .. t, the stream start padded with frame 0."""
  idx = np.clip(np.arange(t - clip + 1, t + 1), 0, None)
  return frames[idx]


def _offline_row(lifter, x, row):
  pred = h36m.predict_clips(lifter.predict, x[None].astype(np.float32), flip=lifter.flip,
                            rootrel=lifter.rootrel, gt_2d=lifter.gt_2d)
  return pred[0, row]


def test_pixel_stream_is_the_offline_window_and_compiles_once(lifter):
  s = stream.StreamLifter.from_lifter(lifter, latency=K, size=SIZE, clip_len=CLIP)
  frames = _motion(2 * CLIP)
  outs = [s.push(f) for f in frames]
  assert s.traces == 1 and s._step._cache_size() == 1
  assert all(o is None for o in outs[:K]) and all(o.shape == (17, 3) for o in outs[K:])
  assert s.frames_seen == 2 * CLIP
  for t in range(K, 2 * CLIP):
    x, _ = lift.normalise(_padded_window(frames, t, CLIP), 'pixel', SIZE)
    np.testing.assert_allclose(outs[t], _offline_row(lifter, x, CLIP - 1 - K), atol=2e-5)
  # Frame t - k's row, not the newest frame's: the rows differ on a moving person.
  x, _ = lift.normalise(_padded_window(frames, 2 * CLIP - 1, CLIP), 'pixel', SIZE)
  assert np.abs(outs[-1] - _offline_row(lifter, x, CLIP - 1)).max() > 1e-3


def test_crop_stream_uses_the_box_of_the_window_and_reset_restarts(lifter):
  s = stream.StreamLifter.from_lifter(lifter, latency=0, clip_len=CLIP)
  frames = _motion(CLIP + 4, seed=1)
  outs = [s.push(f) for f in frames]
  window = _padded_window(frames, len(frames) - 1, CLIP)
  x = transforms.crop_scale_2d(window).astype(np.float32)
  np.testing.assert_allclose(outs[-1], _offline_row(lifter, x, CLIP - 1), atol=2e-5)
  assert s.normalisation == lift.crop_box(window)
  # The whole-track box (offline 'crop') is another input: the causal box really is used.
  whole = lift.normalise(frames, 'crop')[0][-CLIP:]
  assert np.abs(outs[-1] - _offline_row(lifter, whole, CLIP - 1)).max() > 1e-4
  s.reset()
  assert s.frames_seen == 0 and s.normalisation is None
  np.testing.assert_allclose(s.push(frames[0]), outs[0], atol=1e-6)
  assert s.traces == 1


def test_test_time_options_follow_the_lifter(lifter):
  rootrel = dataclasses.replace(lifter, rootrel=True, flip=False)
  s = stream.StreamLifter.from_lifter(rootrel, latency=1, size=SIZE, clip_len=CLIP)
  frames = _motion(3)
  outs = [s.push(f) for f in frames]
  assert np.all(outs[-1][0] == 0) and np.abs(outs[-1][1:]).max() > 0
  x, _ = lift.normalise(_padded_window(frames, 2, CLIP), 'pixel', SIZE)
  np.testing.assert_allclose(outs[-1], _offline_row(rootrel, x, CLIP - 2), atol=2e-5)


@pytest.mark.parametrize('frame, message', [
    (np.zeros((17, 2)), r'shape \(17, 3\).*got \(17, 2\)'),
    (np.zeros((26, 3)), r'got \(26, 3\)'),
    (np.full((17, 3), np.nan), 'NaN or inf'),
])
def test_bad_frames_raise(lifter, frame, message):
  s = stream.StreamLifter.from_lifter(lifter, latency=0, size=SIZE, clip_len=CLIP)
  with pytest.raises(ValueError, match=message):
    s.push(frame)
  assert s.frames_seen == 0


def test_bad_settings_raise(lifter):
  with pytest.raises(ValueError, match='latency=9: must be between 0 and clip_len - 1 = 8'):
    stream.StreamLifter.from_lifter(lifter, latency=CLIP, clip_len=CLIP)
  with pytest.raises(ValueError, match='clip_len=28: must be between 1 and the model maxlen 27'):
    stream.StreamLifter.from_lifter(lifter, clip_len=28)
  assert stream.StreamLifter.from_lifter(lifter).clip_len == 27  # min(maxlen, 81)


def test_coco_frames_convert_and_the_package_exports_lazily():
  coco = _motion(1, seed=2)[0]
  np.testing.assert_array_equal(stream.h36m_frame(coco, 'coco'), skeletons.coco_to_h36m(coco))
  with pytest.raises(ValueError, match='one frame'):
    stream.h36m_frame(coco[None])
  assert mbjax.infer.StreamLifter is stream.StreamLifter
  code = 'import sys, mbjax.infer; print("jax" in sys.modules)'
  done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
  assert done.stdout.strip() == 'False', done.stderr
