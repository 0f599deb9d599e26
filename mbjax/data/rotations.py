"""Rotation conversions of the official mesh code (`lib/utils/utils_mesh.py`) and SMPL flips.

Every conversion computes in float32 whatever its input dtype (bf16 angles lose too much for
the 1e-5 agreement the mesh losses need) and returns float32; the flips, exact, keep the dtype.
Each one follows the official formula, epsilons included, so that theta, the losses and the
flip test match the official numbers; where that formula has a quirk (kornia's quaternion
branches, 1e-8 added to every axis-angle component) the quirk is kept and named.
"""

from __future__ import annotations

import jax.numpy as jnp

# SMPL joints that swap under a left-right mirror (official `flip_thetas`).
SMPL_FLIP_PAIRS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21),
                   (22, 23))
_EPS_NORMALIZE = 1e-6  # F.normalize(eps=1e-6) in rot6d_to_rotmat
_EPS_QUATERNION = 1e-6  # rotation_matrix_to_quaternion(eps=1e-6)
_EPS_RODRIGUES = 1e-8


def _f32(x):
  return jnp.asarray(x).astype(jnp.float32)


def _normalize(v, eps: float):
  """v / max(||v||, eps) over the last axis (torch.nn.functional.normalize)."""
  return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), eps)


def rot6d_to_rotmat(x):
  """6D rotation representation -> rotation matrix (Zhou et al. 2019, official layout).

  Each 6-vector is read row-major as a 3x2 matrix [a1 a2]; Gram-Schmidt gives b1, b2 and
  R = [b1 b2 b1 x b2] as columns, so the 6D vector of R is `R[:, :2].reshape(6)`.

  Args:
    x: (..., 6), or any shape whose size is a multiple of 6 (read as (-1, 6), as officially).

  Returns:
    (K, 3, 3) float32 for K = x.size // 6.
  """
  m = _f32(x).reshape(-1, 3, 2)
  a1, a2 = m[..., 0], m[..., 1]
  b1 = _normalize(a1, _EPS_NORMALIZE)
  b2 = _normalize(a2 - jnp.sum(b1 * a2, axis=-1, keepdims=True) * b1, _EPS_NORMALIZE)
  b3 = jnp.cross(b1, b2)
  return jnp.stack([b1, b2, b3], axis=-1)


def rotation_matrix_to_quaternion(rotmat):
  """(K, 3, 3) or (K, 3, 4) rotation matrices -> (K, 4) quaternions (w, x, y, z).

  The official (kornia 0.1) branch selection on the transposed matrix: which of the four
  trace-like terms t0..t3 is used depends on R[2,2] < eps and on R[0,0] against +-R[1,1].
  """
  r = jnp.swapaxes(_f32(rotmat)[..., :3, :3], -1, -2)  # the official code works on R^T
  r00, r01, r02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
  r10, r11, r12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
  r20, r21, r22 = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
  t0 = 1 + r00 - r11 - r22
  t1 = 1 - r00 + r11 - r22
  t2 = 1 - r00 - r11 + r22
  t3 = 1 + r00 + r11 + r22
  q0 = jnp.stack([r12 - r21, t0, r01 + r10, r20 + r02], -1)
  q1 = jnp.stack([r20 - r02, r01 + r10, t1, r12 + r21], -1)
  q2 = jnp.stack([r01 - r10, r20 + r02, r12 + r21, t2], -1)
  q3 = jnp.stack([t3, r12 - r21, r20 - r02, r01 - r10], -1)
  d2 = r22 < _EPS_QUATERNION
  d0_d1 = r00 > r11
  d0_nd1 = r00 < -r11
  masks = (d2 & d0_d1, d2 & ~d0_d1, ~d2 & d0_nd1, ~d2 & ~d0_nd1)
  # The four masks cover every case; the explicit defaults (never taken) let jax2onnx convert
  # the select (its plugin passes default=None otherwise, which jax rejects).
  q = jnp.select([m[..., None] for m in masks], [q0, q1, q2, q3], default=0.0)
  t = jnp.select(masks, [t0, t1, t2, t3], default=1.0)
  return q / jnp.sqrt(t)[..., None] * 0.5


def quaternion_to_axis_angle(quaternion):
  """(..., 4) quaternions (w, x, y, z) -> (..., 3) axis-angles (official, kornia 0.1).

  The angle is 2 atan2(|v|, w), taken on the side w >= 0; a zero vector part gives 2 v.
  """
  q = _f32(quaternion)
  v = q[..., 1:]
  sin2 = jnp.sum(v * v, axis=-1)
  sin = jnp.sqrt(sin2)
  cos = q[..., 0]
  two_theta = 2.0 * jnp.where(cos < 0.0, jnp.arctan2(-sin, -cos), jnp.arctan2(sin, cos))
  safe_sin = jnp.where(sin2 > 0.0, sin, 1.0)  # keeps the unused branch (and its grad) finite
  k = jnp.where(sin2 > 0.0, two_theta / safe_sin, 2.0)
  return v * k[..., None]


def rotmat_to_axis_angle(rotmat):
  """(K, 3, 3) rotation matrices -> (K, 3) axis-angles: the official
  `rotation_matrix_to_angle_axis` (quaternion via kornia's branches, then NaN set to 0)."""
  aa = quaternion_to_axis_angle(rotation_matrix_to_quaternion(rotmat))
  return jnp.where(jnp.isnan(aa), 0.0, aa)


rotation_matrix_to_angle_axis = rotmat_to_axis_angle  # the official name


def quaternion_to_rotmat(quat):
  """(..., 4) quaternions (w, x, y, z), normalised first -> (..., 3, 3) rotation matrices
  (official `quat_to_rotmat`)."""
  q = _f32(quat)
  w, x, y, z = jnp.moveaxis(q / jnp.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
  rows = [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (w * y + x * z),
          2 * (w * z + x * y), w * w - x * x + y * y - z * z, 2 * (y * z - w * x),
          2 * (x * z - w * y), 2 * (w * x + y * z), w * w - x * x - y * y + z * z]
  return jnp.stack(rows, axis=-1).reshape(q.shape[:-1] + (3, 3))


def axis_angle_to_rotmat(aa):
  """(..., 3) axis-angles -> (..., 3, 3): the official utils_mesh `batch_rodrigues`.

  Officially 1e-8 is added to every component before the norm (not to the angle), and the
  matrix comes from the half-angle quaternion. The official function returns (K, 9): that is
  `batch_rodrigues` below; this one keeps the input's leading axes.
  """
  aa = _f32(aa)
  angle = jnp.linalg.norm(aa + _EPS_RODRIGUES, axis=-1, keepdims=True)
  half = 0.5 * angle
  quat = jnp.concatenate([jnp.cos(half), jnp.sin(half) * (aa / angle)], axis=-1)
  return quaternion_to_rotmat(quat)


def batch_rodrigues(theta):
  """(K, 3) axis-angles -> (K, 9) row-major rotation matrices, exactly as the official
  utils_mesh `batch_rodrigues` returns them (MeshLoss compares these)."""
  return axis_angle_to_rotmat(jnp.reshape(theta, (-1, 3))).reshape(-1, 9)


def axis_angle_to_rotmat_smplx(aa):
  """(..., 3) axis-angles -> (..., 3, 3) by smplx's own Rodrigues formula (the SMPL
  `pose2rot=True` path of the flip test and GT meshes).

  R = I + sin(a) K + (1 - cos(a)) K^2 for the unit axis k = aa / a, with a = |aa + 1e-8|
  (1e-8 added to every component, as smplx does, so a zero rotation gives I, not NaN).
  """
  aa = _f32(aa)
  angle = jnp.linalg.norm(aa + _EPS_RODRIGUES, axis=-1, keepdims=True)
  kx, ky, kz = jnp.moveaxis(aa / angle, -1, 0)
  zero = jnp.zeros_like(kx)
  skew = jnp.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], -1)
  skew = skew.reshape(kx.shape + (3, 3))
  sin, cos = jnp.sin(angle)[..., None], jnp.cos(angle)[..., None]
  return jnp.eye(3, dtype=jnp.float32) + sin * skew + (1 - cos) * (skew @ skew)


def flip_thetas(thetas):
  """Mirror SMPL poses left-right: (..., 24, 3) axis-angles -> same shape (official
  `flip_thetas`: negate y and z of every joint's axis-angle, swap SMPL_FLIP_PAIRS)."""
  thetas = jnp.asarray(thetas)
  order = list(range(thetas.shape[-2]))
  for a, b in SMPL_FLIP_PAIRS:
    order[a], order[b] = b, a
  sign = jnp.asarray([1, -1, -1], thetas.dtype)
  return thetas[..., jnp.asarray(order), :] * sign


def flip_thetas_batch(thetas):
  """(..., 72) axis-angle poses -> mirrored, same shape (official `flip_thetas_batch`)."""
  thetas = jnp.asarray(thetas)
  return flip_thetas(thetas.reshape(thetas.shape[:-1] + (24, 3))).reshape(thetas.shape)
