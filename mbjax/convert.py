"""Official MotionBERT checkpoints in and out.

  python -m mbjax.convert OFFICIAL.bin OUT_DIR --model pose --variant release
  python -m mbjax.convert --to-official OUT_DIR BACK.bin

The mapping is a renaming plus transposes: official `blocks_st.0.attn_s.qkv.weight` (out, in) is
`params/blocks_st_0/attn_s/qkv/kernel` (in, out); LayerNorm / BatchNorm `weight` is `scale`;
`pre_logits.fc` is `pre_logits`; `temp_embed` (1, L, 1, C) and `pos_embed` (1, J, C) drop their
unit axes; BatchNorm running stats live in the `batch_stats` collection.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Sequence

import numpy as np
from absl import app, flags

from mbjax import torch_format

MODELS = ('pose', 'action-class', 'action-embed')
# Where the official scripts keep the state dict inside the saved dict.
CHECKPOINT_ENTRY = {'pose': 'model_pos', 'action-class': 'model', 'action-embed': 'model'}
_NORM_MODULE = re.compile(r'^(norm\w*|bn)$')


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


def _strip_module(key: str) -> str:
  return key[len('module.'):] if key.startswith('module.') else key


def official_key_to_path(key: str) -> tuple[str, tuple[str, ...], str]:
  """Official key -> (collection, flax path, transform) with transform in
  {'copy', 'transpose', 'squeeze'}."""
  parts = _strip_module(key).split('.')
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
  """Which of MODELS an official state dict is: 'pose', 'action-class' or 'action-embed'."""
  keys = [_strip_module(k) for k in state_dict]
  if any(k.startswith('backbone.') for k in keys):
    return 'action-class' if any(k.startswith('head.fc2.') for k in keys) else 'action-embed'
  return 'pose'


def dstformer_dims(state_dict: dict) -> dict:
  """The size fields of the DSTformer in an official state dict (dim_feat, depth, ...)."""
  sd = {_strip_module(k).removeprefix('backbone.'): v for k, v in state_dict.items()}
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


def _check_model(model: str):
  if model not in MODELS:
    raise ValueError(f'model={model!r}, expected one of {MODELS}')


def official_to_variables(state_dict: dict[str, np.ndarray], model: str) -> dict[str, Any]:
  """Official state dict (with or without `module.`) -> Flax variables for `Module.apply`."""
  _check_model(model)
  variables: dict[str, Any] = {}
  for key, value in state_dict.items():
    stripped = _strip_module(key)
    if model.startswith('action') and not stripped.startswith(('backbone.', 'head.')):
      raise ValueError(f'{key!r} is not under backbone. or head.: is this a {model} checkpoint?')
    if model == 'pose' and stripped.startswith(('backbone.', 'head.fc1')):
      raise ValueError(f'{key!r} belongs to an action model, not model={model!r}')
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


def variables_to_official(variables: dict[str, Any], model: str,
                          module_prefix: bool = True) -> dict[str, np.ndarray]:
  """Flax variables -> state dict with the official key names, shapes and dtypes."""
  import jax
  from flax.core import meta
  from mbjax.models.dstformer import unscan_params
  _check_model(model)
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
  return out


def save_official(variables, model: str, path: str | os.PathLike, **extra) -> None:
  """Write an official-layout `.bin` that the official scripts (and `load_official`) read."""
  torch_format.save({CHECKPOINT_ENTRY[model]: variables_to_official(variables, model), **extra},
                    path)


# ------------------------------------------------------------------------------------------
# mbjax checkpoints of converted weights: an orbax checkpoint of the variables + config.json.


def _build_module(config: dict):
  """The module of a convert directory's config.json, through the one model factory."""
  from mbjax import models
  head = config.get('head') if config['model'] != 'pose' else None
  return models.from_config(dict(config['backbone'], head=head))


def config_from_state_dict(state_dict, model: str, variant: str, **head) -> dict:
  """The module config for `variant`, checked against the shapes in `state_dict`."""
  from mbjax.models.dstformer import VARIANTS
  if variant not in VARIANTS:
    raise ValueError(f'variant={variant!r}, expected one of {list(VARIANTS)}')
  _check_model(model)
  kind = official_kind(state_dict)
  if kind != model:
    raise ValueError(f'the checkpoint holds an official {kind} model, not {model}; '
                     f'pass --model {kind}')
  backbone = dict(VARIANTS[variant])
  found = dstformer_dims(state_dict)
  wrong = {k: (backbone[k], v) for k, v in found.items() if backbone[k] != v}
  if wrong:
    actual = variant_of(found)
    hint = f'it is a {actual} checkpoint: pass --variant {actual}' if actual else (
        f'its sizes match no variant ({", ".join(sorted(VARIANTS))})')
    raise ValueError(f'checkpoint does not match variant {variant!r} ({hint}); '
                     f'(expected, found): {wrong}')
  config = {'model': model, 'backbone': backbone}
  if model.startswith('action'):
    version = model.split('-')[1]
    fc1 = state_dict[[k for k in state_dict if k.endswith('head.fc1.weight')][0]]
    head = dict(dim_rep=backbone['dim_rep'], version=version, num_joints=17, **head)
    if version == 'class':
      fc2 = state_dict[[k for k in state_dict if k.endswith('head.fc2.weight')][0]]
      head['num_classes'] = int(fc2.shape[0])
    else:
      head['hidden_dim'] = int(fc1.shape[0])
    config['head'] = head
  return config


def save(out_dir: str | os.PathLike, variables, config: dict, *, overwrite: bool = False) -> None:
  """Writes `variables/` and `config.json` into a temporary sibling of `out_dir`, then swaps it in:
  a kill mid-way leaves any previous output whole. A non-empty `out_dir` is only replaced with
  `overwrite`."""
  import shutil
  import tempfile
  import orbax.checkpoint as ocp
  out_dir = os.path.abspath(os.fspath(out_dir))
  if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
    raise FileExistsError(f'{out_dir} exists and is not empty; pass --overwrite to replace it')
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise FileExistsError(f'{out_dir} exists and is not a directory')
  parent, base = os.path.split(out_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=f'.{base}.converting-')
  try:
    with ocp.StandardCheckpointer() as ckptr:
      ckptr.save(os.path.join(tmp, 'variables'), variables, force=True)
    with open(os.path.join(tmp, 'config.json'), 'w') as f:
      json.dump(config, f, indent=2)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  old = None
  if os.path.isdir(out_dir):  # kept under a hidden name until the new output is in place
    old = tempfile.mkdtemp(dir=parent, prefix=f'.{base}.replaced-')
    os.rename(out_dir, os.path.join(old, base))
  os.rename(tmp, out_dir)
  if old:
    shutil.rmtree(old, ignore_errors=True)


def restore(out_dir: str | os.PathLike):
  """(module, variables) from a directory written by `python -m mbjax.convert`."""
  import jax
  import jax.numpy as jnp
  import orbax.checkpoint as ocp
  from flax.core import meta
  out_dir = os.path.abspath(os.fspath(out_dir))
  config_path = os.path.join(out_dir, 'config.json')
  if not os.path.exists(config_path):
    raise FileNotFoundError(f'{config_path} not found: is {out_dir} an mbjax.convert output?')
  with open(config_path) as f:
    config = json.load(f)
  module = _build_module(config)
  T = min(module.maxlen if config['model'] == 'pose' else module.backbone.maxlen, 4)
  shape = (1, T, 17, 3) if config['model'] == 'pose' else (1, 1, T, 17, 3)
  abstract = meta.unbox(jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(shape))))
  with ocp.StandardCheckpointer() as ckptr:
    variables = ckptr.restore(os.path.join(out_dir, 'variables'), abstract)
  return module, variables


def _check_against_module(variables, config, src) -> None:
  """Every variable the module expects is present with its shape, and nothing else."""
  import jax
  import jax.numpy as jnp
  from flax.core import meta
  module = _build_module(config)
  shape = (1, 4, 17, 3) if config['model'] == 'pose' else (1, 1, 4, 17, 3)
  abstract = meta.unbox(jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(shape))))
  flat = lambda t: {'/'.join(str(k.key) for k in p): v.shape
                    for p, v in jax.tree_util.tree_flatten_with_path(t)[0]}
  want, got = flat(abstract), flat(variables)
  missing = sorted(set(want) - set(got))
  unexpected = sorted(set(got) - set(want))
  bad = sorted(k for k in set(want) & set(got) if tuple(want[k]) != tuple(got[k]))
  if missing or unexpected or bad:
    raise ValueError(f'{src}: does not fit the {config["model"]} model: missing {missing[:5]}, '
                     f'unexpected {unexpected[:5]}, wrong shapes '
                     f'{[(k, got[k], want[k]) for k in bad[:5]]}')


# ---------------------------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------------------------

# The trainer and the evaluators import this module as a library: its flags live in their own
# FlagValues, so that importing it defines no global flag that could clash with a program's own
# (`--variant`, `--model`). parse_flags lends them to absl's FLAGS for the command line only.
_FLAGS = flags.FlagValues()
_MODEL = flags.DEFINE_enum('model', 'pose', MODELS, 'Which official model the .bin holds.',
                           flag_values=_FLAGS)
_VARIANT = flags.DEFINE_enum('variant', 'release', ('release', 'lite'),
                             'DSTformer size of the checkpoint.', flag_values=_FLAGS)
_TO_OFFICIAL = flags.DEFINE_bool('to-official', False,
                                 'Convert an mbjax.convert directory SRC back to an official '
                                 '.bin DST.', flag_values=_FLAGS)
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace a non-empty output directory.',
                               flag_values=_FLAGS)
_PROGRAM = 'mbjax.convert'


def parse_flags(argv: Sequence[str]) -> list[str]:
  """`app.run`'s flags_parser: the flags above and absl's own from `argv` (program name first).

  Each call starts from the flags' defaults. A malformed flag (e.g. an unknown --model) raises
  flags.Error.

  Returns:
    The positional arguments, program name first.
  """
  for name in _FLAGS:
    if name not in flags.FLAGS:
      flags.FLAGS[name] = _FLAGS[name]
      flags.FLAGS.register_flag_by_module(sys.argv[0], _FLAGS[name])  # listed by --help
    _FLAGS[name].unparse()
  rest = flags.FLAGS(list(argv))  # a flags.Error: mbjax.cli reports it in one line (status 2)
  _FLAGS.mark_as_parsed()
  return rest


def main(argv: Sequence[str]) -> int:
  """absl main: `argv` is [program, SRC, DST] once `parse_flags` has read the flags.

  A wrong argument count exits with a one-line message; unreadable or mismatched checkpoints
  raise errors that `mbjax.cli` reports in one line.
  """
  if len(argv) != 3:
    sys.exit(f'{_PROGRAM}: expected 2 arguments, SRC and DST, got {len(argv) - 1}: '
             f'{list(argv[1:])} (see --help)')
  src, dst = argv[1:]
  if _TO_OFFICIAL.value:
    to_official(src, dst)
  else:
    _from_official(src, dst, _MODEL.value, _VARIANT.value, overwrite=_OVERWRITE.value)
  return 0


def model_kind(config: dict) -> str:
  """Which of MODELS a convert directory's or a trainer workdir's config.json describes."""
  if isinstance(config.get('model'), str):  # a convert directory
    return config['model']
  head = (config.get('model') or {}).get('head')
  return f'action-{head.get("version", "class")}' if head else 'pose'


def to_official(src: str, dst: str) -> None:
  """An mbjax.convert directory or a trainer workdir (latest checkpoint) -> official .bin."""
  from mbjax import checkpoint  # imports this module
  config_path = os.path.join(src, 'config.json')
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f'{config_path} not found: SRC must be an mbjax.convert output or a '
                            'trainer workdir')
  with open(config_path) as f:
    model = model_kind(json.load(f))
  variables = checkpoint.load_variables(src)
  save_official(variables, model, dst)
  print(f'wrote {dst} ({model})')


def _from_official(src: str, dst: str, model: str, variant: str, *, overwrite: bool) -> None:
  state_dict = load_official(src)
  try:
    config = config_from_state_dict(state_dict, model, variant)
  except ValueError as e:
    raise ValueError(f'{src}: {e}') from None
  variables = official_to_variables(state_dict, model)
  _check_against_module(variables, config, src)
  save(dst, variables, config, overwrite=overwrite)
  n = sum(v.size for k, v in state_dict.items() if not k.endswith('num_batches_tracked'))
  print(f'wrote {dst}: {model} {variant}, {len(state_dict)} tensors, {n:,} values')


def run() -> None:
  """The `mbjax-convert` console script and `python -m mbjax.convert`."""
  from mbjax import cli
  cli.run(main, program=_PROGRAM, flags_parser=parse_flags)


if __name__ == '__main__':
  run()
