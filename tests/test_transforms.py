"""Per-clip transforms: known answers, noise and mask statistics, determinism, clip sampling."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from mbjax.data import transforms as tf

N_CLIPS = 2000  # clips for the statistical tests
K = 27  # keyframes of the official noise model; clips of 27 frames put a keyframe on every frame


@pytest.fixture(scope='module')
def noise():
  return tf.SyntheticNoise.load()


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------


def test_flip_swaps_sides_and_negates_x():
  x = np.random.default_rng(0).normal(size=(2, 5, 17, 3)).astype(np.float32)
  y = tf.flip_pose(x)
  assert y.dtype == np.float32
  np.testing.assert_array_equal(tf.flip_pose(y), x)
  np.testing.assert_array_equal(y[..., 0, :], x[..., 0, :] * [-1, 1, 1])  # pelvis stays
  np.testing.assert_array_equal(y[..., 1, :], x[..., 4, :] * [-1, 1, 1])  # rhip <- lhip
  np.testing.assert_array_equal(y[..., 13, :], x[..., 16, :] * [-1, 1, 1])  # lwrist <- rwrist
  np.testing.assert_array_equal(y[..., 10, :], x[..., 10, :] * [-1, 1, 1])  # head stays
  y_jax = jax.jit(tf.flip_pose)(jnp.asarray(x))
  np.testing.assert_array_equal(np.asarray(y_jax), y)


def test_crop_scale_3d_known_clip():
  # Two frames; x spans [2, 6], y spans [1, 3], first root depth 5: scale 4, offset (2, 0).
  motion = np.zeros((2, 17, 3), np.float32)
  motion[..., 0], motion[..., 1], motion[..., 2] = 4.0, 2.0, 5.0
  motion[0, 0] = [2.0, 1.0, 5.0]
  motion[1, 16] = [6.0, 3.0, 9.0]
  out = tf.crop_scale_3d(motion)
  assert out.dtype == np.float32
  np.testing.assert_allclose(out[0, 0], [-1.0, -0.5, -1.0])  # z: ((5 - 5) / 4 - 0.5) * 2
  np.testing.assert_allclose(out[1, 16], [1.0, 0.5, 1.0])  # z: ((9 - 5) / 4 - 0.5) * 2
  np.testing.assert_allclose(out[1, 3], [0.0, 0.0, -1.0])
  assert out[..., 0].min() == -1.0 and out[..., 0].max() == 1.0
  # A random zoom shrinks the x/y extent to 2 * ratio around the centre.
  outs = [tf.crop_scale_3d(motion, (0.8, 1.2), np.random.default_rng(s)) for s in range(20)]
  widths = np.array([o[..., 0].max() - o[..., 0].min() for o in outs])
  assert np.all((widths >= 1.6 - 1e-6) & (widths <= 2.4 + 1e-6)) and np.ptp(widths) > 0.1
  np.testing.assert_allclose([o[..., 0].max() + o[..., 0].min() for o in outs], 0.0, atol=1e-6)
  np.testing.assert_array_equal(tf.crop_scale_3d(np.ones((3, 17, 3))), np.zeros((3, 17, 3)))
  with pytest.raises(ValueError, match='rng'):
    tf.crop_scale_3d(motion, (0.8, 1.2))


def test_crop_scale_2d_known_clip():
  # Confident joints span x [10, 30], y [0, 10]: scale 20, offset (10, -5).
  motion = np.zeros((1, 17, 3), np.float32)
  motion[..., :2] = [20.0, 5.0]
  motion[..., 2] = 0.7
  motion[0, 1] = [10.0, 0.0, 0.7]
  motion[0, 2] = [30.0, 10.0, 2.0]
  motion[0, 3] = [100.0, -50.0, 0.0]  # not confident: outside the box, clipped
  out = tf.crop_scale_2d(motion)
  np.testing.assert_allclose(out[0, 1], [-1.0, -0.5, 0.7], rtol=1e-6)
  np.testing.assert_allclose(out[0, 2], [1.0, 0.5, 1.0])  # confidence clipped too
  np.testing.assert_allclose(out[0, 3], [1.0, -1.0, 0.0])
  np.testing.assert_allclose(out[0, 0], [0.0, 0.0, 0.7], atol=1e-6)
  # A bigger box (ratio 2) halves every coordinate.
  out2 = tf.crop_scale_2d(motion, (2.0, 2.0))
  np.testing.assert_allclose(out2[0, 1, :2], [-0.5, -0.25], rtol=1e-6)
  few = motion.copy()
  few[0, 3:, 2] = 0.0  # only 3 confident joints
  np.testing.assert_array_equal(tf.crop_scale_2d(few), np.zeros_like(few))


def test_make_cam_uses_the_longer_side():
  x = np.array([[0.0, 0.0], [200.0, 100.0]], np.float32)
  assert tf.make_cam(x, (100, 200)).dtype == np.float32
  np.testing.assert_allclose(tf.make_cam(x, (100, 200)), [[-1, -1], [1, 0]], rtol=1e-6)
  np.testing.assert_allclose(tf.make_cam(x, (400, 100)), [[-1, -1], [0, -0.5]], rtol=1e-6)


def test_make_cam_maps_extra_channels_too():
  # Official make_cam maps the whole array: a third (confidence) channel is scaled like x and y,
  # not copied. Callers pass x, y only (NTU keypoints are (M, T, 17, 2)).
  x = np.array([[0.0, 0.0, 0.4], [200.0, 100.0, 0.9]], np.float32)
  np.testing.assert_allclose(tf.make_cam(x, (100, 200)),
                             [[-1, -1, 0.4 / 100 - 1], [1, 0, 0.9 / 100 - 1]], rtol=1e-6)


def test_random_move_zero_ranges_is_identity():
  motion = np.random.default_rng(1).normal(size=(2, 5, 17, 3)).astype(np.float32)
  out = tf.random_move(motion, np.random.default_rng(2), angle_range=(0, 0), scale_range=(1, 1),
                       transform_range=(0, 0))
  np.testing.assert_allclose(out, motion, atol=1e-7)


def test_random_move_known_transform():
  # Fixed 90 degrees, scale 2, shift 0.5: (x, y) -> (-2 y + 0.5, 2 x + 0.5); z untouched.
  motion = np.random.default_rng(3).normal(size=(1, 4, 17, 3))
  out = tf.random_move(motion, np.random.default_rng(4), angle_range=(90, 90),
                       scale_range=(2, 2), transform_range=(0.5, 0.5))
  np.testing.assert_allclose(out[..., 0], -2 * motion[..., 1] + 0.5, atol=1e-12)
  np.testing.assert_allclose(out[..., 1], 2 * motion[..., 0] + 0.5, atol=1e-12)
  np.testing.assert_array_equal(out[..., 2], motion[..., 2])


def test_random_move_scale_is_linear_in_time():
  motion = np.random.default_rng(5).normal(size=(2, 9, 17, 3))
  motion[..., 2] = 1.0
  out = tf.random_move(motion, np.random.default_rng(6))
  # Per frame a similarity: all xy distances scale by the same s_t, which moves linearly in t.
  dist = lambda m: np.linalg.norm(m[..., 3, :2] - m[..., 12, :2], axis=-1)
  s = dist(out) / dist(motion)  # (2, 9)
  np.testing.assert_allclose(s[0], s[1], rtol=1e-9)
  np.testing.assert_allclose(s[0], np.linspace(s[0, 0], s[0, -1], 9), rtol=1e-9)
  assert np.all((s >= 0.9) & (s <= 1.1)) and abs(s[0, -1] - s[0, 0]) > 1e-4
  np.testing.assert_array_equal(out[..., 2], 1.0)


# ---------------------------------------------------------------------------------------------
# Synthetic noise and masking
# ---------------------------------------------------------------------------------------------


def _noisy_clips(noise, n_clips, n_frames, seed):
  rng = np.random.default_rng(seed)
  clean = np.zeros((n_frames, 17, 2), np.float32)
  return np.stack([noise.add_noise(clean, rng) for _ in range(n_clips)])


def test_noise_matches_the_model_moments(noise):
  out = _noisy_clips(noise, N_CLIPS, K, seed=0).astype(np.float64)
  assert out.shape == (N_CLIPS, K, 17, 3)
  d = out[..., :2].reshape(-1, 17, 2)  # clean input is 0: the output is the displacement
  n = d.shape[0]
  w = noise.weight[:, None]
  jitter_var = noise.temporal_noise_std**2
  uniform_var = noise.uniform_range**2 / 12
  mean = w * noise.mean
  var = w * (noise.std**2 + noise.mean**2) + (1 - w) * uniform_var - mean**2 + jitter_var
  assert np.all(np.abs(d.mean(0) - mean) <= 5 * np.sqrt(var / n))
  np.testing.assert_allclose(d.var(0), var, rtol=0.06)


def test_noise_components(noise):
  # Shift the Gaussian by 0.5 so that each displacement tells which component drew it.
  shifted = dataclasses.replace(noise, mean=noise.mean + 0.5)
  d = _noisy_clips(shifted, N_CLIPS, K, seed=1)[..., :2].astype(np.float64).reshape(-1, 17, 2)
  n = d.shape[0]
  gaussian = d[..., 0] > 0.25
  np.testing.assert_array_equal(gaussian, d[..., 1] > 0.25)  # one draw per joint for x and y
  frac = gaussian.mean(0)
  w = noise.weight
  assert np.all(np.abs(frac - w) <= 5 * np.sqrt(w * (1 - w) / n) + 1e-3)
  std = np.sqrt(noise.std**2 + noise.temporal_noise_std**2)
  for j in range(17):
    g = d[gaussian[:, j], j]
    assert np.all(np.abs(g.mean(0) - shifted.mean[j]) <= 5 * std[j] / np.sqrt(len(g))), j
    np.testing.assert_allclose(g.std(0), std[j], rtol=0.05)
  u = d[~gaussian]
  bound = noise.uniform_range / 2 + 6 * noise.temporal_noise_std
  assert np.abs(u).max() <= bound and np.abs(u).max() >= noise.uniform_range / 2 - 0.001
  u_std = np.sqrt(noise.uniform_range**2 / 12 + noise.temporal_noise_std**2)
  np.testing.assert_allclose(u.std(0), u_std, rtol=0.03)


def test_noise_confidence(noise):
  out = _noisy_clips(noise, N_CLIPS, K, seed=2).astype(np.float64)
  conf = out[..., 2].ravel()
  dist = np.linalg.norm(out[..., :2], axis=-1).ravel()
  assert conf.min() >= 0.0 and conf.max() <= 1.0
  # Expected clip(f(d) + N(m, s), 0, 1) given d, in closed form.
  mu = noise.d2c_a / (dist + noise.d2c_a) + noise.d2c_b * dist + noise.d2c_m
  s = noise.d2c_s

  def mean_excess(c):  # E[max(X - c, 0)] for X ~ N(mu, s)
    z = (mu - c) / s
    return (mu - c) * stats.norm.cdf(z) + s * stats.norm.pdf(z)

  expected = mean_excess(0.0) - mean_excess(1.0)
  assert abs(conf.mean() - expected.mean()) <= 1e-3
  bins = [0.0, 0.005, 0.01, 0.02, 0.04]
  means = [conf[(dist >= lo) & (dist < hi)].mean() for lo, hi in zip(bins[:-1], bins[1:])]
  assert np.all(np.diff(means) < 0), means


def test_noise_interpolates_keyframes(noise):
  # 53 frames from 27 keyframes: keyframe k lands on frame 2k; odd frames are midpoints.
  still = dataclasses.replace(noise, temporal_noise_std=0.0)
  clean = np.random.default_rng(3).normal(size=(53, 17, 2))
  out = still.add_noise(clean, np.random.default_rng(4))
  delta = out[..., :2] - clean
  np.testing.assert_allclose(delta[1:-1:2], (delta[0:-2:2] + delta[2::2]) / 2, atol=1e-12)
  assert np.abs(delta[0:-2:2] - delta[2::2]).max() > 1e-3
  assert noise.add_noise(clean[:1], np.random.default_rng(5)).shape == (1, 17, 3)


def test_mask_rates():
  rng = np.random.default_rng(6)
  x = np.ones((K, 17, 3), np.float32)
  masked = np.stack([tf.add_mask(x, rng) for _ in range(N_CLIPS)])
  zero = masked == 0
  np.testing.assert_array_equal(zero.all(-1), zero.any(-1))  # a joint loses all its channels
  joint_zero = zero[..., 0].reshape(-1, 17)
  frame_zero = joint_zero.all(-1)
  assert abs(frame_zero.mean() - 0.1) <= 5 * np.sqrt(0.09 / len(frame_zero))
  kept = joint_zero[~frame_zero]
  assert abs(kept.mean() - 0.05) <= 5 * np.sqrt(0.0475 / kept.size)
  np.testing.assert_array_equal(masked[~zero], 1.0)


def test_random_ops_are_deterministic(noise):
  clip = np.random.default_rng(7).normal(size=(16, 17, 3)).astype(np.float32)
  ops = {
      'noise': lambda rng: noise.add_noise(clip, rng),
      'mask': lambda rng: tf.add_mask(clip, rng),
      'move': lambda rng: tf.random_move(clip[None], rng),
      'crop3d': lambda rng: tf.crop_scale_3d(clip, (0.8, 1.2), rng),
      'crop2d': lambda rng: tf.crop_scale_2d(np.abs(clip), (0.8, 1.2), rng),
      'resample_up': lambda rng: tf.resample_indices(10, 40, rng),
      'resample_down': lambda rng: tf.resample_indices(40, 10, rng),
  }
  for name, op in ops.items():
    a, b, c = op(np.random.default_rng(8)), op(np.random.default_rng(8)), op(
        np.random.default_rng(9))
    np.testing.assert_array_equal(a, b, err_msg=name)
    assert not np.array_equal(a, c), name


# ---------------------------------------------------------------------------------------------
# Clip sampling
# ---------------------------------------------------------------------------------------------


def test_resample_indices_without_randomness():
  np.testing.assert_array_equal(tf.resample_indices(10, 4), [0, 2, 5, 7])
  np.testing.assert_array_equal(tf.resample_indices(3, 6), [0, 0, 1, 1, 2, 2])
  np.testing.assert_array_equal(tf.resample_indices(5, 5), np.arange(5))


def test_resample_indices_with_randomness():
  # Upsampling 3 -> 6: even = [0, .5, 1, 1.5, 2, 2.5], each rounded down or up (3 clipped to 2).
  ups = np.array([tf.resample_indices(3, 6, np.random.default_rng(s)) for s in range(200)])
  allowed = [{0}, {0, 1}, {1}, {1, 2}, {2}, {2}]
  for i, values in enumerate(allowed):
    assert set(ups[:, i]) == values, i
  assert np.all(np.diff(ups, axis=1) >= 0)
  # Downsampling 10 -> 4: even = [0, 2.5, 5, 7.5] plus U(0, 2.5), then truncated.
  downs = np.array([tf.resample_indices(10, 4, np.random.default_rng(s)) for s in range(200)])
  allowed = [{0, 1, 2}, {2, 3, 4}, {5, 6, 7}, {7, 8, 9}]
  for i, values in enumerate(allowed):
    assert set(downs[:, i]) == values, i
