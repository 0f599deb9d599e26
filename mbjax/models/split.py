"""A model as its two halves, the DSTformer backbone and the head, applied apart: models that
carry the same backbone weights can then share one backbone pass (mbjax/infer/shared.py).

  rep = split.representation(model, variables, x)    # (B, T, 17, dim_rep)
  out = split.head(model, variables, rep)            # what model.apply(variables, x) returns
  why = split.backbone_difference(a, a_vars, b, b_vars)   # None: the same backbone, by content

The models are the DSTformer with its pose head (`models.DSTformer`), `ActionNet` and `MeshNet`.
`head(representation(x))` is `model.apply(x)` in inference mode (`tests/test_shared_backbone.py`).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import numpy as np

from mbjax.models.dstformer import DSTformer
from mbjax.models.heads import ActionHead, ActionNet

# DSTformer fields that do not change what the backbone computes in inference mode: the head's
# width, how attention and memory are scheduled, and the training-only dropout rates.
_NOT_COMPUTATION = frozenset(('dim_out', 'attention_impl', 'remat_policy', 'drop_rate',
                              'attn_drop_rate', 'drop_path_rate', 'parent', 'name'))


def backbone(model: nn.Module) -> DSTformer:
  """The DSTformer of `model` (itself for the pose model)."""
  return model if isinstance(model, DSTformer) else model.backbone


def _is_pose(model: nn.Module) -> bool:
  return isinstance(model, DSTformer)


def _backbone_tree(model: nn.Module, variables: dict) -> dict:
  return variables['params'] if _is_pose(model) else variables['params']['backbone']


def backbone_params(model: nn.Module, variables: dict) -> dict:
  """The backbone's parameters without its pose head (`head`): what makes the representation."""
  return {k: v for k, v in _backbone_tree(model, variables).items() if k != 'head'}


def representation(model: nn.Module, variables: dict, x):
  """(B, T, 17, C) input -> (B, T, 17, dim_rep) motion representation of `model`'s backbone."""
  return backbone(model).apply({'params': _backbone_tree(model, variables)}, x, return_rep=True)


def _head_variables(variables: dict) -> dict:
  return {col: tree['head'] for col, tree in variables.items() if 'head' in tree}


def head(model: nn.Module, variables: dict, rep):
  """`model`'s head on the representation `rep` (B, T, 17, dim_rep), in inference mode. For an
  `ActionNet` the B rows are the persons of one clip each (M = 1)."""
  if _is_pose(model):
    readout = model._mup_factors()['readout_mult']  # pylint: disable=protected-access
    dense = nn.Dense(model.dim_out, dtype=model.dtype, param_dtype=model.param_dtype)
    out = dense.apply({'params': variables['params']['head']}, rep)
    return out if readout is None else out * readout
  if isinstance(model, ActionNet):
    fields = {f: getattr(model, f) for f in ('dim_rep', 'num_classes', 'dropout_ratio', 'version',
                                             'hidden_dim', 'num_joints')}
    return ActionHead(**fields).apply(_head_variables(variables), rep[:, None])
  from mbjax.models.mesh_head import MeshRegressor  # pylint: disable=import-outside-toplevel
  return MeshRegressor(smpl=model.smpl, hidden_dim=model.hidden_dim,
                       dropout_ratio=model.dropout_ratio).apply(_head_variables(variables), rep)


def backbone_difference(a: nn.Module, a_variables: dict, b: nn.Module, b_variables: dict
                        ) -> str | None:
  """None when the backbones of `a` and `b` compute the same representation (the same sizes and
  options, and every parameter equal by content); else what differs, in a few words."""
  fields_a, fields_b = (
      {f.name: getattr(backbone(m), f.name) for f in dataclasses.fields(backbone(m))
       if f.name not in _NOT_COMPUTATION} for m in (a, b))
  for name, value in fields_a.items():
    if fields_b[name] != value:
      return f'backbone {name} {value} vs {fields_b[name]}'
  leaves_a, leaves_b = (_leaves(backbone_params(m, v)) for m, v in ((a, a_variables),
                                                                    (b, b_variables)))
  if leaves_a.keys() != leaves_b.keys():
    return 'backbone parameters of other names'
  for path, value in leaves_a.items():
    other = leaves_b[path]
    if value.shape != other.shape or not np.array_equal(value, other):
      return f'backbone weights differ ({path})'
  return None


def _leaves(tree: dict) -> dict[str, np.ndarray]:
  """{'a/b/c': array} of a nested dict of arrays (flax boxed values unboxed)."""
  flat, _ = jax.tree_util.tree_flatten_with_path(nn.unbox(tree))
  return {'/'.join(str(k.key) for k in path): np.asarray(v) for path, v in flat}
