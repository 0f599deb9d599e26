"""The official MotionBERT checkpoint format: its state dict <-> Flax variables.

The mapping is a renaming plus transposes: official `blocks_st.0.attn_s.qkv.weight` (out, in) is
`params/blocks_st_0/attn_s/qkv/kernel` (in, out); LayerNorm / BatchNorm `weight` is `scale`;
`pre_logits.fc` is `pre_logits`; `temp_embed` (1, L, 1, C) and `pos_embed` (1, J, C) drop their
unit axes; BatchNorm running stats live in the `batch_stats` collection.

The mesh model (a `MeshNet`) also holds the buffers `head.init_pose` (1, 144) and
`head.init_shape` (1, 10), kept in the `constants` collection as (144,) and (10,), and the SMPL
buffers `head.smpl.*`, which are not Flax variables: they come from the user's SMPL files (the
official data_root) and are written back from them (`save_official(..., smpl=)`).
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from mbjax.checkpoint import torch_zip as torch_format

MODELS = ('pose', 'action-class', 'action-embed', 'mesh')
# Where the official scripts keep the state dict inside the saved dict.
CHECKPOINT_ENTRY = {'pose': 'model_pos', 'action-class': 'model', 'action-embed': 'model',
                    'mesh': 'model'}
_NORM_MODULE = re.compile(r'^(norm\w*|bn\d*)$')
_HEAD_MODELS = ('action-class', 'action-embed', 'mesh')  # backbone.* + head.*
# The mesh head's buffers: official key -> Flax `constants` path.
_MESH_CONSTANTS = {'head.init_pose': ('head', 'init_pose'),
                   'head.init_shape': ('head', 'init_shape')}
SMPL_PREFIX = 'head.smpl.'
# smplx's `vertex_ids['smplh']` in VertexJointSelector order (face, feet, finger tips): the
# vertices of its extra joints, stored as `head.smpl.vertex_joint_selector.extra_joints_idxs`.
SMPLH_EXTRA_JOINT_NAMES = ('nose', 'reye', 'leye', 'rear', 'lear', 'LBigToe', 'LSmallToe', 'LHeel',
                           'RBigToe', 'RSmallToe', 'RHeel', 'lthumb', 'lindex', 'lmiddle', 'lring',
                           'lpinky', 'rthumb', 'rindex', 'rmiddle', 'rring', 'rpinky')
SMPLH_VERTEX_IDS = dict(zip(SMPLH_EXTRA_JOINT_NAMES, (
    332, 6260, 2800, 4071, 583, 3216, 3226, 3387, 6617, 6624, 6787, 2746, 2319, 2445, 2556, 2673,
    6191, 5782, 5905, 6016, 6133)))
_SMPL_BATCH = 64  # the official head builds smplx's SMPL with batch_size=64


def load_official(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """The state dict of an official `.bin` (`model_pos` or `model` entry, or a bare state dict)."""
  obj = torch_format.load(path)
  if isinstance(obj, dict):
    for entry in ('model_pos', 'model', 'state_dict'):
      if entry in obj and isinstance(obj[entry], dict):
        obj = obj[entry]
        break
  if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
    raise ValueError(f'{path}: expected a state dict (name -> tensor), or a checkpoint with a '
                     f"'model_pos' or 'model' entry; top-level keys: {list(obj)[:10]}")
  return dict(obj)


def strip_module(key: str) -> str:
  return key[len('module.'):] if key.startswith('module.') else key


def official_key_to_path(key: str) -> tuple[str, tuple[str, ...], str]:
  """Official key -> (collection, flax path, transform) with transform in
  {'copy', 'transpose', 'squeeze'}."""
  parts = strip_module(key).split('.')
  merged: list[str] = []
  for p in parts:
    if p.isdigit() and merged:
      merged[-1] = f'{merged[-1]}_{p}'  # blocks_st.0 -> blocks_st_0, ts_attn.3 -> ts_attn_3
    elif p == 'fc' and merged and merged[-1] == 'pre_logits':
      continue  # pre_logits is Sequential(fc, tanh) officially, a single Dense here
    else:
      merged.append(p)
  *modules, leaf = merged
  if leaf in ('temp_embed', 'pos_embed'):
    return 'params', tuple(merged), 'squeeze'
  parent = modules[-1] if modules else ''
  if leaf == 'weight':
    if _NORM_MODULE.match(parent):
      return 'params', (*modules, 'scale'), 'copy'
    return 'params', (*modules, 'kernel'), 'transpose'
  if leaf == 'bias':
    return 'params', (*modules, 'bias'), 'copy'
  if leaf == 'running_mean':
    return 'batch_stats', (*modules, 'mean'), 'copy'
  if leaf == 'running_var':
    return 'batch_stats', (*modules, 'var'), 'copy'
  if leaf == 'num_batches_tracked':
    return 'batch_stats', (*modules, 'num_batches_tracked'), 'copy'
  raise ValueError(f'official key {key!r}: no known mapping for its leaf {leaf!r}')


def path_to_official_key(collection: str, path: tuple[str, ...]) -> str:
  *modules, leaf = path
  names = []
  for m in modules:
    match = re.fullmatch(r'(blocks_st|blocks_ts|ts_attn)_(\d+)', m)
    names.extend(match.groups() if match else (m,))
    if m == 'pre_logits':
      names.append('fc')
  table = {('params', 'kernel'): 'weight', ('params', 'scale'): 'weight',
           ('params', 'bias'): 'bias', ('batch_stats', 'mean'): 'running_mean',
           ('batch_stats', 'var'): 'running_var',
           ('batch_stats', 'num_batches_tracked'): 'num_batches_tracked'}
  if leaf in ('temp_embed', 'pos_embed'):
    names.append(leaf)
  elif (collection, leaf) in table:
    names.append(table[(collection, leaf)])
  else:
    raise ValueError(f'{collection}/{"/".join(path)}: no official name for this variable')
  return '.'.join(names)


def official_kind(state_dict: dict) -> str:
  """Which of MODELS an official state dict is: 'pose', 'action-class', 'action-embed' or
  'mesh'."""
  keys = [strip_module(k) for k in state_dict]
  if any(k.startswith(SMPL_PREFIX) or k in _MESH_CONSTANTS for k in keys):
    return 'mesh'
  if any(k.startswith('backbone.') for k in keys):
    return 'action-class' if any(k.startswith('head.fc2.') for k in keys) else 'action-embed'
  return 'pose'


def dstformer_dims(state_dict: dict) -> dict:
  """The size fields of the DSTformer in an official state dict (dim_feat, depth, ...)."""
  sd = {strip_module(k).removeprefix('backbone.'): v for k, v in state_dict.items()}
  needed = ('pos_embed', 'temp_embed', 'pre_logits.fc.weight', 'blocks_st.0.mlp_s.fc1.weight')
  missing = [k for k in needed if k not in sd]
  if missing:
    raise ValueError(f'not a DSTformer state dict: no {", ".join(missing)} '
                     f'(first keys: {list(state_dict)[:5]})')
  return dict(dim_feat=sd['pos_embed'].shape[-1], maxlen=sd['temp_embed'].shape[1],
              dim_rep=sd['pre_logits.fc.weight'].shape[0],
              depth=len({k.split('.')[1] for k in sd if k.startswith('blocks_st.')}),
              mlp_ratio=sd['blocks_st.0.mlp_s.fc1.weight'].shape[0] / sd['pos_embed'].shape[-1])


def variant_of(dims: dict) -> str | None:
  """The name of the DSTformer variant (release, lite, ...) with these size fields, if any."""
  from mbjax.models.dstformer import VARIANTS
  return next((name for name, v in VARIANTS.items() if all(v[k] == dims[k] for k in dims)), None)


def check_model(model: str):
  if model not in MODELS:
    raise ValueError(f'model={model!r}, expected one of {MODELS}')


def official_to_variables(state_dict: dict[str, np.ndarray], model: str) -> dict[str, Any]:
  """Official state dict (with or without `module.`) -> Flax variables for `Module.apply`."""
  check_model(model)
  variables: dict[str, Any] = {}
  for key, value in state_dict.items():
    stripped = strip_module(key)
    if model in _HEAD_MODELS and not stripped.startswith(('backbone.', 'head.')):
      raise ValueError(f'{key!r} is not under backbone. or head.: is this a {model} checkpoint?')
    if model == 'pose' and stripped.startswith(('backbone.', 'head.fc1')):
      raise ValueError(f'{key!r} belongs to an action model, not model={model!r}')
    if model == 'mesh' and stripped.startswith(SMPL_PREFIX):
      continue  # SMPL buffers: the model takes them from the user's SMPL files
    if model == 'mesh' and stripped in _MESH_CONSTANTS:
      variables.setdefault('constants', {}).setdefault('head', {})[
          _MESH_CONSTANTS[stripped][-1]] = np.asarray(value, np.float32).reshape(-1)
      continue
    collection, path, transform = official_key_to_path(key)
    value = np.asarray(value)
    if transform == 'transpose':
      value = value.T
    elif transform == 'squeeze':
      value = value.reshape(value.shape[1], value.shape[-1])  # (1,L,1,C) / (1,J,C) -> (L|J, C)
    if path[-1] == 'num_batches_tracked':
      value = value.astype(np.int32)
    node = variables.setdefault(collection, {})
    for p in path[:-1]:
      node = node.setdefault(p, {})
    node[path[-1]] = np.asarray(value, order='C')
    if path[-1] == 'mean' and collection == 'batch_stats':
      node.setdefault('num_batches_tracked', np.zeros((), np.int32))  # absent in some state dicts
  return variables


def extra_joints_idxs(smpl, vertex_ids=None) -> np.ndarray:
  """(21,) int64: smplx's extra-joint vertices, `vertex_ids` (name -> vertex, names as in
  SMPLH_EXTRA_JOINT_NAMES) or, for the real 6890-vertex SMPL, smplx's published SMPL-H ids."""
  if vertex_ids is None:
    if smpl.num_vertices != 6890:
      raise ValueError(f'an SMPL model with {smpl.num_vertices} vertices (not 6890): give the '
                       'vertex ids of its extra joints (vertex_ids=) for '
                       'head.smpl.vertex_joint_selector.extra_joints_idxs')
    vertex_ids = SMPLH_VERTEX_IDS
  missing = [n for n in SMPLH_EXTRA_JOINT_NAMES if n not in vertex_ids]
  if missing:
    raise ValueError(f'vertex_ids: no vertex for {missing}')
  return np.asarray([vertex_ids[n] for n in SMPLH_EXTRA_JOINT_NAMES], np.int64)


def smpl_buffers(smpl, vertex_ids=None) -> dict[str, np.ndarray]:
  """The official mesh checkpoint's `head.smpl.*` buffers (without `module.`) of an SMPL model,
  with smplx's unused batch-64 `betas`, `global_orient`, `body_pose` parameters as zeros."""
  if smpl.J_regressor_h36m is None or smpl.J_regressor_extra is None:
    raise ValueError('the SMPL model was loaded without its extras (J_regressor_h36m, '
                     'J_regressor_extra): the mesh checkpoint holds them')
  f32 = lambda a: np.asarray(a, np.float32)
  buffers = dict(
      betas=np.zeros((_SMPL_BATCH, 10), np.float32),
      global_orient=np.zeros((_SMPL_BATCH, 3), np.float32),
      body_pose=np.zeros((_SMPL_BATCH, 69), np.float32),
      shapedirs=f32(smpl.shapedirs), faces_tensor=np.asarray(smpl.faces, np.int64),
      v_template=f32(smpl.v_template), J_regressor=f32(smpl.J_regressor),
      posedirs=f32(smpl.posedirs), parents=np.asarray(smpl.parents, np.int64),
      lbs_weights=f32(smpl.lbs_weights), J_regressor_extra=f32(smpl.J_regressor_extra),
      J_regressor_h36m=f32(smpl.J_regressor_h36m))
  buffers['vertex_joint_selector.extra_joints_idxs'] = extra_joints_idxs(smpl, vertex_ids)
  return {SMPL_PREFIX + k: v for k, v in buffers.items()}


def check_smpl_buffers(state_dict: dict, smpl, atol: float = 1e-6) -> None:
  """Raises ValueError when a mesh state dict's SMPL buffers differ from `smpl` (the weights were
  trained with another body model); buffers absent from the state dict are not checked."""
  sd = {strip_module(k): v for k, v in state_dict.items()}
  ours = smpl_buffers(smpl, vertex_ids={n: 0 for n in SMPLH_EXTRA_JOINT_NAMES})
  for key in ('v_template', 'shapedirs', 'posedirs', 'J_regressor', 'lbs_weights', 'parents',
              'J_regressor_h36m'):
    key = SMPL_PREFIX + key
    if key in sd and (sd[key].shape != ours[key].shape
                      or not np.allclose(sd[key], ours[key], rtol=0, atol=atol)):
      raise ValueError(f'{key} differs from the given SMPL model (shape {sd[key].shape} vs '
                       f'{ours[key].shape}): the checkpoint was made with another SMPL')


def variables_to_official(variables: dict[str, Any], model: str, module_prefix: bool = True,
                          *, smpl=None, vertex_ids=None) -> dict[str, np.ndarray]:
  """Flax variables -> state dict with the official key names, shapes and dtypes.

  For model='mesh', `smpl` (an `mbjax.models.smpl.SMPL` with its extras) gives the
  `head.smpl.*` buffers (see `smpl_buffers`; `vertex_ids` for a non-6890-vertex model).
  """
  import jax
  from flax.core import meta
  from mbjax.models.dstformer import unscan_params
  check_model(model)
  variables = dict(meta.unbox(variables))
  params = variables.get('params', {})
  if 'layers' in params:  # scanned layers (DSTformer(scan_layers=True)): unscan first
    variables['params'] = unscan_params(params)
  elif 'layers' in params.get('backbone', {}):
    variables['params'] = dict(params, backbone=unscan_params(params['backbone']))
  out = {}
  for collection in ('params', 'batch_stats'):
    flat = jax.tree_util.tree_flatten_with_path(variables.get(collection, {}))[0]
    for keypath, value in flat:
      path = tuple(k.key for k in keypath)
      key = path_to_official_key(collection, path)
      value = np.asarray(value)
      if path[-1] == 'kernel':
        value = value.T
      elif path[-1] == 'temp_embed':
        value = value[None, :, None, :]
      elif path[-1] == 'pos_embed':
        value = value[None]
      if path[-1] == 'num_batches_tracked':
        value = value.astype(np.int64)
      elif value.dtype != np.float32:
        value = value.astype(np.float32)
      out[('module.' if module_prefix else '') + key] = np.asarray(value, order='C')
  if model == 'mesh':
    out.update(_mesh_buffers(variables, smpl, vertex_ids, 'module.' if module_prefix else ''))
  return out


def _mesh_buffers(variables, smpl, vertex_ids, prefix: str) -> dict[str, np.ndarray]:
  """`head.init_pose` (1, 144), `head.init_shape` (1, 10) and the SMPL buffers."""
  if smpl is None:
    raise ValueError("model='mesh': pass smpl= (the SMPL model) to write the head.smpl.* buffers")
  head = variables.get('constants', {}).get('head', {})
  out = {}
  for key, path in _MESH_CONSTANTS.items():
    if path[-1] not in head:
      raise ValueError(f'mesh variables without constants/{"/".join(path)}')
    out[prefix + key] = np.asarray(head[path[-1]], np.float32).reshape(1, -1)
  out.update({prefix + k: v for k, v in smpl_buffers(smpl, vertex_ids).items()})
  return out


def save_official(variables, model: str, path: str | os.PathLike, *, smpl=None, vertex_ids=None,
                  **extra) -> None:
  """Write an official-layout `.bin` that the official scripts (and `load_official`) read
  (`smpl`, `vertex_ids`: the mesh model's SMPL buffers, see `variables_to_official`)."""
  state_dict = variables_to_official(variables, model, smpl=smpl, vertex_ids=vertex_ids)
  torch_format.save({CHECKPOINT_ENTRY[model]: state_dict, **extra}, path)
