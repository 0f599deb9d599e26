"""Pose-error metrics: MPJPE and Procrustes-aligned MPJPE, per frame.

The numpy versions compute what the official `lib/model/loss.py` `mpjpe` / `p_mpjpe` compute (used
by the official evaluation on whole test sets, in whatever units the poses are in). The jax versions
compute the same numbers inside `jit`, e.g. for evaluators that stay on device.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def _check_pair(pred, target, fn: str) -> None:
  if pred.shape != target.shape or pred.ndim < 2:
    raise ValueError(f'{fn}: expected pred and target of the same shape (..., J, C), got '
                     f'{pred.shape} and {target.shape}')


def mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
  """Mean per-joint position error of each frame.

  Args:
    pred: (N, J, C) predicted poses (any leading shape (..., J, C) works).
    target: same shape as `pred`.

  Returns:
    (N,) the mean over joints of the Euclidean distance between `pred` and `target`.
  """
  pred, target = np.asarray(pred), np.asarray(target)
  _check_pair(pred, target, 'mpjpe')
  return np.mean(np.linalg.norm(pred - target, axis=-1), axis=-1)


def procrustes_align(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
  """Aligns each predicted pose to its target with the best similarity transform.

  Rotation, uniform scale and translation are fitted per frame in the least-squares sense
  (orthogonal Procrustes with scale); reflections are excluded.

  Args:
    pred: (N, J, 3) predicted poses.
    target: (N, J, 3) ground-truth poses.

  Returns:
    (N, J, 3) `a * pred @ R + t` for the fitted scale a, rotation R and translation t.
  """
  pred, target = np.asarray(pred), np.asarray(target)
  _check_pair(pred, target, 'procrustes_align')
  mu_x = target.mean(axis=-2, keepdims=True)
  mu_y = pred.mean(axis=-2, keepdims=True)
  x0 = target - mu_x
  y0 = pred - mu_y
  norm_x = np.sqrt(np.sum(x0**2, axis=(-2, -1), keepdims=True))
  norm_y = np.sqrt(np.sum(y0**2, axis=(-2, -1), keepdims=True))
  x0 = x0 / norm_x
  y0 = y0 / norm_y
  h = np.swapaxes(x0, -1, -2) @ y0
  u, s, vt = np.linalg.svd(h)
  v = np.swapaxes(vt, -1, -2)
  r = v @ np.swapaxes(u, -1, -2)
  # A proper rotation only: where R would reflect, flip the weakest singular direction.
  sign = np.where(np.linalg.det(r) < 0, -1.0, 1.0).astype(v.dtype)
  v = np.concatenate([v[..., :-1], v[..., -1:] * sign[..., None, None]], axis=-1)
  s = np.concatenate([s[..., :-1], s[..., -1:] * sign[..., None]], axis=-1)
  r = v @ np.swapaxes(u, -1, -2)
  a = np.sum(s, axis=-1)[..., None, None] * norm_x / norm_y
  t = mu_x - a * (mu_y @ r)
  return a * (pred @ r) + t


def p_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
  """MPJPE after Procrustes alignment (PA-MPJPE) of each frame.

  Args:
    pred: (N, J, 3) predicted poses.
    target: (N, J, 3) ground-truth poses.

  Returns:
    (N,) per-frame error after aligning `pred` to `target` by rotation, scale and translation.
  """
  pred, target = np.asarray(pred), np.asarray(target)
  return mpjpe(procrustes_align(pred, target), target)


def mpjpe_jax(pred: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
  """`mpjpe` in jax.numpy: (..., J, C) x2 -> (...)."""
  _check_pair(pred, target, 'mpjpe_jax')
  return jnp.mean(jnp.linalg.norm(pred - target, axis=-1), axis=-1)


def procrustes_align_jax(pred: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
  """`procrustes_align` in jax.numpy: (..., J, 3) x2 -> (..., J, 3), jit-able."""
  _check_pair(pred, target, 'procrustes_align_jax')
  mu_x = target.mean(axis=-2, keepdims=True)
  mu_y = pred.mean(axis=-2, keepdims=True)
  x0 = target - mu_x
  y0 = pred - mu_y
  norm_x = jnp.sqrt(jnp.sum(x0**2, axis=(-2, -1), keepdims=True))
  norm_y = jnp.sqrt(jnp.sum(y0**2, axis=(-2, -1), keepdims=True))
  h = jnp.swapaxes(x0 / norm_x, -1, -2) @ (y0 / norm_y)
  u, s, vt = jnp.linalg.svd(h)
  v = jnp.swapaxes(vt, -1, -2)
  r = v @ jnp.swapaxes(u, -1, -2)
  sign = jnp.where(jnp.linalg.det(r) < 0, -1.0, 1.0).astype(v.dtype)
  v = v.at[..., -1].multiply(sign[..., None])
  s = s.at[..., -1].multiply(sign)
  r = v @ jnp.swapaxes(u, -1, -2)
  a = jnp.sum(s, axis=-1)[..., None, None] * norm_x / norm_y
  t = mu_x - a * (mu_y @ r)
  return a * (pred @ r) + t


def p_mpjpe_jax(pred: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
  """`p_mpjpe` in jax.numpy: (..., J, 3) x2 -> (...), jit-able."""
  return mpjpe_jax(procrustes_align_jax(pred, target), target)
