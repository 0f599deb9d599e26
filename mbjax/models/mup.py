"""Maximal-update parameterisation (muP) of the DSTformer: `config.model.parameterization='mup'`.

muP (Yang et al. 2021, "Tensor Programs V") scales initialisation, learning rates and two forward
multipliers with width so that every layer's activations move by O(1) per step at any width: a
learning rate tuned on a narrow model then transfers to a wide one. The rules here are the Adam
version, written relative to a base width `config.model.mup_base_width` (B) at which muP and the
standard parameterisation coincide. The width multiplier is m = dim_feat / B.

  role        parameters                                      init std          Adam lr  forward
  input       joints_embed, pos_embed, temp_embed,            as standard       x1       -
              all biases, LayerNorm scales and offsets
  hidden      qkv, proj, fc1, fc2, ts_attn_i, pre_logits      std(B) / sqrt(m)  x1/m     -
              kernels
  readout     head kernel (dim_rep -> dim_out)                std(B)            x1       out / m
  attention   q.k logits                                      -                 -        x1/d_head

std(B) is the init scheme's std at base width: constant .02 for init_scheme='official', and
1/sqrt(fan_in / m) for 'fan_in' (so 'fan_in' hidden kernels are unchanged: 1/sqrt(fan_in) already
is muP's hidden rule). Attention logits are q.k * sqrt(B / H) / d_head, i.e. 1/sqrt(d_head) at
base width and 1/d_head scaling beyond it. The learning-rate factors multiply the whole AdamW
update of a parameter, weight decay included (torch AdamW decays by lr * wd, so this is the
parameter's learning rate scaled); `mbjax.train.optim.make_optimizer` chains them after the AdamW
groups when the model config asks for muP, so the trainer has no special case.

Width is varied at fixed num_heads (d_head grows with m) and with dim_rep scaling along with
dim_feat, as in TINY; pre_logits is then a hidden matrix. The ts_attn fusion (2 * dim_feat -> 2)
is readout-shaped but zero-initialised: Adam lr / m on it is muP's readout rule (multiplier 1/m,
lr x1) in its equivalent form (up to Adam's eps). Parameters outside the DSTformer (the `head/`
of ActionNet and MeshNet, beside `backbone/`) keep the standard rules.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import flax.core.meta as meta
import jax
import optax

PARAMETERIZATIONS = ('standard', 'mup')
DEFAULT_BASE_WIDTH = 64  # TINY's dim_feat

# Hidden kernels, by their path inside the DSTformer (unscanned or scanned under 'layers').
_HIDDEN = re.compile(r'^((blocks_(st|ts)_\d+|layers/block_(st|ts))/'
                     r'(attn_[st]/(qkv|proj)|mlp_[st]/fc[12])|ts_attn_\d+|layers/ts_attn|'
                     r'pre_logits)/kernel$')
_BACKBONE = 'backbone/'  # where ActionNet and MeshNet keep their DSTformer


def check(parameterization: str, base_width: Any, where: str = 'config.model') -> None:
  """Raises a ValueError naming the field unless both fields are valid."""
  if parameterization not in PARAMETERIZATIONS:
    raise ValueError(f'{where}.parameterization={parameterization!r}: unknown, expected one of '
                     f'{PARAMETERIZATIONS}')
  if parameterization == 'mup' and not (isinstance(base_width, (int, float)) and base_width > 0):
    raise ValueError(f'{where}.mup_base_width={base_width!r}: expected a width > 0')


def width_mult(dim_feat: int, base_width: float) -> float:
  """m = dim_feat / base width."""
  return dim_feat / base_width


def hidden_init_scale(init_scheme: str, m: float) -> float:
  """Factor on the scheme's own hidden-kernel init giving std(B) / sqrt(m)."""
  return 1.0 if init_scheme == 'fan_in' else 1.0 / math.sqrt(m)


def readout_init_scale(init_scheme: str, m: float) -> float:
  """Factor on the scheme's own head-kernel init giving std(B), the same at every width."""
  return math.sqrt(m) if init_scheme == 'fan_in' else 1.0


def attention_scale(head_dim: int, base_width: float, num_heads: int) -> float:
  """q.k multiplier: sqrt(d_base) / d_head, equal to 1/sqrt(d_head) at base width."""
  return math.sqrt(base_width / num_heads) / head_dim


def lr_multiplier(name: str, m: float, wrapped: bool = False) -> float:
  """Learning-rate factor of the parameter at path `name` ('blocks_st_0/attn_s/qkv/kernel').

  `wrapped`: the tree is an ActionNet / MeshNet, its DSTformer under 'backbone/'.
  """
  if wrapped:
    if not name.startswith(_BACKBONE):
      return 1.0
    name = name[len(_BACKBONE):]
  return 1.0 / m if _HIDDEN.match(name) else 1.0


def lr_multipliers(params: Any, m: float) -> Any:
  """A tree like (unboxed) `params` of each parameter's learning-rate factor."""
  params = meta.unbox(params)
  wrapped = isinstance(params, Mapping) and 'backbone' in params
  return jax.tree_util.tree_map_with_path(
      lambda path, _: lr_multiplier(
          jax.tree_util.keystr(path, simple=True, separator='/'), m, wrapped), params)


def scale_by_lr_multipliers(m: float) -> optax.GradientTransformation:
  """Multiplies each update by its parameter's factor (`lr_multipliers`); keeps no state.

  The factors are recomputed from the paths of the (unboxed) tree `update` receives, so the
  transform serves any tree with the model's parameter names.
  """

  def init(params):
    del params
    return optax.EmptyState()

  def update(updates, state, params=None):
    del params
    factors = lr_multipliers(updates, m)
    return jax.tree.map(lambda u, f: u if f == 1.0 else u * f, updates, factors), state

  return optax.GradientTransformation(init, update)


def model_width_mult(model_config: Mapping[str, Any]) -> float | None:
  """m of a `config.model` block under muP; None under the standard parameterisation."""
  parameterization = model_config.get('parameterization', 'standard')
  base = model_config.get('mup_base_width', DEFAULT_BASE_WIDTH)
  check(parameterization, base)
  if parameterization == 'standard':
    return None
  if 'dim_feat' not in model_config:
    raise ValueError('config.model: parameterization=\'mup\' needs dim_feat (the width)')
  return width_mult(model_config['dim_feat'], base)
