"""Mesh loss terms, totals and metrics against the official values, plus known answers."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mbjax.losses import pose as losses
from mbjax.losses import mesh as losses_mesh
from mbjax.metrics import mesh as mesh_metrics
from mbjax.metrics import pose as pose_metrics
from mbjax.data import rotations

RTOL = 1e-5
TERMS = ('loss_3d_pos', 'loss_3d_scale', 'loss_3d_velocity', 'loss_lv', 'loss_lg', 'loss_a',
         'loss_av', 'loss_shape', 'loss_pose', 'loss_norm')


@pytest.fixture(scope='module')
def ref(reference_dir):
  return dict(np.load(reference_dir / 'mesh_loss_tiny.npz'))


def _side(ref, which):
  return {key: ref[f'{which}_{key}'] for key in ('theta', 'kp_3d', 'verts')}


def _results(ref):
  return dict(kp_3d=ref['pred_kp_3d'], verts=ref['pred_verts'], kp_3d_gt=ref['gt_kp_3d'],
              verts_gt=ref['gt_verts'])


@jax.jit
def _both_objectives(pred, gt):
  """(total, parts) for L1 and MSE, compiled once per shape for every test here."""
  return {loss_type: losses_mesh.mesh_objective(pred, gt, loss_type=loss_type)
          for loss_type in ('L1', 'MSE')}


def _close(value, expected, name):
  np.testing.assert_allclose(np.asarray(value, np.float64), np.asarray(expected, np.float64),
                             rtol=RTOL, atol=0, err_msg=name)


@pytest.mark.parametrize('loss_type', ['L1', 'MSE'])
def test_mesh_loss_matches_official(ref, loss_type):
  prefix = loss_type.lower()
  lambdas = json.loads(str(ref['config']))['weights']
  assert lambdas == losses_mesh.PW3D_LAMBDAS
  total, parts = _both_objectives(_side(ref, 'pred'), _side(ref, 'gt'))[loss_type]
  assert set(parts) == set(TERMS)
  for term in TERMS:
    _close(parts[term], ref[f'{prefix}/{term}'], f'{prefix}/{term}')
  _close(total, ref[f'{prefix}/total'], f'{prefix}/total')
  # `_both_objectives` used the default weights (MB_ft_pw3d.yaml); the config's are the same.
  _close(losses_mesh.mesh_total_loss(parts, lambdas), ref[f'{prefix}/total'], 'config lambdas')


def test_loss_type_changes_only_the_regressions(ref):
  both = _both_objectives(_side(ref, 'pred'), _side(ref, 'gt'))
  l1, mse = both['L1'][1], both['MSE'][1]
  for term in TERMS:
    same = float(l1[term]) == float(mse[term])
    assert same == (term not in ('loss_pose', 'loss_shape')), term
  with pytest.raises(ValueError, match='loss_type'):
    losses_mesh.mesh_loss(_side(ref, 'pred'), _side(ref, 'gt'), loss_type='L2')


def test_batch_rodrigues_matches_official_and_scipy(reference_dir):
  head = np.load(reference_dir / 'mesh_head_tiny.npz')
  rodrigues = jax.jit(rotations.batch_rodrigues)  # the one MeshLoss uses
  out = rodrigues(jnp.asarray(head['batch_rodrigues/in']))
  np.testing.assert_allclose(out, head['batch_rodrigues/out'], atol=1e-5, rtol=0)
  rotvec = np.random.default_rng(0).normal(size=(64, 3))
  expected = Rotation.from_rotvec(rotvec).as_matrix().reshape(64, 9)
  np.testing.assert_allclose(rodrigues(jnp.asarray(rotvec, jnp.float32)), expected, atol=1e-5,
                             rtol=0)


def test_compute_error_matches_official(ref):
  pred, gt = _side(ref, 'pred'), _side(ref, 'gt')
  mpjpes, mpve = mesh_metrics.compute_error_frames(pred, gt)
  assert mpjpes.shape == mpve.shape == (8,)
  _close(mpjpes, ref['compute_error_frames/mpjpe'], 'compute_error_frames/mpjpe')
  _close(mpve, ref['compute_error_frames/mpve'], 'compute_error_frames/mpve')
  mean_mpjpe, mean_mpve = mesh_metrics.compute_error(pred, gt)
  _close(mean_mpjpe, ref['compute_error/mpjpe'], 'compute_error/mpjpe')
  _close(mean_mpve, ref['compute_error/mpve'], 'compute_error/mpve')
  # The official vertex count is the default; a wrong one is refused, None takes the inputs'.
  with pytest.raises(ValueError, match='300 vertices'):
    mesh_metrics.compute_error(pred, gt, num_verts=300)
  _close(mesh_metrics.compute_error(pred, gt, num_verts=None)[1], mean_mpve, 'num_verts=None')


def test_evaluate_mesh_matches_official(ref):
  errors = mesh_metrics.evaluate_mesh(_results(ref))
  assert set(errors) == {'mpve', 'mpjpe', 'pa_mpjpe', 'mpjpe_17j', 'pa_mpjpe_17j'}
  for name, value in errors.items():
    _close(value, ref[f'evaluate_mesh/{name}'], f'evaluate_mesh/{name}')
  # Independent: the pose evaluator's Procrustes (another formulation) gives the same PA.
  pred = ref['pred_kp_3d'].reshape(-1, 17, 3)
  gt = ref['gt_kp_3d'].reshape(-1, 17, 3)
  pa_17 = np.mean(pose_metrics.p_mpjpe(pred - pred[:, :1], gt - gt[:, :1]))
  _close(pa_17, errors['pa_mpjpe_17j'], 'p_mpjpe vs rigid_align')


def test_rigid_align_matches_official(ref):
  a, b = ref['rigid_align/A'], ref['rigid_align/B']
  c, rot, t = mesh_metrics.rigid_transform_3D(a, b)
  _close(c, ref['rigid_transform_3D/c'], 'c')
  np.testing.assert_allclose(rot, ref['rigid_transform_3D/R'], atol=1e-6, rtol=0)
  _close(t, ref['rigid_transform_3D/t'], 't')
  np.testing.assert_allclose(mesh_metrics.rigid_align(a, b), ref['rigid_align/out'],
                             atol=1e-4, rtol=RTOL)


def _body(rng, shape):
  """Random skeleton-sized H36M-17 poses in mm."""
  return (rng.normal(size=shape + (17, 3)) * np.array([300.0, 800.0, 300.0])).astype(np.float32)


def test_known_offsets():
  rng = np.random.default_rng(1)
  kp = _body(rng, (2, 4))
  verts = rng.normal(size=(2, 4, 50, 3)).astype(np.float32) * 500
  offset = np.array([6.0, 0.0, 8.0], np.float32)  # 10 mm
  shifted = dict(kp_3d=kp + offset, verts=verts + offset)
  # Without centring every joint is 10 mm off; the mesh metrics centre on joint 0 -> 0.
  np.testing.assert_allclose(pose_metrics.mpjpe(kp + offset, kp), 10.0, rtol=1e-5)
  mpjpes, mpve = mesh_metrics.compute_error_frames(shifted, dict(kp_3d=kp, verts=verts), None)
  np.testing.assert_allclose(mpjpes, 0.0, atol=1e-3)
  np.testing.assert_allclose(mpve, 0.0, atol=1e-3)
  # Vertices moved 10 mm away from their own pelvis: MPVE 10, MPJPE still 0.
  moved = dict(kp_3d=kp, verts=verts + offset)
  mpjpes, mpve = mesh_metrics.compute_error_frames(moved, dict(kp_3d=kp, verts=verts), None)
  np.testing.assert_allclose(mpjpes, 0.0, atol=1e-3)
  np.testing.assert_allclose(mpve, 10.0, rtol=1e-4)
  # The loss is root-relative too: only the GT-free limb variance and the theta norm remain.
  theta = rng.normal(size=(2, 4, 82)).astype(np.float32)
  gt = dict(theta=theta, kp_3d=kp, verts=verts)
  total, parts = _both_objectives(dict(shifted, theta=theta), gt)['L1']
  for term in set(TERMS) - {'loss_lv', 'loss_norm'}:
    assert abs(float(parts[term])) < 1e-3, term
  _close(parts['loss_lv'], np.var(np.asarray(losses.limb_lengths(kp)), axis=1, ddof=1).mean(),
         'loss_lv')
  _close(parts['loss_norm'], np.linalg.norm(theta, axis=-1).mean(), 'loss_norm')
  _close(total, 20 * parts['loss_norm'], 'total')


def test_similarity_copy_has_zero_pa_error():
  rng = np.random.default_rng(2)
  gt = _body(rng, (6,))
  rot = Rotation.random(6, random_state=3).as_matrix()
  pred = 1.7 * np.einsum('nij,nkj->nki', rot, gt) + np.array([100.0, -50.0, 30.0])
  c, r, t = mesh_metrics.rigid_transform_3D(pred, gt)
  np.testing.assert_allclose(c, 1 / 1.7, rtol=1e-6)
  np.testing.assert_allclose(r, np.swapaxes(rot, -1, -2), atol=1e-6)
  verts = rng.normal(size=(6, 20, 3))
  errors = mesh_metrics.evaluate_mesh(
      dict(kp_3d=pred, kp_3d_gt=gt, verts=verts, verts_gt=verts), num_verts=20)
  assert errors['pa_mpjpe'] < 1e-3 and errors['pa_mpjpe_17j'] < 1e-3
  assert errors['mpjpe'] > 100 and errors['mpve'] > 100
  # A mirror image is not a rotation: the reflection fix leaves a clear error.
  mirrored = gt * np.array([-1.0, 1.0, 1.0])
  assert np.all(pose_metrics.mpjpe(mesh_metrics.rigid_align(mirrored, gt), gt) > 10)


def test_padding_clips_and_gradients(ref):
  # A padding clip of garbage (weight 0) changes no term: the official values stand.
  pred, gt = _side(ref, 'pred'), _side(ref, 'gt')
  padded = {k: np.concatenate([v, np.full_like(v[:1], np.nan)]) for k, v in pred.items()}
  padded_gt = {k: np.concatenate([v, v[:1]]) for k, v in gt.items()}
  weighted = jax.jit(losses_mesh.mesh_loss, static_argnames='loss_type')(
      padded, padded_gt, loss_type='L1', weight=jnp.array([1.0, 1.0, 0.0]))
  for term in TERMS:
    _close(weighted[term], ref[f'l1/{term}'], f'padded {term}')
  # Finite, nonzero gradients of the SMPL terms, also at the all-zero theta of a rest pose.
  grad = jax.jit(jax.grad(lambda theta: sum(
      losses_mesh._smpl_terms(theta, gt['theta'], 'MSE', None).values())))
  for theta in (pred['theta'], np.zeros_like(pred['theta'])):
    g = grad(theta)
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0
