"""MotionBERT's optimiser in optax: AdamW with a per-epoch exponential learning-rate decay.

The official scripts build `torch.optim.AdamW(lr, weight_decay)` (betas 0.9/0.999, eps 1e-8, decay
on every parameter) and multiply the learning rate of every group by `lr_decay` after each epoch.
Finetuning gives the head its own learning rate (`lr_head`), and `partial_train` freezes the
backbone. Here parameters are sorted into groups by regexes over their '/'-joined paths
(e.g. 'blocks_st_0/attn_s/qkv/kernel', 'head/fc1/kernel'), and `optax.multi_transform` gives each
group its optimiser; frozen parameters get `optax.set_to_zero`, which keeps no moments.

Config fields read by `make_optimizer` (an `ml_collections.ConfigDict` or a mapping):
  lr: base learning rate (required).
  lr_head: learning rate of the head group; None -> lr.
  weight_decay: decoupled AdamW weight decay, torch semantics (default 0.01).
  lr_decay: factor applied once per epoch (default 1.0, no decay).
  lr_schedule: 'epoch_decay' (default, the official schedule above) or 'cosine': a cosine from
    lr to lr x lr_final_ratio (default 0.1, as Hoffmann et al. 2022) over `total_steps`, which
    must then be > 0 (scaling sweeps: each run's schedule ends at its own last step).
  warmup_steps: linear warmup steps (default 0, as the official code).
  grad_clip: max global gradient norm over trainable parameters (default 0 = off, as official).
  head_patterns: regexes selecting head parameters (default none).
  partial_train: None, or regexes of the only parameters that are trained.
  freeze_patterns: regexes of parameters that are not trained (default none).
Patterns are matched with `re.search`; anchor them ('^head/') to match a prefix only.
Read from `config.model` (when there is one): parameterization='mup' chains muP's per-parameter
learning-rate factors after the groups (`mbjax.models.mup`: hidden kernels x mup_base_width /
dim_feat); 'standard' (the default) leaves the optimiser as above.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import flax.core.meta as meta
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mbjax.models import mup

BACKBONE, HEAD, FROZEN = 'backbone', 'head', 'frozen'

# torch.optim.AdamW defaults, which the official scripts keep.
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8
DEFAULT_WEIGHT_DECAY = 0.01


def lr_schedule(base_lr: float, *, steps_per_epoch: int | None = None, lr_decay: float,
                warmup_steps: int = 0, epoch_starts: Sequence[int] | None = None,
                cosine_steps: int = 0, final_ratio: float = 0.1) -> optax.Schedule:
  """lr(step) = base_lr * lr_decay ** epoch(step), times an optional warmup ramp.

  With `cosine_steps` > 0 the epoch factor is replaced by a cosine from 1 to `final_ratio` over
  steps 0..cosine_steps (constant after).

  epoch(step) is step // steps_per_epoch (staircase), or, for epochs of unequal length (a data
  curriculum), the index of the last of `epoch_starts` (first step of each epoch, from 0) that is
  <= step. Give exactly one of the two.

  The warmup factor is min(1, (step + 1) / warmup_steps), so the first step already trains and
  step warmup_steps - 1 reaches the full rate; the epoch decay counts from step 0 regardless.
  """
  if (steps_per_epoch is None) == (epoch_starts is None):
    raise ValueError('lr_schedule: give exactly one of steps_per_epoch and epoch_starts')
  if steps_per_epoch is not None and steps_per_epoch < 1:
    raise ValueError(f'lr_schedule: steps_per_epoch must be >= 1, got {steps_per_epoch}')
  if epoch_starts is not None:
    starts = [int(s) for s in epoch_starts]
    if not starts or starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])):
      raise ValueError(f'lr_schedule: epoch_starts must rise strictly from 0, got {starts[:8]}...')
    starts = np.asarray(starts, np.int32)
  if warmup_steps < 0:
    raise ValueError(f'lr_schedule: warmup_steps must be >= 0, got {warmup_steps}')
  if not lr_decay > 0:
    raise ValueError(f'lr_schedule: lr_decay must be > 0, got {lr_decay}')
  # exp(epoch * log(decay)) with the log taken in float64: float32(0.99) ** epoch would carry the
  # rounding of 0.99 into every epoch (2e-6 relative off by epoch 200).
  log_decay = math.log(lr_decay)

  def schedule(step):
    step = jnp.asarray(step, jnp.int32)
    if epoch_starts is None:
      epoch = step // steps_per_epoch
    else:
      epoch = jnp.searchsorted(jnp.asarray(starts), step, side='right') - 1
    lr = base_lr * jnp.exp(epoch.astype(jnp.float32) * log_decay)
    if cosine_steps > 0:
      done = jnp.minimum(step, cosine_steps).astype(jnp.float32) / cosine_steps
      lr = base_lr * (final_ratio + (1 - final_ratio) * 0.5 * (1 + jnp.cos(jnp.pi * done)))
    if warmup_steps > 0:
      lr = lr * jnp.minimum(1.0, (step + 1).astype(jnp.float32) / warmup_steps)
    return lr

  return schedule


def current_lr(schedule: optax.Schedule, step) -> float:
  """The schedule's learning rate at `step` as a Python float, for logging."""
  return float(jax.device_get(schedule(step)))


def param_path_name(path: Sequence[Any]) -> str:
  """A key path of `jax.tree_util` -> 'blocks_st_0/attn_s/qkv/kernel'."""
  return jax.tree_util.keystr(tuple(path), simple=True, separator='/')


def _is_box(x) -> bool:
  return isinstance(x, meta.AxisMetadata)


def _patterns(config, name: str) -> tuple[re.Pattern, ...] | None:
  value = _get(config, name, None)
  if value is None:
    return None
  if isinstance(value, str):
    value = (value,)
  try:
    return tuple(re.compile(p) for p in value)
  except re.error as e:
    raise ValueError(f'optimizer config: bad regex in {name}={list(value)!r}: {e}') from e


def _get(config, name: str, default):
  value = config.get(name, default) if hasattr(config, 'get') else getattr(config, name, default)
  return default if value is None else value


def _label(name: str, *, head, partial_train, freeze) -> str:
  if freeze and any(p.search(name) for p in freeze):
    return FROZEN
  if partial_train is not None and not any(p.search(name) for p in partial_train):
    return FROZEN
  if head and any(p.search(name) for p in head):
    return HEAD
  return BACKBONE


def param_labels(params: Any, config: Any) -> Any:
  """'backbone' | 'head' | 'frozen' per parameter, as a tree of the same structure as `params`.

  `params` may hold `flax.core.meta` boxes (LogicallyPartitioned): labels are computed on the
  unboxed tree, so box attributes do not enter the names, and put back into boxes of the same
  metadata, so the labels tree matches the tree that was passed.
  """
  head = _patterns(config, 'head_patterns') if _get(config, 'lr_head', None) is not None else None
  partial_train = _patterns(config, 'partial_train')
  freeze = _patterns(config, 'freeze_patterns')
  unboxed = meta.unbox(params)
  labels = jax.tree_util.tree_map_with_path(
      lambda path, _: _label(param_path_name(path), head=head, partial_train=partial_train,
                             freeze=freeze), unboxed)
  return jax.tree.map(lambda p, label: p.replace_boxed(label) if _is_box(p) else label,
                      params, labels, is_leaf=_is_box)


def label_counts(params: Any, config: Any) -> dict[str, int]:
  """Number of scalar parameters per group, e.g. {'backbone': 16_934_400, 'head': 1_539}."""
  sizes = jax.tree.leaves(jax.tree.map(lambda x: int(x.size), meta.unbox(params)))
  labels = jax.tree.leaves(meta.unbox(param_labels(params, config)))
  counts: dict[str, int] = {}
  for label, size in zip(labels, sizes):
    counts[label] = counts.get(label, 0) + size
  return counts


def _check_patterns(params: Any, config: Any) -> None:
  """Every pattern must select some parameter: a typo would otherwise silently train everything."""
  names = [param_path_name(path) for path, _ in
           jax.tree_util.tree_flatten_with_path(meta.unbox(params))[0]]
  fields = ('partial_train', 'freeze_patterns')
  if _get(config, 'lr_head', None) is not None:  # head patterns are unused without lr_head
    fields = ('head_patterns',) + fields
  for field in fields:
    for pattern in _patterns(config, field) or ():
      if not any(pattern.search(n) for n in names):
        raise ValueError(f'optimizer config: {field} pattern {pattern.pattern!r} matches no '
                         f'parameter; parameters look like {names[:4]}')


def make_optimizer(config: Any, *, steps_per_epoch: int | None = None, params: Any,
                   epoch_starts: Sequence[int] | None = None) -> optax.GradientTransformation:
  """AdamW groups (backbone, head, frozen) over `params` as the config asks (see module doc).

  The per-epoch decay counts epochs of `steps_per_epoch` steps, or starting at `epoch_starts`
  (see `lr_schedule`). The schedules count optimizer updates, i.e. train steps.

  `params` (boxed or not, concrete or abstract) is used to check the patterns; the labels are
  recomputed from whatever tree `init` / `update` receive, so one optimizer serves both the boxed
  abstract tree used to derive shardings and the unboxed tree of the train state.
  """
  lr_head = _get(config, 'lr_head', None)
  weight_decay = float(_get(config, 'weight_decay', DEFAULT_WEIGHT_DECAY))
  group_schedules = schedules(config, steps_per_epoch=steps_per_epoch, epoch_starts=epoch_starts)
  grad_clip = float(_get(config, 'grad_clip', 0.0))
  m = _mup_width_mult(config)
  _check_patterns(params, config)
  counts = label_counts(params, config)
  if not counts.get(BACKBONE) and not counts.get(HEAD):
    raise ValueError('optimizer config: partial_train / freeze_patterns freeze every parameter')

  def adamw(schedule):
    # optax applies -lr * (adam_update + wd * param): torch's decoupled decay, same numbers.
    return optax.adamw(schedule, b1=ADAM_B1, b2=ADAM_B2, eps=ADAM_EPS, eps_root=0.0,
                       weight_decay=weight_decay)

  transforms = {BACKBONE: adamw(group_schedules['lr']), FROZEN: optax.set_to_zero()}
  if lr_head is not None:
    transforms[HEAD] = adamw(group_schedules['lr_head'])
  labels = lambda tree: param_labels(tree, config)
  tx = optax.multi_transform(transforms, labels)
  if grad_clip > 0:
    # Official code has no clipping. Frozen gradients are zeroed first so that the norm covers
    # the trained parameters only, as torch's clip_grad_norm_ over requires_grad parameters.
    frozen_mask = lambda tree: jax.tree.map(lambda label: label == FROZEN, labels(tree))
    tx = optax.chain(optax.masked(optax.set_to_zero(), frozen_mask),
                     optax.clip_by_global_norm(grad_clip), tx)
  if m is not None:
    tx = optax.chain(tx, mup.scale_by_lr_multipliers(m))  # stateless: adds no moments
  return tx


def _mup_width_mult(config: Any) -> float | None:
  """muP's width multiplier of `config.model`; None for 'standard' or without a model block."""
  model = _get(config, 'model', None)
  if model is None:
    return None
  return mup.model_width_mult(model if hasattr(model, 'get') else dict(model))


def _cosine(config: Any) -> dict:
  """lr_schedule's cosine arguments of `config.lr_schedule` (see the module docstring)."""
  kind = _get(config, 'lr_schedule', 'epoch_decay')
  if kind == 'epoch_decay':
    return {}
  total = int(_get(config, 'total_steps', -1))
  if kind != 'cosine':
    raise ValueError(f'config.lr_schedule={kind!r}: expected \'epoch_decay\' or \'cosine\'')
  if total <= 0:
    raise ValueError(f'config.lr_schedule=\'cosine\' runs over config.total_steps, which is '
                     f'{total}; set --config.total_steps=N')
  return dict(cosine_steps=total, final_ratio=float(_get(config, 'lr_final_ratio', 0.1)))


def schedules(config: Any, *, steps_per_epoch: int | None = None,
              epoch_starts: Sequence[int] | None = None) -> dict[str, optax.Schedule]:
  """The learning-rate schedule of each trained group: 'lr', and 'lr_head' when set (logging)."""
  kwargs = dict(steps_per_epoch=steps_per_epoch, epoch_starts=epoch_starts,
                lr_decay=float(_get(config, 'lr_decay', 1.0)),
                warmup_steps=int(_get(config, 'warmup_steps', 0)), **_cosine(config))
  if _get(config, 'lr', None) is None:
    raise ValueError('optimizer config: `lr` is required')
  out = {'lr': lr_schedule(float(_get(config, 'lr', None)), **kwargs)}
  if _get(config, 'lr_head', None) is not None:
    out['lr_head'] = lr_schedule(float(_get(config, 'lr_head', None)), **kwargs)
  return out
