"""Losses and metrics against the official values, known answers, and per-clip weighting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mbjax.losses import pose as losses

TOL = 1e-5

PAIR_LOSSES = {
    'loss_mpjpe': losses.loss_mpjpe,
    'n_mpjpe': losses.n_mpjpe,
    'loss_velocity': losses.loss_velocity,
    'loss_limb_gt': losses.loss_limb_gt,
    'loss_angle': losses.loss_angle,
    'loss_angle_velocity': losses.loss_angle_velocity,
}


@pytest.fixture(scope='module')
def ref(reference_dir):
  return dict(np.load(reference_dir / 'losses_tiny.npz'))


def _all_losses(pred, target, conf):
  values = {name: fn(pred, target) for name, fn in PAIR_LOSSES.items()}
  values['loss_2d_weighted'] = losses.loss_2d_weighted(pred, target, conf)
  values['loss_limb_var'] = losses.loss_limb_var(pred)
  return values


def _pose(rng, n=1):
  """(n, 17, 3) random but skeleton-like poses: joints spread around a body-sized box."""
  return (rng.normal(size=(n, 17, 3)) * np.array([0.3, 0.8, 0.3])).astype(np.float32)


@pytest.mark.parametrize('jit', [False, True])
def test_losses_match_official(ref, jit):
  fn = jax.jit(_all_losses) if jit else _all_losses
  values = fn(ref['pred'], ref['target'], ref['conf'])
  assert set(values) == {'loss_mpjpe', 'n_mpjpe', 'loss_velocity', 'loss_2d_weighted',
                         'loss_limb_var', 'loss_limb_gt', 'loss_angle', 'loss_angle_velocity'}
  for name, value in values.items():
    assert abs(float(value) - float(ref[name])) <= TOL, name


def test_metrics_match_official(ref):
  pred, target = ref['pred'].reshape(27, 17, 3), ref['target'].reshape(27, 17, 3)
  np.testing.assert_allclose(losses.mpjpe(pred, target), ref['mpjpe'], atol=TOL, rtol=0)
  np.testing.assert_allclose(losses.p_mpjpe(pred, target), ref['p_mpjpe'], atol=TOL, rtol=0)
  jitted = jax.jit(lambda p, t: (losses.mpjpe_jax(p, t), losses.p_mpjpe_jax(p, t)))
  m, pm = jitted(pred, target)
  np.testing.assert_allclose(m, ref['mpjpe'], atol=TOL, rtol=0)
  np.testing.assert_allclose(pm, ref['p_mpjpe'], atol=TOL, rtol=0)


def test_pretrain_loss_3d_combines_official_terms(ref):
  lambdas = dict(lambda_scale=0.5, lambda_3d_velocity=20.0, lambda_lv=0.3, lambda_lg=0.7,
                 lambda_a=1.5, lambda_av=2.5)
  total, parts = jax.jit(lambda p, t: losses.pretrain_loss_3d(p, t, **lambdas))(
      ref['pred'], ref['target'])
  expected = (ref['loss_mpjpe'] + 0.5 * ref['n_mpjpe'] + 20.0 * ref['loss_velocity'] +
              0.3 * ref['loss_limb_var'] + 0.7 * ref['loss_limb_gt'] + 1.5 * ref['loss_angle'] +
              2.5 * ref['loss_angle_velocity'])
  assert abs(float(total) - float(expected)) <= 1e-4
  assert abs(float(parts['loss_3d_pos']) - float(ref['loss_mpjpe'])) <= TOL
  assert abs(float(parts['loss_av']) - float(ref['loss_angle_velocity'])) <= TOL
  # Official defaults: only position, scale (0.5) and velocity (20) count.
  default_total, _ = losses.pretrain_loss_3d(ref['pred'], ref['target'])
  expected = ref['loss_mpjpe'] + 0.5 * ref['n_mpjpe'] + 20.0 * ref['loss_velocity']
  assert abs(float(default_total) - float(expected)) <= 1e-4
  total_2d, parts_2d = losses.pretrain_loss_2d(ref['pred'], ref['target'], ref['conf'])
  assert abs(float(total_2d) - float(ref['loss_2d_weighted'])) <= TOL
  assert set(parts_2d) == {'loss_2d_proj'}


def test_identical_inputs_give_zero(ref):
  x = ref['target']
  values = _all_losses(x, x, ref['conf'])
  del values['loss_limb_var']  # a property of one clip, not a comparison
  for name, value in values.items():
    assert abs(float(value)) <= 1e-6, name
  np.testing.assert_allclose(losses.mpjpe(x[0], x[0]), 0.0, atol=1e-7)
  np.testing.assert_allclose(losses.p_mpjpe(x[0], x[0]), 0.0, atol=1e-5)
  # A rigid clip (the same pose every frame) has no bone-length variance.
  still = np.repeat(x[:, :1], x.shape[1], axis=1)
  assert abs(float(losses.loss_limb_var(still))) <= 1e-6


def test_constant_offset():
  rng = np.random.default_rng(0)
  target = _pose(rng, 2 * 5).reshape(2, 5, 17, 3)
  d = np.array([0.3, -0.4, 1.2], np.float32)
  pred = target + d
  norm = float(np.linalg.norm(d))
  assert abs(float(losses.loss_mpjpe(pred, target)) - norm) <= 1e-5
  np.testing.assert_allclose(losses.mpjpe(pred[0], target[0]), np.full(5, norm), atol=1e-5)
  np.testing.assert_allclose(losses.mpjpe_jax(pred[0], target[0]), np.full(5, norm), atol=1e-5)
  # Every other term ignores a global shift.
  for name in ('loss_velocity', 'loss_limb_gt', 'loss_angle', 'loss_angle_velocity'):
    assert abs(float(PAIR_LOSSES[name](pred, target))) <= 1e-5, name
  np.testing.assert_allclose(losses.p_mpjpe(pred[0], target[0]), 0.0, atol=1e-5)


def test_n_mpjpe_ignores_scale():
  rng = np.random.default_rng(1)
  target = _pose(rng, 6).reshape(2, 3, 17, 3)
  assert float(losses.n_mpjpe(2.5 * target, target)) <= 1e-5
  assert float(losses.loss_mpjpe(2.5 * target, target)) > 0.5


def test_velocity_known_answer():
  # Prediction drifts by v per frame, target is still: every velocity error is |v|.
  rng = np.random.default_rng(2)
  target = np.repeat(_pose(rng)[None], 6, axis=1)  # (1, 6, 17, 3)
  v = np.array([0.0, 0.3, 0.4], np.float32)
  pred = target + np.arange(6, dtype=np.float32)[None, :, None, None] * v
  assert abs(float(losses.loss_velocity(pred, target)) - 0.5) <= 1e-5


def test_single_frame_temporal_terms_are_zero():
  rng = np.random.default_rng(3)
  pred, target = _pose(rng)[None], _pose(rng)[None]  # (1, 1, 17, 3)
  assert float(losses.loss_velocity(pred, target)) == 0.0
  assert float(losses.loss_limb_var(pred)) == 0.0
  assert float(losses.loss_angle_velocity(pred, target)) == 0.0
  assert float(losses.loss_mpjpe(pred, target)) > 0.0


def test_limb_and_angle_known_answers():
  # An L-shaped right leg: hip->knee along -y, knee->ankle along +x (bones 1 and 2, angle 90 deg).
  pose = np.zeros((1, 1, 17, 3), np.float32)
  pose[..., 1, :] = [0.0, 0.0, 0.0]
  pose[..., 2, :] = [0.0, -2.0, 0.0]
  pose[..., 3, :] = [1.0, -2.0, 0.0]
  lengths = np.asarray(losses.limb_lengths(pose))[0, 0]
  assert abs(lengths[1] - 2.0) <= 1e-6 and abs(lengths[2] - 1.0) <= 1e-6
  angles = np.asarray(losses.limb_angles(pose))[0, 0]
  assert abs(angles[4] - np.pi / 2) <= 1e-5  # ANGLES[4] = bones (1, 2)
  # Straighten the knee: that angle becomes pi, a difference of pi/2 in 1 of 18 angles.
  straight = pose.copy()
  straight[..., 3, :] = [0.0, -3.0, 0.0]
  assert abs(float(losses.loss_angle(straight, pose)) - (np.pi / 2) / 18) <= 1e-4
  assert abs(float(losses.loss_limb_gt(straight, pose)) - 0.0) <= 1e-6


def test_procrustes_removes_similarity_transform():
  rng = np.random.default_rng(4)
  target = _pose(rng, 8)
  rot = Rotation.random(8, random_state=5).as_matrix().astype(np.float32)
  scale = rng.uniform(0.5, 2.0, size=(8, 1, 1)).astype(np.float32)
  shift = rng.normal(size=(8, 1, 3)).astype(np.float32)
  pred = scale * target @ rot + shift
  assert np.all(losses.mpjpe(pred, target) > 0.1)
  np.testing.assert_allclose(losses.p_mpjpe(pred, target), 0.0, atol=1e-5)
  np.testing.assert_allclose(losses.p_mpjpe_jax(pred, target), 0.0, atol=1e-5)


def test_procrustes_does_not_reflect():
  rng = np.random.default_rng(6)
  target = _pose(rng, 4)
  pred = target * np.array([-1.0, 1.0, 1.0], np.float32)  # a mirror image
  aligned = losses.procrustes_align(pred, target)
  # A reflection would align it exactly; the best proper similarity cannot.
  assert np.all(losses.p_mpjpe(pred, target) > 0.05)
  # Its residual equals that of an independent proper-rotation fit (scipy's Kabsch + best scale).
  for i in range(4):
    x0 = target[i] - target[i].mean(0)
    y0 = pred[i] - pred[i].mean(0)
    rot, _ = Rotation.align_vectors(x0, y0)
    y_rot = rot.apply(y0)
    a = np.sum(x0 * y_rot) / np.sum(y_rot**2)
    sse_scipy = np.sum((a * y_rot - x0)**2)
    sse_ours = np.sum((aligned[i] - target[i])**2)
    assert abs(sse_ours - sse_scipy) <= 1e-4 * max(1.0, sse_scipy)
  np.testing.assert_allclose(losses.p_mpjpe_jax(pred, target), losses.p_mpjpe(pred, target),
                             atol=1e-5)


def test_weight_all_ones_is_official_mean(ref):
  ones = jnp.ones(3)
  total, parts = losses.pretrain_loss_3d(ref['pred'], ref['target'], lambda_lv=1.0, lambda_lg=1.0,
                                         lambda_a=1.0, lambda_av=1.0)
  total_w, parts_w = losses.pretrain_loss_3d(ref['pred'], ref['target'], lambda_lv=1.0,
                                             lambda_lg=1.0, lambda_a=1.0, lambda_av=1.0,
                                             weight=ones)
  assert abs(float(total) - float(total_w)) <= 1e-4
  for name in parts:
    assert abs(float(parts[name]) - float(parts_w[name])) <= TOL, name
  total_2d, _ = losses.pretrain_loss_2d(ref['pred'], ref['target'], ref['conf'], weight=ones)
  assert abs(float(total_2d) - float(ref['loss_2d_weighted'])) <= TOL


def test_weight_drops_padding_clips(ref):
  pred, target = ref['pred'].copy(), ref['target'].copy()
  keep = [0, 2]
  expected, expected_parts = losses.pretrain_loss_3d(pred[keep], target[keep], lambda_lv=1.0)
  # Clip 1 becomes padding: all zeros, which would give 0/0 in the official n_mpjpe.
  pred[1] = 0.0
  target[1] = 0.0
  weight = jnp.array([1.0, 0.0, 1.0])

  def objective(p):
    return losses.pretrain_loss_3d(p, target, lambda_lv=1.0, lambda_a=1.0, lambda_av=1.0,
                                   weight=weight)

  (total, parts), grad = jax.jit(jax.value_and_grad(objective, has_aux=True))(pred)
  for name in ('loss_3d_pos', 'loss_3d_scale', 'loss_3d_velocity', 'loss_lv'):
    assert abs(float(parts[name]) - float(expected_parts[name])) <= TOL, name
  assert np.all(np.isfinite(grad))
  assert np.all(np.asarray(grad)[1] == 0.0)
  assert np.any(np.asarray(grad)[0] != 0.0)
  # Fractional weights average the per-clip values.
  per_clip = [float(losses.loss_mpjpe(ref['pred'][i:i + 1], ref['target'][i:i + 1]))
              for i in range(3)]
  w = np.array([0.5, 1.0, 2.0], np.float32)
  weighted = losses.loss_mpjpe(ref['pred'], ref['target'], weight=w)
  assert abs(float(weighted) - np.dot(w, per_clip) / w.sum()) <= TOL
  assert float(losses.loss_mpjpe(ref['pred'], ref['target'], weight=np.zeros(3))) == 0.0
  with pytest.raises(ValueError, match='per-clip weight'):
    losses.loss_mpjpe(ref['pred'], ref['target'], weight=np.ones(2))
  assert np.isfinite(float(total))


def test_gradients_finite_with_masked_joints(ref):
  # Zero confidence makes the weighted difference exactly 0, where a plain norm's gradient is NaN.
  conf = ref['conf'].copy()
  conf[:, :, :5] = 0.0
  grad = jax.jit(jax.grad(lambda p: losses.pretrain_loss_2d(p, ref['target'], conf)[0]))(
      ref['pred'])
  assert np.all(np.isfinite(grad))
  assert np.all(np.asarray(grad)[:, :, :5] == 0.0)
  # Identical prediction and target: a zero gradient, not NaN.
  loss_3d = lambda p: losses.pretrain_loss_3d(p, ref['target'], lambda_lg=1.0)[0]
  grad = jax.jit(jax.grad(loss_3d))(ref['target'])
  assert np.all(np.isfinite(grad))


def test_shape_errors_name_the_function(ref):
  with pytest.raises(ValueError, match='loss_mpjpe'):
    losses.loss_mpjpe(ref['pred'], ref['target'][:, :5])
  with pytest.raises(ValueError, match='p_mpjpe|procrustes'):
    losses.p_mpjpe(ref['pred'][0], ref['target'][1, :4])
