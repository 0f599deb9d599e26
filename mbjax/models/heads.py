"""Task heads on top of the DSTformer representation (official `lib/model/model_action.py`)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mbjax.models.dstformer import DSTformer, trunc_normal_init

# The official classification head ignores its `hidden_dim` argument and always uses 2048; we keep
# that so released action checkpoints load.
CLASS_HIDDEN = 2048


class TorchBatchNorm(nn.Module):
  """`torch.nn.BatchNorm1d` over axis 0 of (N, C) input, momentum 0.1, eps 1e-5.

  Differs from `flax.linen.BatchNorm` in what the official checkpoints depend on: the running
  variance is updated with the unbiased batch variance, and `num_batches_tracked` is kept.
  """

  momentum: float = 0.1
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x, use_running_average: bool):
    C = x.shape[-1]
    scale = self.param('scale', nn.with_logical_partitioning(nn.initializers.ones_init(),
                                                             ('mlp',)), (C,))
    bias = self.param('bias', nn.with_logical_partitioning(nn.initializers.zeros_init(),
                                                           ('mlp',)), (C,))
    ra_mean = self.variable('batch_stats', 'mean', lambda: jnp.zeros((C,), jnp.float32))
    ra_var = self.variable('batch_stats', 'var', lambda: jnp.ones((C,), jnp.float32))
    tracked = self.variable('batch_stats', 'num_batches_tracked', lambda: jnp.zeros((), jnp.int32))
    xf = x.astype(jnp.float32)
    if use_running_average:
      mean, var = ra_mean.value, ra_var.value
    else:
      n = xf.shape[0]
      mean = xf.mean(axis=0)
      var = jnp.mean(jnp.square(xf - mean), axis=0)
      if not self.is_initializing():
        m = self.momentum
        ra_mean.value = (1 - m) * ra_mean.value + m * mean
        ra_var.value = (1 - m) * ra_var.value + m * var * (n / max(n - 1, 1))
        tracked.value = tracked.value + 1
    y = (xf - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias
    return y.astype(x.dtype)


def torch_linear(features: int, fan_in: int, logical_axes, name: str) -> nn.Dense:
  """`torch.nn.Linear` with its default init, U(+-1/sqrt(fan_in)) for weight and bias: the
  official action heads are not re-initialised, unlike the backbone."""
  bound = fan_in ** -0.5
  uniform = lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound,
                                                                     bound)
  return nn.Dense(features,
                  kernel_init=nn.with_logical_partitioning(uniform, logical_axes),
                  bias_init=nn.with_logical_partitioning(uniform, logical_axes[1:]), name=name)


def _pool_persons(feat):
  """(N, M, T, J, C) -> (N, J*C): mean over frames, flatten, mean over persons (official order)."""
  N, M, T, J, C = feat.shape
  return feat.mean(axis=2).reshape(N, M, J * C).mean(axis=1)


class ActionNet(nn.Module):
  """Skeleton action recognition: DSTformer representation + a pooled head.

  Input (N, M, T, J, C) for M persons. `version='class'` gives (N, num_classes) logits,
  `version='embed'` an L2-normalised (N, hidden_dim) embedding (for one-shot recognition).
  """

  backbone: DSTformer
  dim_rep: int = 512
  num_classes: int = 60
  dropout_ratio: float = 0.0
  version: str = 'class'
  hidden_dim: int = 2048
  num_joints: int = 17

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    if x.ndim != 5:
      raise ValueError(f'ActionNet expects (N, M, T, J, C) input, got shape {x.shape}')
    N, M, T, J, C = x.shape
    feat = self.backbone(x.reshape(N * M, T, J, C), train=train, return_rep=True)
    feat = feat.reshape(N, M, T, self.num_joints, -1)
    return ActionHead(dim_rep=self.dim_rep, num_classes=self.num_classes,
                      dropout_ratio=self.dropout_ratio, version=self.version,
                      hidden_dim=self.hidden_dim, num_joints=self.num_joints,
                      name='head')(feat, train=train)


class ActionHead(nn.Module):
  dim_rep: int = 512
  num_classes: int = 60
  dropout_ratio: float = 0.0
  version: str = 'class'
  hidden_dim: int = 2048
  num_joints: int = 17

  @nn.compact
  def __call__(self, feat, *, train: bool = False):
    if self.version not in ('class', 'embed'):
      raise ValueError(f"ActionNet version={self.version!r}, expected 'class' or 'embed'")
    feat = nn.Dropout(self.dropout_ratio)(feat, deterministic=not train)
    pooled = _pool_persons(feat.astype(jnp.float32))
    if self.version == 'class':
      h = torch_linear(CLASS_HIDDEN, pooled.shape[-1], ('rep', 'mlp'), 'fc1')(pooled)
      h = TorchBatchNorm(name='bn')(h, use_running_average=not train)
      return torch_linear(self.num_classes, CLASS_HIDDEN, ('mlp', 'classes'), 'fc2')(
          jax.nn.relu(h))
    h = torch_linear(self.hidden_dim, pooled.shape[-1], ('rep', 'mlp'), 'fc1')(pooled)
    # F.normalize(x, dim=-1): x / max(||x||, 1e-12)
    return h / jnp.maximum(jnp.linalg.norm(h, axis=-1, keepdims=True), 1e-12)
