"""The mesh-recovery training loss: the official `MeshLoss` and the train_mesh.py total, in jax.

`mesh_loss` computes every term the official `lib/model/loss_mesh.py` `MeshLoss` returns; the
seven keypoint terms are the pose losses of `mbjax.losses` applied to root-relative (joint 0)
H36M-17 keypoints, and three regressions act on SMPL parameters: `loss_pose` on the rotation
matrices of the axis-angles, `loss_shape` on the betas, `loss_norm` the norm of theta.
`mesh_total_loss` weighs them as train_mesh.py does (`lambda_*` of the config; the defaults are
those of MB_ft_pw3d.yaml). Everything is jit-able.

Inputs are dicts with `theta` (N, T, 82) = 24 axis-angles (72) + betas (10), `kp_3d`
(N, T, 17, 3) and `verts` (N, T, V, 3) in mm (`verts` is not used by the loss).
"""

from __future__ import annotations

from typing import Mapping

import jax.numpy as jnp

from mbjax.losses import pose as losses
from mbjax.data import rotations
# Private helpers shared on purpose: the same zero-safe norm and per-clip weighted mean as the
# pose losses, so that a padding clip (weight 0) contributes nothing to any mesh term either.
from mbjax.losses.pose import _norm, _reduce

__all__ = ['MESH_TERMS', 'PW3D_LAMBDAS', 'mesh_loss', 'mesh_total_loss', 'mesh_objective']

NUM_POSE = 72  # 24 SMPL joints x axis-angle

# Official train_mesh.py weight name -> MeshLoss term it multiplies.
MESH_TERMS = {
    'lambda_3d': 'loss_3d_pos',
    'lambda_scale': 'loss_3d_scale',
    'lambda_3dv': 'loss_3d_velocity',
    'lambda_lv': 'loss_lv',
    'lambda_lg': 'loss_lg',
    'lambda_a': 'loss_a',
    'lambda_av': 'loss_av',
    'lambda_shape': 'loss_shape',
    'lambda_pose': 'loss_pose',
    'lambda_norm': 'loss_norm',
}
# configs/mesh/MB_ft_pw3d.yaml of the official code.
PW3D_LAMBDAS = {
    'lambda_3d': 0.5, 'lambda_scale': 0.0, 'lambda_3dv': 10.0, 'lambda_lv': 0.0,
    'lambda_lg': 0.0, 'lambda_a': 0.0, 'lambda_av': 0.0, 'lambda_pose': 1000.0,
    'lambda_shape': 1.0, 'lambda_norm': 20.0,
}


def _regression(pred: jnp.ndarray, target: jnp.ndarray, loss_type: str,
                weight: jnp.ndarray | None) -> jnp.ndarray:
  """Official `criterion_regr`: elementwise L1 or MSE, mean over everything; inputs (N, ...)."""
  diff = pred - target
  values = jnp.abs(diff) if loss_type == 'L1' else diff * diff
  return _reduce(values, weight)


def _check_inputs(pred: Mapping, gt: Mapping, loss_type: str) -> None:
  if loss_type not in ('L1', 'MSE'):
    raise ValueError(f"mesh_loss: loss_type={loss_type!r}, expected 'L1' or 'MSE'")
  for name, shape_tail in (('theta', (NUM_POSE + 10,)), ('kp_3d', (17, 3))):
    for which, d in (('pred', pred), ('gt', gt)):
      if name not in d:
        raise ValueError(f'mesh_loss: {which} has no {name!r} (keys: {sorted(d)})')
      if d[name].ndim != 2 + len(shape_tail) or tuple(d[name].shape[2:]) != shape_tail:
        raise ValueError(f'mesh_loss: expected {which}[{name!r}] of shape (N, T, '
                         f'{", ".join(map(str, shape_tail))}), got {d[name].shape}')
    if pred[name].shape != gt[name].shape:
      raise ValueError(f'mesh_loss: pred and gt {name!r} differ in shape: {pred[name].shape} '
                       f'and {gt[name].shape}')


def _keypoint_terms(pred_kp: jnp.ndarray, gt_kp: jnp.ndarray,
                    weight: jnp.ndarray | None) -> dict:
  """The seven pose losses of `mbjax.losses` on root-relative (N, T, 17, 3) keypoints."""
  pred_local = pred_kp - pred_kp[:, :, :1]
  gt_local = gt_kp - gt_kp[:, :, :1]
  return {
      'loss_3d_pos': losses.loss_mpjpe(pred_local, gt_local, weight),
      'loss_3d_scale': losses.n_mpjpe(pred_local, gt_local, weight),
      'loss_3d_velocity': losses.loss_velocity(pred_local, gt_local, weight),
      'loss_lv': losses.loss_limb_var(pred_local, weight),
      'loss_lg': losses.loss_limb_gt(pred_local, gt_local, weight),
      'loss_a': losses.loss_angle(pred_local, gt_local, weight),
      'loss_av': losses.loss_angle_velocity(pred_local, gt_local, weight),
  }


def _smpl_terms(pred_theta: jnp.ndarray, gt_theta: jnp.ndarray, loss_type: str,
                weight: jnp.ndarray | None) -> dict:
  """Pose (rotation matrices), shape (betas) and theta-norm terms of (N, T, 82) thetas."""
  n, t = pred_theta.shape[:2]
  # Official utils_mesh batch_rodrigues (+1e-8 on every component, via a quaternion), (..., 9).
  pred_rot = rotations.batch_rodrigues(pred_theta[..., :NUM_POSE]).reshape(n, t, 24, 9)
  gt_rot = rotations.batch_rodrigues(gt_theta[..., :NUM_POSE]).reshape(n, t, 24, 9)
  return {
      'loss_shape': _regression(pred_theta[..., NUM_POSE:], gt_theta[..., NUM_POSE:], loss_type,
                                weight),
      'loss_pose': _regression(pred_rot, gt_rot, loss_type, weight),
      # Officially the norm of the whole 82-d theta, betas included, averaged over frames.
      'loss_norm': _reduce(_norm(pred_theta), weight),
  }


def mesh_loss(pred: Mapping[str, jnp.ndarray], gt: Mapping[str, jnp.ndarray], *,
              loss_type: str = 'MSE', weight: jnp.ndarray | None = None) -> dict:
  """Every term of the official `MeshLoss` (unweighted), under its official name.

  Args:
    pred: dict with `theta` (N, T, 82) and `kp_3d` (N, T, 17, 3) mm (other keys ignored).
    gt: the ground truth, same keys and shapes.
    loss_type: 'L1' or 'MSE' (the official default); it changes only `loss_pose` and
      `loss_shape`.
    weight: optional (N,) per-clip weight (0 for padding clips); without it every term is the
      official batch mean.

  Returns:
    dict of scalars: loss_3d_pos, loss_3d_scale, loss_3d_velocity, loss_lv, loss_lg, loss_a,
    loss_av, loss_shape, loss_pose, loss_norm.
  """
  _check_inputs(pred, gt, loss_type)
  parts = _keypoint_terms(pred['kp_3d'], gt['kp_3d'], weight)
  parts.update(_smpl_terms(pred['theta'], gt['theta'], loss_type, weight))
  return parts


def mesh_total_loss(parts: Mapping[str, jnp.ndarray],
                    lambdas: Mapping[str, float] | None = None) -> jnp.ndarray:
  """train_mesh.py's objective: sum of `lambda_*` x term (MeshLoss itself returns no total).

  Args:
    parts: the terms of `mesh_loss`.
    lambdas: weights by official config name (keys of MESH_TERMS); missing ones take the
      MB_ft_pw3d.yaml value.
  """
  lambdas = {**PW3D_LAMBDAS, **(lambdas or {})}
  unknown = set(lambdas) - set(MESH_TERMS)
  if unknown:
    raise ValueError(f'mesh_total_loss: unknown weights {sorted(unknown)}, expected some of '
                     f'{sorted(MESH_TERMS)}')
  return sum(lambdas[name] * parts[term] for name, term in MESH_TERMS.items())


def mesh_objective(pred: Mapping[str, jnp.ndarray], gt: Mapping[str, jnp.ndarray], *,
                   loss_type: str = 'MSE', lambdas: Mapping[str, float] | None = None,
                   weight: jnp.ndarray | None = None) -> tuple[jnp.ndarray, dict]:
  """(total, parts): `mesh_loss` and `mesh_total_loss` together, for a train step."""
  parts = mesh_loss(pred, gt, loss_type=loss_type, weight=weight)
  return mesh_total_loss(parts, lambdas), parts
