"""DSTformer: MotionBERT's dual-stream spatio-temporal transformer, in Flax linen.

Computes exactly what the official `lib/model/DSTformer.py` computes as the official scripts build
it (LayerNorm eps 1e-6, exact GELU, fused qkv with bias). Activations stay in a (B, T, J, C) layout
throughout: spatial attention mixes the J joints of each frame, temporal attention the T frames of
each joint. The official code flattens to (B*T, J, C) and reshapes inside temporal attention; the
arithmetic is the same.

Parameter names mirror the official state dict (`blocks_st_0/attn_s/qkv`, `ts_attn_3`, ...) so that
`mbjax.convert` is a pure renaming plus transposes.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from mbjax.models import mup

Dtype = Any

# Sizes of the released checkpoints (official configs MB_release / MB_lite).
RELEASE = dict(dim_feat=512, mlp_ratio=2, depth=5, dim_rep=512, num_heads=8, maxlen=243)
LITE = dict(dim_feat=256, mlp_ratio=4, depth=5, dim_rep=512, num_heads=8, maxlen=243)
# The one small size for tests, the demo and `runlocal` configs (not a released checkpoint); the
# demo trains it with maxlen=27, tests override maxlen to their clip length.
TINY = dict(dim_feat=64, mlp_ratio=2, depth=2, dim_rep=64, num_heads=4, maxlen=243)
VARIANTS = {'release': RELEASE, 'lite': LITE, 'tiny': TINY}

LAYER_NORM_EPS = 1e-6  # official scripts build DSTformer with partial(nn.LayerNorm, eps=1e-6)
ATTENTION_IMPLS = ('auto', 'einsum', 'matmul', 'xla', 'cudnn')


def resolve_attention(impl: str) -> str:
  """'auto': 'matmul' on CPU (release model, Zen 3, interleaved A/B: inference +11-17% against
  'xla' / 'einsum', training +2%; README "Benchmarks"), 'einsum' on accelerators; any other
  value as it is."""
  if impl != 'auto':
    return impl
  return 'matmul' if jax.default_backend() == 'cpu' else 'einsum'


def trunc_normal_init(std: float = 0.02) -> Callable:
  """timm's `trunc_normal_(std=.02)`: a normal cut at +-2 in absolute units (i.e. +-100 std)."""

  def init(key, shape, dtype=jnp.float32):
    bound = 2.0 / std
    return (jax.random.truncated_normal(key, -bound, bound, shape, jnp.float32) * std).astype(dtype)

  return init


# Initialisation schemes (`DSTformer.init_scheme`):
# - 'official': every Linear kernel trunc_normal(std=.02), pos/temp embeddings the same, as the
#   official `_init_weights`. The default; the released checkpoints were trained from it.
# - 'fan_in': Linear kernels truncated normal with std 1/sqrt(fan_in), embeddings std 1. For narrow
#   models (dim <= 128) on short budgets: at dim 64 the official scheme starts with attention
#   logits of std ~0.03 (uniform attention over joints and frames), and a short run does not
#   leave it; mbjax/demo/config.py measures the difference (README, "Demo").
INIT_SCHEMES = ('official', 'fan_in')


def _kernel_init(init_scheme: str, scale: float = 1.0) -> Callable:
  """The scheme's kernel init, its draws times `scale` (muP width factors; 1 otherwise)."""
  if init_scheme == 'fan_in':
    init = nn.initializers.variance_scaling(1.0, 'fan_in', 'truncated_normal')
  else:
    init = trunc_normal_init()
  if scale == 1.0:
    return init
  return lambda key, shape, dtype=jnp.float32: (init(key, shape, jnp.float32) * scale).astype(dtype)


def _embed_init(init_scheme: str) -> Callable:
  return trunc_normal_init(1.0 if init_scheme == 'fan_in' else 0.02)


def _dense(features: int, logical_axes: tuple[str, str], *, dtype, param_dtype, name: str,
           use_bias: bool = True, init_scheme: str = 'official',
           init_scale: float = 1.0) -> nn.Dense:
  return nn.Dense(
      features,
      use_bias=use_bias,
      dtype=dtype,
      param_dtype=param_dtype,
      kernel_init=nn.with_logical_partitioning(_kernel_init(init_scheme, init_scale),
                                               logical_axes),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), logical_axes[1:]),
      name=name,
  )


def _layer_norm(name: str, dtype, param_dtype) -> nn.LayerNorm:
  return nn.LayerNorm(
      epsilon=LAYER_NORM_EPS,
      dtype=dtype,
      param_dtype=param_dtype,
      scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ('embed',)),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ('embed',)),
      name=name,
  )


def _constrain(x, *names):
  """Activation sharding by logical names (prefixed `activation_`, distinct from parameters')."""
  return nn.with_logical_constraint(x, tuple(f'activation_{n}' for n in names))


class Attention(nn.Module):
  """Multi-head self-attention over joints (`mode='spatial'`) or frames (`mode='temporal'`).

  Input and output (B, T, J, C).
  """

  dim: int
  num_heads: int
  mode: str  # 'spatial' | 'temporal'
  qkv_bias: bool = True
  attn_drop: float = 0.0
  proj_drop: float = 0.0
  impl: str = 'einsum'
  init_scheme: str = 'official'
  init_scale: float = 1.0  # on the qkv / proj kernel init (muP; see mbjax/models/mup.py)
  logit_scale: float | None = None  # q.k multiplier; None: 1/sqrt(d_head), the official
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, deterministic: bool = True, frame_mask=None):
    """`frame_mask` (B, T) bool: temporal attention reads only the frames marked True (padding
    after a clip's end changes nothing of its real frames); None: every frame."""
    B, T, J, C = x.shape
    H = self.num_heads
    hd = C // H
    qkv = _dense(3 * C, ('embed', 'qkv'), dtype=self.dtype, param_dtype=self.param_dtype,
                 name='qkv', use_bias=self.qkv_bias, init_scheme=self.init_scheme,
                 init_scale=self.init_scale)(x)
    # Official split: qkv(x).reshape(..., 3, H, C // H): q, k, v outer, heads inner.
    qkv = qkv.reshape(B, T, J, 3, H, hd)
    q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]
    q, k, v = (_constrain(a, 'batch', 'time', 'joints', 'heads', 'kv') for a in (q, k, v))

    use_dropout = self.attn_drop > 0.0 and not deterministic
    mask = frame_mask if self.mode == 'temporal' else None
    if resolve_attention(self.impl) in ('einsum', 'matmul') or use_dropout:
      out = self._einsum_attention(q, k, v, deterministic, mask)
    else:
      out = self._fused_attention(q, k, v, mask)
    out = out.reshape(B, T, J, C)
    out = _constrain(out, 'batch', 'time', 'joints', 'embed')
    out = _dense(C, ('embed_in', 'embed'), dtype=self.dtype, param_dtype=self.param_dtype,
                 name='proj', init_scheme=self.init_scheme, init_scale=self.init_scale)(out)
    return nn.Dropout(self.proj_drop)(out, deterministic=deterministic)

  def _einsum_attention(self, q, k, v, deterministic, mask=None):
    """Softmax attention as two einsums on the (B, T, J, H, d) layout, or (impl 'matmul') as
    two matmuls on q, k, v first transposed so that the batch dimensions lead: (B, T, H, J, d)
    spatial, (B, J, H, T, d) temporal (the same arithmetic; on CPU XLA runs the einsums' strided
    batch dimensions at a fraction of its matmul rate)."""
    scale = (q.shape[-1]) ** -0.5 if self.logit_scale is None else self.logit_scale
    lead = None
    if resolve_attention(self.impl) == 'matmul':
      lead = (0, 1, 3, 2, 4) if self.mode == 'spatial' else (0, 2, 3, 1, 4)
      q, k, v = (a.transpose(lead) for a in (q, k, v))
      logits = jnp.matmul(q, k.swapaxes(-1, -2)) * scale  # bthjk / bjhts
    elif self.mode == 'spatial':
      logits = jnp.einsum('btjhd,btkhd->bthjk', q, k) * scale
    else:
      logits = jnp.einsum('btjhd,bsjhd->bjhts', q, k) * scale
    logits = logits.astype(jnp.float32)
    if mask is not None:  # (B, S) keys: bjhts
      logits = jnp.where(mask[:, None, None, None, :], logits, -jnp.inf)
    probs = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    probs = nn.Dropout(self.attn_drop)(probs, deterministic=deterministic)
    if lead is not None:
      back = (0, 1, 3, 2, 4) if self.mode == 'spatial' else (0, 3, 1, 2, 4)
      return jnp.matmul(probs, v).transpose(back)
    if self.mode == 'spatial':
      return jnp.einsum('bthjk,btkhd->btjhd', probs, v)
    return jnp.einsum('bjhts,bsjhd->btjhd', probs, v)

  def _fused_attention(self, q, k, v, mask=None):
    """`jax.nn.dot_product_attention`: cuDNN flash attention on GPU with impl='cudnn'."""
    B, T, J, H, hd = q.shape
    kw = dict(implementation='cudnn' if self.impl == 'cudnn' else None, scale=self.logit_scale)
    if self.mode == 'spatial':
      fold = lambda a: a.reshape(B * T, J, H, hd)
      out = jax.nn.dot_product_attention(fold(q), fold(k), fold(v), **kw)
      return out.reshape(B, T, J, H, hd)
    fold = lambda a: a.transpose(0, 2, 1, 3, 4).reshape(B * J, T, H, hd)
    if mask is not None:  # (B, S) keys -> (B * J, 1, 1, S)
      kw['mask'] = jnp.repeat(mask, J, axis=0)[:, None, None, :]
    out = jax.nn.dot_product_attention(fold(q), fold(k), fold(v), **kw)
    return out.reshape(B, J, T, H, hd).transpose(0, 2, 1, 3, 4)


class Mlp(nn.Module):
  hidden: int
  drop: float = 0.0
  init_scheme: str = 'official'
  init_scale: float = 1.0  # on the fc1 / fc2 kernel init (muP)
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, deterministic: bool = True):
    C = x.shape[-1]
    h = _dense(self.hidden, ('embed', 'mlp'), dtype=self.dtype, param_dtype=self.param_dtype,
               name='fc1', init_scheme=self.init_scheme, init_scale=self.init_scale)(x)
    h = nn.gelu(h, approximate=False)  # torch nn.GELU default: exact erf form
    h = _constrain(h, 'batch', 'time', 'joints', 'mlp')
    h = nn.Dropout(self.drop)(h, deterministic=deterministic)
    h = _dense(C, ('mlp', 'embed'), dtype=self.dtype, param_dtype=self.param_dtype, name='fc2',
               init_scheme=self.init_scheme, init_scale=self.init_scale)(h)
    return nn.Dropout(self.drop)(h, deterministic=deterministic)


class DropPath(nn.Module):
  """Stochastic depth. The official code drops whole (batch*frame) rows of its (B*T, J, C)
  activations, so the mask here is drawn per (b, t), not per clip."""

  rate: Any  # a float, or a traced scalar when the layers are scanned

  @nn.compact
  def __call__(self, x, deterministic: bool = True):
    if deterministic or (isinstance(self.rate, float) and self.rate == 0.0):
      return x
    keep = 1.0 - self.rate
    mask = jax.random.bernoulli(self.make_rng('dropout'), keep, x.shape[:2] + (1,) * (x.ndim - 2))
    return x * mask.astype(x.dtype) / keep


class Block(nn.Module):
  """Two pre-norm stages: spatial then temporal (`order='st'`) or temporal then spatial ('ts')."""

  dim: int
  num_heads: int
  mlp_ratio: float
  order: str
  qkv_bias: bool = True
  drop: float = 0.0
  attn_drop: float = 0.0
  drop_path: float = 0.0
  attention_impl: str = 'einsum'
  init_scheme: str = 'official'
  init_scale: float = 1.0  # muP hidden-kernel init factor
  logit_scale: float | None = None  # muP attention multiplier
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, deterministic: bool = True, drop_path_rate=None, frame_mask=None):
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    drop_path = DropPath(self.drop_path if drop_path_rate is None else drop_path_rate)
    for axis in (self.order[0], self.order[1]):
      mode = 'spatial' if axis == 's' else 'temporal'
      attn = Attention(self.dim, self.num_heads, mode, qkv_bias=self.qkv_bias,
                       attn_drop=self.attn_drop, proj_drop=self.drop, impl=self.attention_impl,
                       init_scheme=self.init_scheme, init_scale=self.init_scale,
                       logit_scale=self.logit_scale, name=f'attn_{axis}', **kw)
      mlp = Mlp(int(self.dim * self.mlp_ratio), drop=self.drop, init_scheme=self.init_scheme,
                init_scale=self.init_scale, name=f'mlp_{axis}', **kw)
      x = x + drop_path(attn(_layer_norm(f'norm1_{axis}', **kw)(x), deterministic, frame_mask),
                        deterministic)
      x = x + drop_path(mlp(_layer_norm(f'norm2_{axis}', **kw)(x), deterministic), deterministic)
      x = _constrain(x, 'batch', 'time', 'joints', 'embed')
    return x


class DepthLayer(nn.Module):
  """One depth step: blocks_st_i and blocks_ts_i on the same input, fused by ts_attn_i.

  Used by `DSTformer(scan_layers=True)` under `nn.scan`; the unscanned model inlines the same code.
  """

  block_kw: dict
  att_fuse: bool
  remat_policy: str
  deterministic: bool
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, drop_path_rate, frame_mask=None):
    return _depth_step(self, x, drop_path_rate, self.deterministic, self.block_kw,
                       ('block_st', 'block_ts', 'ts_attn'), frame_mask), None


def _block_class(remat_policy: str):
  if remat_policy == 'none':
    return Block
  return nn.remat(Block, policy=REMAT_POLICIES[remat_policy], static_argnums=(2,))


def _depth_step(module, x, drop_path_rate, deterministic, block_kw, names, frame_mask=None):
  """Called inside `module`'s compact __call__ (DSTformer or DepthLayer)."""
  st_name, ts_name, fuse_name = names
  block_cls = _block_class(module.remat_policy)
  x_st = block_cls(order='st', name=st_name, **block_kw)(x, deterministic, drop_path_rate,
                                                          frame_mask)
  x_ts = block_cls(order='ts', name=ts_name, **block_kw)(x, deterministic, drop_path_rate,
                                                          frame_mask)
  if not module.att_fuse:
    return _constrain((x_st + x_ts) * 0.5, 'batch', 'time', 'joints', 'embed')
  alpha = nn.Dense(
      2, dtype=module.dtype, param_dtype=module.param_dtype,
      kernel_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ('embed2', 'fuse')),
      bias_init=nn.with_logical_partitioning(nn.initializers.constant(0.5), ('fuse',)),
      name=fuse_name)(jnp.concatenate([x_st, x_ts], axis=-1))
  alpha = jax.nn.softmax(alpha.astype(jnp.float32), axis=-1).astype(module.dtype)
  return _constrain(x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2], 'batch', 'time', 'joints',
                    'embed')


REMAT_POLICIES = {
    'none': None,
    'full': jax.checkpoint_policies.nothing_saveable,
    'dots': jax.checkpoint_policies.checkpoint_dots,
    'dots_no_batch': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class DSTformer(nn.Module):
  """MotionBERT's motion encoder with its pose head.

  `__call__(x)` maps (B, T, J, dim_in) to (B, T, J, dim_out), or to the motion representation
  (B, T, J, dim_rep) with `return_rep=True`; any T <= maxlen.
  """

  dim_in: int = 3
  dim_out: int = 3
  dim_feat: int = 256
  dim_rep: int = 512
  depth: int = 5
  num_heads: int = 8
  mlp_ratio: float = 4
  num_joints: int = 17
  maxlen: int = 243
  qkv_bias: bool = True
  drop_rate: float = 0.0
  attn_drop_rate: float = 0.0
  drop_path_rate: float = 0.0
  att_fuse: bool = True
  # Scale-out knobs (not in the official constructor).
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  attention_impl: str = 'auto'  # ATTENTION_IMPLS; 'xla', 'cudnn': jax.nn.dot_product_attention
  remat_policy: str = 'none'  # a key of REMAT_POLICIES
  scan_layers: bool = False  # nn.scan over depth: one compiled layer; params under 'layers'
  init_scheme: str = 'official'  # 'official' | 'fan_in' (see INIT_SCHEMES above)
  # 'standard' (official) | 'mup': width-transferable learning rates (mbjax/models/mup.py), the
  # two coinciding at dim_feat == mup_base_width.
  parameterization: str = 'standard'
  mup_base_width: int = mup.DEFAULT_BASE_WIDTH

  def _check_input(self, x):
    if x.ndim != 4:
      raise ValueError(f'DSTformer expects (B, T, J, C) input, got shape {x.shape}')
    _, T, J, C = x.shape
    if J != self.num_joints:
      raise ValueError(f'DSTformer built for {self.num_joints} joints, got J={J} in {x.shape}')
    if C != self.dim_in:
      raise ValueError(f'DSTformer built for dim_in={self.dim_in}, got C={C} in {x.shape}')
    if T > self.maxlen:
      raise ValueError(f'clip of T={T} frames is longer than maxlen={self.maxlen}; '
                       'cut it into clips of at most maxlen frames')
    if self.attention_impl not in ATTENTION_IMPLS:
      raise ValueError(f'attention_impl={self.attention_impl!r}, expected one of {ATTENTION_IMPLS}')
    if self.init_scheme not in INIT_SCHEMES:
      raise ValueError(f'init_scheme={self.init_scheme!r}, expected one of {INIT_SCHEMES}')
    mup.check(self.parameterization, self.mup_base_width, where='DSTformer')
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(f'remat_policy={self.remat_policy!r}, expected one of {list(REMAT_POLICIES)}')

  def _mup_factors(self) -> dict:
    """Width factors of muP (mbjax/models/mup.py); all neutral under 'standard'."""
    if self.parameterization == 'standard':
      return dict(hidden_init=1.0, logit_scale=None, readout_init=1.0, readout_mult=None)
    m = mup.width_mult(self.dim_feat, self.mup_base_width)
    head_dim = self.dim_feat // self.num_heads
    return dict(hidden_init=mup.hidden_init_scale(self.init_scheme, m),
                logit_scale=mup.attention_scale(head_dim, self.mup_base_width, self.num_heads),
                readout_init=mup.readout_init_scale(self.init_scheme, m), readout_mult=1.0 / m)

  @nn.compact
  def __call__(self, x, *, train: bool = False, return_rep: bool = False, frame_mask=None):
    """`frame_mask` (B, T) bool: the real frames of each clip, the others padding that no real
    frame attends to (one compiled shape for clips of several lengths); None: all real."""
    self._check_input(x)
    factors = self._mup_factors()
    T = x.shape[1]
    deterministic = not train
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = x.astype(self.dtype)
    init = dict(init_scheme=self.init_scheme)
    x = _dense(self.dim_feat, ('coords', 'embed'), name='joints_embed', **init, **kw)(x)
    pos_embed = self.param('pos_embed', nn.with_logical_partitioning(
        _embed_init(self.init_scheme), ('joints', 'embed')), (self.num_joints, self.dim_feat),
                           self.param_dtype)
    temp_embed = self.param('temp_embed', nn.with_logical_partitioning(
        _embed_init(self.init_scheme), ('time', 'embed')), (self.maxlen, self.dim_feat),
                            self.param_dtype)
    x = x + pos_embed.astype(self.dtype)[None, None] + temp_embed[:T].astype(self.dtype)[None, :,
                                                                                          None]
    x = nn.Dropout(self.drop_rate)(x, deterministic=deterministic)
    x = _constrain(x, 'batch', 'time', 'joints', 'embed')

    # torch.linspace(0, drop_path_rate, depth)
    dpr = [self.drop_path_rate * i / max(self.depth - 1, 1) for i in range(self.depth)]
    block_kw = dict(dim=self.dim_feat, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                    qkv_bias=self.qkv_bias, drop=self.drop_rate, attn_drop=self.attn_drop_rate,
                    attention_impl=self.attention_impl, init_scale=factors['hidden_init'],
                    logit_scale=factors['logit_scale'], **init, **kw)
    if self.scan_layers:
      layers = nn.scan(DepthLayer, variable_axes={'params': 0},
                       split_rngs={'params': True, 'dropout': True}, in_axes=(0, nn.broadcast),
                       length=self.depth, metadata_params={nn.PARTITION_NAME: 'layers'})
      x, _ = layers(block_kw=block_kw, att_fuse=self.att_fuse, remat_policy=self.remat_policy,
                    deterministic=deterministic, name='layers', **kw)(
                        x, jnp.asarray(dpr, jnp.float32), frame_mask)
    else:
      for i in range(self.depth):
        x = _depth_step(self, x, dpr[i], deterministic, block_kw,
                        (f'blocks_st_{i}', f'blocks_ts_{i}', f'ts_attn_{i}'), frame_mask)

    x = _layer_norm('norm', **kw)(x)
    if self.dim_rep:
      x = jnp.tanh(_dense(self.dim_rep, ('embed', 'rep'), name='pre_logits',
                          init_scale=factors['hidden_init'], **init, **kw)(x))
    if self.dim_out <= 0:
      return x
    head = _dense(self.dim_out, ('rep', 'coords'), name='head', init_scale=factors['readout_init'],
                  **init, **kw)
    if return_rep:
      if self.is_initializing():
        head(x)  # create it anyway: official action checkpoints carry backbone.head.*
      return x
    if factors['readout_mult'] is None:
      return head(x)
    return head(x) * factors['readout_mult']  # muP readout: output / m


def scan_params(params: dict, depth: int) -> dict:
  """Unscanned params (blocks_st_i, blocks_ts_i, ts_attn_i) -> scanned ('layers', leading depth)."""
  import numpy as np
  out = {k: v for k, v in params.items()
         if not any(k.startswith(p) for p in ('blocks_st_', 'blocks_ts_', 'ts_attn_'))}
  layers = {}
  for src, dst in (('blocks_st', 'block_st'), ('blocks_ts', 'block_ts'), ('ts_attn', 'ts_attn')):
    if f'{src}_0' in params:
      layers[dst] = jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]),
                                           *[params[f'{src}_{i}'] for i in range(depth)])
  out['layers'] = layers
  return out


def unscan_params(params: dict) -> dict:
  """Scanned params ('layers') -> the unscanned layout that mirrors the official names."""
  out = {k: v for k, v in params.items() if k != 'layers'}
  layers = params['layers']
  depth = jax.tree_util.tree_leaves(layers)[0].shape[0]
  for src, dst in (('block_st', 'blocks_st'), ('block_ts', 'blocks_ts'), ('ts_attn', 'ts_attn')):
    if src in layers:
      for i in range(depth):
        out[f'{dst}_{i}'] = jax.tree_util.tree_map(lambda x: x[i], layers[src])
  return out


def count_params(params) -> int:
  return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))


@functools.lru_cache(maxsize=None)
def _variant(name: str) -> dict:
  if name not in VARIANTS:
    raise ValueError(f'unknown DSTformer variant {name!r}, expected one of {list(VARIANTS)}')
  return dict(VARIANTS[name])


def dstformer_from_variant(name: str, **overrides) -> DSTformer:
  """`DSTformer` at a named size: 'release' or 'lite' (released checkpoints), or 'tiny'."""
  return DSTformer(**{**_variant(name), **overrides})
