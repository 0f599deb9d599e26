"""The one loader of trained or released weights, for every place that reads them.

`load_variables` reads an official `.bin`, an `mbjax.convert` directory or a trainer workdir;
`load_pretrained` / `fit_pretrained` fit them onto a model (a pretrained DSTformer onto the
`backbone/` of a head model, scanned or not) with a report of what was taken and what was kept.
Restore order in the trainer: workdir latest -> `init_from` -> scratch.
"""

from __future__ import annotations

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax.core import meta

from mbjax.checkpoint import converted, official
from mbjax.checkpoint import state as state_lib
from mbjax.models.dstformer import scan_params, unscan_params


def _restore_workdir(path: str) -> dict:
  """Variables (params + model state) of the latest checkpoint of a trainer workdir."""
  state = state_lib.read_state(path)
  return {'params': state['params'], **(state.get('model_state') or {})}


def load_variables(path: str) -> dict:
  """Flax variables (`params` and any `batch_stats`) from an official `.bin`, an
  `mbjax.convert` directory, or a trainer workdir (its latest checkpoint)."""
  path = os.fspath(path)
  if os.path.isfile(path):
    state_dict = official.load_official(path)
    return official.official_to_variables(state_dict, official.official_kind(state_dict))
  if not os.path.isdir(path):
    raise FileNotFoundError(f'{path}: no such file or directory (expected an official .bin, an '
                            'mbjax.convert directory or a trainer workdir)')
  if os.path.exists(os.path.join(path, 'config.json')) and os.path.isdir(
      os.path.join(path, 'variables')):
    return dict(meta.unbox(converted.restore(path)[1]))
  return _restore_workdir(path)


def _is_dstformer(params) -> bool:
  return isinstance(params, dict) and 'pos_embed' in params


# What each kind of model is, as the one-line refusals name it, and a config that builds it.
KINDS = {
    'pose': ('a pose model (a bare DSTformer: pretrained, or finetuned for 3D pose)',
             'configs/pose3d_h36m.py'),
    'action-class': ('an action-class model (DSTformer + classification head)',
                     'configs/action_ntu60.py'),
    'action-embed': ('an action-embed model (DSTformer + embedding head)',
                     'configs/action_ntu120_oneshot.py'),
    'mesh': ('a mesh model (DSTformer + SMPL regressor head)', 'configs/mesh.py'),
}


def variables_kind(variables: dict) -> str | None:
  """Which of `KINDS` `variables` hold, told by their layout as `official.official_kind` tells
  an official state dict; None for a head it does not know."""
  params = variables.get('params', {})
  if _is_dstformer(params):
    return 'pose'
  head = params.get('head') if isinstance(params, dict) and 'backbone' in params else None
  if not isinstance(head, dict):
    return None
  if 'head_pose' in head or 'init_pose' in (variables.get('constants') or {}).get('head', {}):
    return 'mesh'
  return 'action-class' if 'fc2' in head else 'action-embed' if 'fc1' in head else None


def check_kind(target: dict, source: dict, fresh=(), what: str = 'pretrained weights') -> None:
  """A ValueError naming both kinds when `source` holds another kind of model than `target`.

  The one allowed difference: a bare DSTformer onto a head model whose head may start fresh
  (`fresh`), which is how a finetuning run starts from pretrained weights.
  """
  stored, wanted = variables_kind(source), variables_kind(target)
  if stored is None or wanted is None or stored == wanted:
    return
  head = [k for k in state_lib.flat_paths(target) if '/backbone/' not in f'/{k}']
  if stored == 'pose' and all(any(re.search(p, k) for p in fresh) for k in head):
    return
  if stored == 'pose':
    hint = ('a pretrained backbone alone only starts a training run (config.init_from); '
            f'evaluate, infer and export need a trained {wanted} model')
  else:
    hint = f'pass a {wanted} checkpoint, or the config of the file\'s model ({KINDS[stored][1]})'
  raise ValueError(f'{what} holds {KINDS[stored][0]}; the config asks for {KINDS[wanted][0]}: '
                   f'{hint}')


def _align_source(target: dict, source: dict) -> dict:
  """`source` laid out like `target`: a bare DSTformer under `backbone/` (or the reverse), and
  scanned or unscanned layers as the target has them."""
  t_params, s_params = target.get('params', {}), source.get('params', {})
  if 'backbone' in t_params and _is_dstformer(s_params):
    source = {'params': {'backbone': s_params}}
  elif _is_dstformer(t_params) and 'backbone' in s_params:
    source = {'params': s_params['backbone']}

  def fit_layers(t, s):
    if 'layers' in t and 'layers' not in s:
      return scan_params(s, jax.tree_util.tree_leaves(t['layers'])[0].shape[0])
    if 'layers' in s and 'layers' not in t:
      return unscan_params(s)
    return s

  t_params, s_params = target.get('params', {}), source.get('params', {})
  if _is_dstformer(t_params):
    s_params = fit_layers(t_params, s_params)
  elif 'backbone' in t_params and 'backbone' in s_params:
    s_params = dict(s_params, backbone=fit_layers(t_params['backbone'], s_params['backbone']))
  return dict(source, params=s_params)


def _shape(x) -> tuple:
  return tuple(x.shape) if hasattr(x, 'shape') else np.shape(x)


def dstformer_size(variables: dict) -> str | None:
  """'lite (dim_feat 256, depth 5, ...)': the DSTformer size of `variables` (bare or under
  `backbone/`, scanned or not), named after its variant when one matches; None if no DSTformer."""
  params = variables.get('params', {})
  params = params.get('backbone', params) if isinstance(params, dict) else {}
  if not _is_dstformer(params):
    return None
  if 'layers' in params:
    params = unscan_params(params)
  depth = len([k for k in params if re.fullmatch(r'blocks_st_\d+', k)])
  if not depth or 'pre_logits' not in params:
    return None
  dim = int(_shape(params['pos_embed'])[-1])
  dims = dict(dim_feat=dim, depth=depth,
              mlp_ratio=_shape(params['blocks_st_0']['mlp_s']['fc1']['kernel'])[-1] / dim,
              dim_rep=int(_shape(params['pre_logits']['kernel'])[-1]),
              maxlen=int(_shape(params['temp_embed'])[0]))
  text = ', '.join(f'{k} {v:g}' for k, v in dims.items())
  variant = official.variant_of(dims)
  return f'{variant} ({text})' if variant else f'{text}, no named variant'


def fit_pretrained(target: dict, source: dict, *, fresh=(), what: str = 'pretrained weights'
                   ) -> tuple[dict, dict]:
  """(target with every variable of `source` that has its path and shape, report).

  `fresh`: regular expressions (searched in 'collection/path') of the variables allowed to keep
  their initial value (a new head). A `source` of another kind of model than `target` is an
  error naming both (`check_kind`); any other variable of `target` that `source` lacks or has in
  another shape is an error listing each (path, stored shape, wanted shape).
  """
  target = meta.unbox(target)
  check_kind(target, source, fresh, what)
  flat_src = state_lib.flat_paths(_align_source(target, source))
  taken, kept, wrong = [], [], []

  def pick(keypath, value):
    key = '/'.join(str(getattr(k, 'key', k)) for k in keypath)
    stored = flat_src.get(key)
    if stored is not None and tuple(np.shape(stored)) == tuple(value.shape):
      taken.append(key)
      return jnp.asarray(stored, value.dtype)
    (wrong if stored is not None else kept).append(key)
    return value

  variables = jax.tree_util.tree_map_with_path(pick, target)
  allowed = lambda key: any(re.search(p, key) for p in fresh)
  bad = [k for k in kept + wrong if not allowed(k)]
  if bad:
    wanted = state_lib.flat_paths(target)
    lines = [f'  {k}: stored {tuple(np.shape(flat_src[k]))}, model wants '
             f'{tuple(wanted[k].shape)}' if k in flat_src else f'  {k}: missing'
             for k in bad[:20]]
    more = f'\n  ... and {len(bad) - 20} more' if len(bad) > 20 else ''
    stored_size, wanted_size = dstformer_size(source), dstformer_size(target)
    sizes = (f'the file holds a DSTformer {stored_size}; the config asks for {wanted_size}'
             if stored_size and wanted_size and stored_size != wanted_size
             else 'is it the same model size?')
    raise ValueError(f'{what}: {len(bad)} of {len(taken) + len(kept) + len(wrong)} model '
                     f'variables are missing or have another shape ({sizes}):\n'
                     + '\n'.join(lines) + more)
  unused = sorted(set(flat_src) - set(taken) - set(wrong))
  report = dict(taken=len(taken), fresh=sorted(kept + wrong), unused=unused)
  logging.info('%s: %d variables loaded, %d kept from init %s, %d in the file unused %s', what,
               len(taken), len(report['fresh']), report['fresh'][:10], len(unused), unused[:10])
  return variables, report


def load_pretrained(variables: dict, path: str, *, fresh=(), what: str | None = None
                    ) -> tuple[dict, dict]:
  """`fit_pretrained(variables, load_variables(path))`: the task protocol's usual loader, and
  that of a trained model (no `fresh`: every variable from the file)."""
  return fit_pretrained(variables, load_variables(path), fresh=fresh,
                        what=what or f'pretrained weights {path}')
