"""MotionBERT's training losses, in jax.numpy, plus the pretraining objective.

Each pose loss computes what the function of the same name in the official `lib/model/loss.py`
computes; the action losses are `torch.nn.CrossEntropyLoss` (train_action.py) and the official
`SupConLoss` (train_action_1shot.py). Pose inputs are (B, T, J, C) clips of H36M-17 poses.
Every loss is jit-able (branches only on static shapes); the pose losses and cross-entropy take an
optional per-clip `weight` (B,): with it the loss is the weighted mean of the per-clip losses, so a
batch can carry padding clips (weight 0) that add nothing; without it (or with all ones) it is the
official batch mean.

Norms have a zero gradient at zero, as torch's do (jnp.linalg.norm's would be NaN there): masked
joints (confidence 0) and identical poses are common in training batches.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mbjax.metrics.pose import (mpjpe, mpjpe_jax, p_mpjpe, p_mpjpe_jax, procrustes_align,
                                         procrustes_align_jax)

__all__ = [
    'LIMBS', 'ANGLES', 'loss_mpjpe', 'n_mpjpe', 'loss_velocity', 'loss_2d_weighted', 'limb_lengths',
    'loss_limb_var', 'loss_limb_gt', 'limb_angles', 'loss_angle', 'loss_angle_velocity',
    'pretrain_loss_3d', 'pretrain_loss_2d', 'cross_entropy', 'top_k_correct', 'supcon_loss',
    'mpjpe', 'p_mpjpe', 'mpjpe_jax', 'p_mpjpe_jax', 'procrustes_align', 'procrustes_align_jax',
]

# Bones of the H36M-17 skeleton as (a, b): bone vector = x[a] - x[b].
LIMBS = np.array([[0, 1], [1, 2], [2, 3], [0, 4], [4, 5], [5, 6], [0, 7], [7, 8], [8, 9], [9, 10],
                  [8, 11], [11, 12], [12, 13], [8, 14], [14, 15], [15, 16]])
# Pairs of bones (indices into LIMBS) whose angle is supervised.
ANGLES = np.array([[0, 3], [0, 6], [3, 6], [0, 1], [1, 2], [3, 4], [4, 5], [6, 7], [7, 10],
                   [7, 13], [8, 13], [10, 13], [7, 8], [8, 9], [10, 11], [11, 12], [13, 14],
                   [14, 15]])
_ACOS_EPS = 1e-7  # official clamp of the cosine before arccos
_COSINE_EPS = 1e-8  # torch.nn.functional.cosine_similarity default


def _norm(x: jnp.ndarray) -> jnp.ndarray:
  """L2 norm over the last axis whose gradient is 0 (not NaN) at the zero vector."""
  sq = jnp.sum(x * x, axis=-1)
  nonzero = sq > 0
  return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)


def _reduce(values: jnp.ndarray, weight: jnp.ndarray | None) -> jnp.ndarray:
  """Mean of `values` (B, ...): plain, or per-clip means averaged with `weight` (B,)."""
  if weight is None:
    return jnp.mean(values)
  weight = jnp.asarray(weight)
  if weight.shape != values.shape[:1]:
    raise ValueError(f'losses: expected a per-clip weight of shape {values.shape[:1]}, '
                     f'got {weight.shape}')
  weight = weight.astype(values.dtype)
  per_clip = jnp.mean(values.reshape(values.shape[0], -1), axis=1)
  # Zero-weight clips are dropped, not multiplied, so that a NaN there cannot leak into the sum.
  per_clip = jnp.where(weight > 0, per_clip, 0.0)
  total = jnp.sum(weight)
  return jnp.sum(weight * per_clip) / jnp.where(total > 0, total, 1.0)


def _zero(x: jnp.ndarray) -> jnp.ndarray:
  return jnp.zeros((), x.dtype)


def _check_same(pred, target, fn: str) -> None:
  if pred.shape != target.shape:
    raise ValueError(f'{fn}: expected pred and target of the same shape, got {pred.shape} and '
                     f'{target.shape}')


def loss_mpjpe(pred: jnp.ndarray, target: jnp.ndarray, weight: jnp.ndarray | None = None):
  """Mean over all (B, T, J) of ||pred - target||; inputs (B, T, J, C)."""
  _check_same(pred, target, 'loss_mpjpe')
  return _reduce(_norm(pred - target), weight)


def n_mpjpe(pred: jnp.ndarray, target: jnp.ndarray, weight: jnp.ndarray | None = None):
  """MPJPE after the least-squares rescaling of each predicted frame; inputs (B, T, J, C)."""
  _check_same(pred, target, 'n_mpjpe')
  norm_pred = jnp.mean(jnp.sum(pred**2, axis=-1, keepdims=True), axis=-2, keepdims=True)
  norm_target = jnp.mean(jnp.sum(target * pred, axis=-1, keepdims=True), axis=-2, keepdims=True)
  # An all-zero predicted frame gets scale 0 (official: 0/0 = NaN).
  zero = norm_pred == 0
  scale = jnp.where(zero, 0.0, norm_target / jnp.where(zero, 1.0, norm_pred))
  return _reduce(_norm(scale * pred - target), weight)


def loss_velocity(pred: jnp.ndarray, target: jnp.ndarray, weight: jnp.ndarray | None = None):
  """MPJPE of the first differences along T; 0 for T <= 1. Inputs (B, T, J, C)."""
  _check_same(pred, target, 'loss_velocity')
  if pred.shape[1] <= 1:
    return _zero(pred)
  velocity_pred = pred[:, 1:] - pred[:, :-1]
  velocity_target = target[:, 1:] - target[:, :-1]
  return _reduce(_norm(velocity_pred - velocity_target), weight)


def loss_2d_weighted(pred: jnp.ndarray, target: jnp.ndarray, conf: jnp.ndarray,
                     weight: jnp.ndarray | None = None):
  """Confidence-weighted 2D error: mean of ||(pred_xy - target_xy) * conf||.

  Args:
    pred: (B, T, J, C>=2) predictions; only x, y are used.
    target: (B, T, J, C>=2) 2D targets; only x, y are used.
    conf: (B, T, J, 1) per-joint confidence.
    weight: optional (B,) per-clip weight.
  """
  if pred.shape[:-1] != target.shape[:-1] or min(pred.shape[-1], target.shape[-1]) < 2:
    raise ValueError(f'loss_2d_weighted: expected pred and target of shape (B, T, J, C>=2) with '
                     f'the same (B, T, J), got {pred.shape} and {target.shape}')
  diff = (pred[..., :2] - target[..., :2]) * conf
  return _reduce(_norm(diff), weight)


def limb_lengths(x: jnp.ndarray) -> jnp.ndarray:
  """(B, T, 17, 3) poses -> (B, T, 16) bone lengths."""
  bones = x[..., LIMBS[:, 0], :] - x[..., LIMBS[:, 1], :]
  return _norm(bones)


def loss_limb_var(x: jnp.ndarray, weight: jnp.ndarray | None = None):
  """Mean over (B, bones) of the unbiased variance over T of bone lengths; 0 for T <= 1."""
  if x.shape[1] <= 1:
    return _zero(x)
  return _reduce(jnp.var(limb_lengths(x), axis=1, ddof=1), weight)


def loss_limb_gt(x: jnp.ndarray, gt: jnp.ndarray, weight: jnp.ndarray | None = None):
  """Mean absolute difference of bone lengths; inputs (B, T, 17, 3)."""
  _check_same(x, gt, 'loss_limb_gt')
  return _reduce(jnp.abs(limb_lengths(x) - limb_lengths(gt)), weight)


def limb_angles(x: jnp.ndarray) -> jnp.ndarray:
  """(B, T, 17, 3) poses -> (B, T, 18) angles (radians) between the bone pairs in ANGLES."""
  bones = x[..., LIMBS[:, 0], :] - x[..., LIMBS[:, 1], :]
  b1 = bones[..., ANGLES[:, 0], :]
  b2 = bones[..., ANGLES[:, 1], :]
  # torch's cosine_similarity: each vector divided by max(norm, eps) before the dot product.
  n1 = jnp.maximum(_norm(b1), _COSINE_EPS)[..., None]
  n2 = jnp.maximum(_norm(b2), _COSINE_EPS)[..., None]
  cos = jnp.sum((b1 / n1) * (b2 / n2), axis=-1)
  return jnp.arccos(jnp.clip(cos, -1 + _ACOS_EPS, 1 - _ACOS_EPS))


def loss_angle(x: jnp.ndarray, gt: jnp.ndarray, weight: jnp.ndarray | None = None):
  """Mean absolute difference of the bone-pair angles; inputs (B, T, 17, 3)."""
  _check_same(x, gt, 'loss_angle')
  return _reduce(jnp.abs(limb_angles(x) - limb_angles(gt)), weight)


def loss_angle_velocity(x: jnp.ndarray, gt: jnp.ndarray, weight: jnp.ndarray | None = None):
  """Mean absolute difference of the angles' first differences along T; 0 for T <= 1."""
  _check_same(x, gt, 'loss_angle_velocity')
  if x.shape[1] <= 1:
    return _zero(x)
  angles_x = limb_angles(x)
  angles_gt = limb_angles(gt)
  velocity_x = angles_x[:, 1:] - angles_x[:, :-1]
  velocity_gt = angles_gt[:, 1:] - angles_gt[:, :-1]
  return _reduce(jnp.abs(velocity_x - velocity_gt), weight)


def pretrain_loss_3d(pred: jnp.ndarray, target: jnp.ndarray, *, lambda_scale: float = 0.5,
                     lambda_3d_velocity: float = 20.0, lambda_lv: float = 0.0,
                     lambda_lg: float = 0.0, lambda_a: float = 0.0, lambda_av: float = 0.0,
                     weight: jnp.ndarray | None = None) -> tuple[jnp.ndarray, dict]:
  """The official pretraining objective for clips with 3D ground truth.

  Args:
    pred: (B, T, 17, 3) predicted 3D poses.
    target: (B, T, 17, 3) ground truth.
    lambda_*: weights of the terms, named as in the official configs.
    weight: optional (B,) per-clip weight (0 for padding clips).

  Returns:
    (total, parts): the scalar objective and each unweighted term under its official log name.
    Every term is computed (for logging) even when its lambda is 0.
  """
  parts = {
      'loss_3d_pos': loss_mpjpe(pred, target, weight),
      'loss_3d_scale': n_mpjpe(pred, target, weight),
      'loss_3d_velocity': loss_velocity(pred, target, weight),
      'loss_lv': loss_limb_var(pred, weight),
      'loss_lg': loss_limb_gt(pred, target, weight),
      'loss_a': loss_angle(pred, target, weight),
      'loss_av': loss_angle_velocity(pred, target, weight),
  }
  total = (parts['loss_3d_pos'] + lambda_scale * parts['loss_3d_scale'] +
           lambda_3d_velocity * parts['loss_3d_velocity'] + lambda_lv * parts['loss_lv'] +
           lambda_lg * parts['loss_lg'] + lambda_a * parts['loss_a'] +
           lambda_av * parts['loss_av'])
  return total, parts


def pretrain_loss_2d(pred: jnp.ndarray, target: jnp.ndarray, conf: jnp.ndarray, *,
                     weight: jnp.ndarray | None = None) -> tuple[jnp.ndarray, dict]:
  """The official pretraining objective for clips with only 2D ground truth.

  Args:
    pred: (B, T, 17, 3) predicted 3D poses (x, y compared).
    target: (B, T, 17, C>=2) 2D ground truth.
    conf: (B, T, 17, 1) confidence of each target joint.
    weight: optional (B,) per-clip weight (0 for padding clips).

  Returns:
    (total, parts) with parts = {'loss_2d_proj': total}, the official log name.
  """
  total = loss_2d_weighted(pred, target, conf, weight)
  return total, {'loss_2d_proj': total}


# ------------------------------------------------------------------------------------------
# Action recognition: classification and supervised contrastive losses.


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray,
                  weight: jnp.ndarray | None = None) -> jnp.ndarray:
  """Softmax cross-entropy of (B, K) logits and (B,) integer labels, batch mean (float32).

  `torch.nn.CrossEntropyLoss()` as train_action.py uses it; with `weight` (B,) the weighted mean
  (padding rows weight 0).
  """
  if logits.ndim != 2 or labels.shape != logits.shape[:1]:
    raise ValueError(f'cross_entropy: expected logits (B, K) and labels (B,), got {logits.shape} '
                     f'and {labels.shape}')
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(log_probs, labels.astype(jnp.int32)[:, None], axis=-1)[:, 0]
  return _reduce(nll, weight)


def top_k_correct(scores: jnp.ndarray, labels: jnp.ndarray, k: int) -> jnp.ndarray:
  """(B,) bool: the label is among the k highest of (B, K) scores (logits or probabilities).

  A label counts as in the top k when fewer than k classes score strictly higher, so ties never
  depend on a sort order (official `accuracy` takes torch.topk's order).
  """
  if scores.ndim != 2 or labels.shape != scores.shape[:1]:
    raise ValueError(f'top_k_correct: expected scores (B, K) and labels (B,), got {scores.shape} '
                     f'and {labels.shape}')
  own = jnp.take_along_axis(scores, labels.astype(jnp.int32)[:, None], axis=-1)
  return jnp.sum(scores > own, axis=-1) < k


def supcon_loss(features: jnp.ndarray, labels: jnp.ndarray | None = None, *,
                temperature: float = 0.1, base_temperature: float = 0.07,
                contrast_mode: str = 'all') -> jnp.ndarray:
  """Supervised contrastive loss (Khosla et al. 2020), the official `SupConLoss`.

  Every view of every sample is an anchor (`contrast_mode='all'`; 'one': only view 0); its
  positives are the other views with the same label (without labels: its own other views,
  SimCLR). Per anchor: dot products / temperature, minus their row maximum (self included, as
  officially), self-contrast masked out of the softmax, mean log-probability of the positives;
  the loss is -(temperature / base_temperature) times its mean over anchors. An anchor without
  any positive (a one-view class seen once) gives NaN, as officially (0 / 0).

  Args:
    features: (B, V, D) V views of B samples, usually L2-normalised.
    labels: (B,) integer class labels, or None.
    temperature, base_temperature: as train_action_1shot.py calls it (temperature 0.1; the
      class's own default is 0.07).
    contrast_mode: 'all' or 'one'.

  Returns:
    Scalar float32 loss.
  """
  if features.ndim != 3:
    raise ValueError(f'supcon_loss: expected features (B, V, D), got {features.shape}')
  if contrast_mode not in ('all', 'one'):
    raise ValueError(f"supcon_loss: contrast_mode={contrast_mode!r}, expected 'all' or 'one'")
  B, V, _ = features.shape
  if labels is None:
    same = jnp.eye(B, dtype=jnp.float32)
  else:
    if labels.shape != (B,):
      raise ValueError(f'supcon_loss: expected labels ({B},), got {labels.shape}')
    same = (labels[:, None] == labels[None, :]).astype(jnp.float32)
  features = features.astype(jnp.float32)
  contrast = jnp.swapaxes(features, 0, 1).reshape(V * B, -1)  # view-major: torch.cat(unbind(1))
  anchors = contrast if contrast_mode == 'all' else features[:, 0]
  A = anchors.shape[0]
  logits = anchors @ contrast.T / temperature
  logits = logits - jax.lax.stop_gradient(jnp.max(logits, axis=1, keepdims=True))
  not_self = 1.0 - jnp.eye(A, V * B, dtype=jnp.float32)
  positives = jnp.tile(same, (A // B, V)) * not_self
  log_prob = logits - jnp.log(jnp.sum(jnp.exp(logits) * not_self, axis=1, keepdims=True))
  mean_log_prob_pos = jnp.sum(positives * log_prob, axis=1) / jnp.sum(positives, axis=1)
  return jnp.mean(-(temperature / base_temperature) * mean_log_prob_pos)
