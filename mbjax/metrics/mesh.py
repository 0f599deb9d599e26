"""Mesh-recovery metrics: what the official train_mesh.py logs and reports, in numpy.

`compute_error` / `compute_error_frames` (the per-batch training log) and `evaluate_mesh` (the
test-set report) of the official `lib/utils/utils_mesh.py`, and its Procrustes helpers
`rigid_transform_3D` / `rigid_align` (Umeyama: scale, rotation with the reflection fix,
translation). Keypoints are H36M-17 (N, ..., 17, 3) and vertices (N, ..., V, 3), in mm.

The official functions reshape vertices to (-1, 6890, 3) (the SMPL mesh); here the vertex count
is the `num_verts` argument, 6890 by default, or None for the input's own V (e.g. the synthetic
300-vertex test model). MPVE centres each mesh on its own pelvis, joint 0 of its `kp_3d` (which
the model regresses from that mesh with J_regressor_h36m), not on a vertex mean.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from mbjax.metrics.pose import mpjpe

__all__ = ['SMPL_NUM_VERTS', 'H36M_17_TO_14', 'compute_error', 'compute_error_frames',
           'evaluate_mesh', 'rigid_transform_3D', 'rigid_align']

SMPL_NUM_VERTS = 6890
# H36M-17 without pelvis (0), spine (7) and nose (9): the 14 joints of the official report.
H36M_17_TO_14 = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)


def _flatten(x, tail: tuple[int, ...], name: str) -> np.ndarray:
  """(N, ..., *tail) -> (K, *tail), as the official `reshape(-1, ...)`."""
  x = np.asarray(x)
  size = int(np.prod(tail))
  if x.ndim < len(tail) or x.size % size or tuple(x.shape[-len(tail):]) != tail:
    raise ValueError(f'mesh_metrics: expected {name} of shape (..., '
                     f'{", ".join(map(str, tail))}), got {x.shape}')
  return x.reshape((-1,) + tail)


def _frames(kp_3d, verts, num_verts: int | None, name: str) -> tuple[np.ndarray, np.ndarray]:
  """Flattened (K, 17, 3) keypoints and (K, V, 3) vertices of `name`, checked for equal K."""
  verts = np.asarray(verts)
  num_verts = verts.shape[-2] if num_verts is None else num_verts
  kp = _flatten(kp_3d, (17, 3), f'{name} kp_3d')
  verts = _flatten(verts, (num_verts, 3), f'{name} verts ({num_verts} vertices)')
  if len(kp) != len(verts):
    raise ValueError(f'mesh_metrics: {name} has {len(kp)} keypoint frames but {len(verts)} '
                     f'meshes')
  return kp, verts


def compute_error_frames(pred: Mapping, gt: Mapping,
                         num_verts: int | None = SMPL_NUM_VERTS) -> tuple[np.ndarray, np.ndarray]:
  """Per-frame 17-joint MPJPE and MPVE, both root-relative (the official function).

  Args:
    pred: dict with `kp_3d` (N, T, 17, 3) and `verts` (N, T, V, 3), mm.
    gt: the ground truth, same keys and shapes.
    num_verts: vertices per mesh (official: 6890); None takes the inputs' V.

  Returns:
    (mpjpe, mpve), each (N * T,): keypoints minus their joint 0, vertices minus the joint 0 of
    their own mesh's keypoints.
  """
  pred_kp, pred_verts = _frames(pred['kp_3d'], pred['verts'], num_verts, 'pred')
  gt_kp, gt_verts = _frames(gt['kp_3d'], gt['verts'], num_verts, 'gt')
  mpve = mpjpe(pred_verts - pred_kp[:, :1], gt_verts - gt_kp[:, :1])
  mpjpes = mpjpe(pred_kp - pred_kp[:, :1], gt_kp - gt_kp[:, :1])
  return mpjpes, mpve


def compute_error(pred: Mapping, gt: Mapping,
                  num_verts: int | None = SMPL_NUM_VERTS) -> tuple[float, float]:
  """Batch means (mpjpe, mpve) of `compute_error_frames`: the official per-batch log."""
  mpjpes, mpve = compute_error_frames(pred, gt, num_verts)
  return float(np.mean(mpjpes)), float(np.mean(mpve))


def rigid_transform_3D(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Least-squares similarity transform B ~ c R A + t (Umeyama), batched over leading axes.

  Args:
    A: (..., J, 3) source points (the prediction).
    B: (..., J, 3) target points.

  Returns:
    (c (...), R (..., 3, 3), t (..., 3)), float64, such that `rigid_align` is
    `c * A @ R.T + t`; R is a proper rotation (a reflecting fit flips the weakest direction).
  """
  A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
  if A.shape != B.shape or A.ndim < 2 or A.shape[-1] != 3:
    raise ValueError(f'rigid_transform_3D: expected A and B of the same shape (..., J, 3), got '
                     f'{A.shape} and {B.shape}')
  centroid_a, centroid_b = A.mean(axis=-2), B.mean(axis=-2)
  a0, b0 = A - centroid_a[..., None, :], B - centroid_b[..., None, :]
  h = np.swapaxes(a0, -1, -2) @ b0 / A.shape[-2]
  u, s, vt = np.linalg.svd(h)
  rot = np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)
  sign = np.where(np.linalg.det(rot) < 0, -1.0, 1.0)
  s = np.concatenate([s[..., :-1], s[..., -1:] * sign[..., None]], axis=-1)
  vt = np.concatenate([vt[..., :-1, :], vt[..., -1:, :] * sign[..., None, None]], axis=-2)
  rot = np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)
  var_a = np.sum(np.var(A, axis=-2), axis=-1)
  c = np.sum(s, axis=-1) / var_a
  t = centroid_b - c[..., None] * np.einsum('...ij,...j->...i', rot, centroid_a)
  return c, rot, t


def rigid_align(A: np.ndarray, B: np.ndarray) -> np.ndarray:
  """A (..., J, 3) moved onto B by `rigid_transform_3D`: (..., J, 3) float64."""
  c, rot, t = rigid_transform_3D(A, B)
  return c[..., None, None] * (np.asarray(A, np.float64) @ np.swapaxes(rot, -1, -2)) + \
      t[..., None, :]


def evaluate_mesh(results: Mapping, num_verts: int | None = SMPL_NUM_VERTS) -> dict:
  """The official test-set report: MPVE, MPJPE and PA-MPJPE on 14 and 17 joints.

  Args:
    results: dict with `kp_3d`, `kp_3d_gt` (..., 17, 3) and `verts`, `verts_gt` (..., V, 3), mm,
      the whole test set (any leading shape; frames are what count).
    num_verts: vertices per mesh (official: 6890); None takes the inputs' V.

  Returns:
    dict of floats, means over frames: `mpve` (vertices minus their mesh's joint 0), `mpjpe` and
    `pa_mpjpe` on H36M_17_TO_14 after centring on joint 0, `mpjpe_17j` and `pa_mpjpe_17j` on all
    17; PA aligns each frame separately (`rigid_align`).
  """
  pred_kp, pred_verts = _frames(results['kp_3d'], results['verts'], num_verts, 'kp_3d / verts')
  gt_kp, gt_verts = _frames(results['kp_3d_gt'], results['verts_gt'], num_verts,
                            'kp_3d_gt / verts_gt')
  if len(pred_kp) != len(gt_kp):
    raise ValueError(f'evaluate_mesh: {len(pred_kp)} predicted frames but {len(gt_kp)} '
                     f'ground-truth frames')
  mpve = mpjpe(pred_verts - pred_kp[:, :1], gt_verts - gt_kp[:, :1])
  pred_17, gt_17 = pred_kp - pred_kp[:, :1], gt_kp - gt_kp[:, :1]
  pred_14, gt_14 = pred_17[:, H36M_17_TO_14], gt_17[:, H36M_17_TO_14]
  errors = {
      'mpve': mpve,
      'mpjpe': mpjpe(pred_14, gt_14),
      'pa_mpjpe': mpjpe(rigid_align(pred_14, gt_14), gt_14),
      'mpjpe_17j': mpjpe(pred_17, gt_17),
      'pa_mpjpe_17j': mpjpe(rigid_align(pred_17, gt_17), gt_17),
  }
  return {name: float(np.mean(value)) for name, value in errors.items()}
