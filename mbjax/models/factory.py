"""The one model factory: a `config.model` block -> a Flax module.

`config.model` holds the DSTformer constructor fields (dtype names as strings: 'float32',
'bfloat16'); an optional `head` entry (a dict of `ActionNet` fields, e.g. version, num_classes)
puts an action head on top of that DSTformer, and `head=dict(version='mesh', hidden_dim=...,
dropout_ratio=..., smpl_dir=PATH)` a mesh head (a `MeshNet`; the SMPL model is read from
`smpl_dir`, the official data_root, or given as `from_config(..., smpl=...)`). Trainer,
evaluators, benches and CLIs all build their models here, so one config always means one
architecture.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from mbjax.models import mup
from mbjax.models.dstformer import DSTformer
from mbjax.models.heads import ActionNet

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}
_DSTFORMER_FIELDS = tuple(f.name for f in dataclasses.fields(DSTformer)
                          if f.name not in ('parent', 'name'))
_HEAD_FIELDS = tuple(f.name for f in dataclasses.fields(ActionNet)
                     if f.name not in ('parent', 'name', 'backbone'))
_MESH_FIELDS = ('version', 'hidden_dim', 'dropout_ratio', 'num_joints', 'smpl_dir')


def resolve_dtype(value: Any, field: str) -> Any:
  """A dtype from its name ('bfloat16'); dtypes pass through."""
  if not isinstance(value, str):
    return value
  if value not in DTYPES:
    raise ValueError(f'config.model.{field}={value!r}: unknown dtype, expected one of '
                     f'{sorted(DTYPES)}')
  return DTYPES[value]


def _check_fields(given, known, where: str) -> None:
  unknown = sorted(set(given) - set(known))
  if unknown:
    raise ValueError(f'{where}: unknown field(s) {unknown}; valid fields: {sorted(known)}')


def dstformer_from_config(model_config: Mapping[str, Any]) -> DSTformer:
  """The DSTformer of a `config.model` block (without its `head` entry)."""
  fields = {k: v for k, v in dict(model_config).items() if k != 'head'}
  _check_fields(fields, _DSTFORMER_FIELDS, 'config.model')
  for name in ('dtype', 'param_dtype'):
    if name in fields:
      fields[name] = resolve_dtype(fields[name], name)
  model = DSTformer(**fields)
  mup.check(model.parameterization, model.mup_base_width)
  if model.dim_feat % model.num_heads:
    raise ValueError(f'config.model.num_heads={model.num_heads} does not divide '
                     f'config.model.dim_feat={model.dim_feat}')
  return model


def mesh_from_config(backbone: DSTformer, head: Mapping[str, Any], smpl=None) -> nn.Module:
  """A MeshNet on `backbone`; its SMPL is `smpl` or read from `head['smpl_dir']`."""
  from mbjax.models.mesh_head import MeshNet  # pylint: disable=import-outside-toplevel
  head = dict(head)
  _check_fields(head, _MESH_FIELDS, 'config.model.head')
  head.pop('version')
  smpl_dir = head.pop('smpl_dir', None)
  if smpl is None:
    if not smpl_dir:
      raise ValueError("config.model.head: version='mesh' needs smpl_dir (the folder with "
                       'SMPL_NEUTRAL.pkl and its extras, the official data_root)')
    from mbjax.models.smpl import SMPL  # pylint: disable=import-outside-toplevel
    smpl = SMPL.from_file(smpl_dir)
  head.setdefault('num_joints', backbone.num_joints)
  return MeshNet(backbone=backbone, smpl=smpl, **head)


def from_config(model_config: Mapping[str, Any], *, smpl=None) -> nn.Module:
  """The module of a `config.model` block: a DSTformer, or an ActionNet / MeshNet when it has a
  `head` (`smpl`: the SMPL model of a mesh head, instead of reading `head.smpl_dir`)."""
  backbone = dstformer_from_config(model_config)
  head = model_config.get('head')
  if not head:
    return backbone
  head = dict(head)
  if head.get('version') == 'mesh':
    return mesh_from_config(backbone, head, smpl)
  _check_fields(head, _HEAD_FIELDS, 'config.model.head')
  head.setdefault('dim_rep', backbone.dim_rep)
  head.setdefault('num_joints', backbone.num_joints)
  return ActionNet(backbone=backbone, **head)


def init_input(example) -> jnp.ndarray:
  """Zeros of one example of a task's example batch (`input`), to initialise a model with."""
  x = example['input']
  return jnp.zeros((1,) + tuple(x.shape[1:]), x.dtype)


def abstract_variables(model, example):
  """The model's (boxed, logically partitioned) variable shapes, without computing them."""
  return jax.eval_shape(lambda rng: model.init(rng, init_input(example)), jax.random.key(0))
