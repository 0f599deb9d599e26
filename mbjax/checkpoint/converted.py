"""mbjax directories of converted weights: an orbax checkpoint of the variables + config.json.

`python -m mbjax.convert` writes them (`save`, atomically); `restore` gives back (module,
variables) through the one model factory; `config_from_state_dict` checks an official state
dict against a DSTformer variant and describes its head.
"""

from __future__ import annotations

import json
import os
import re

from mbjax.checkpoint.official import (check_model, dstformer_dims, official_kind, variant_of)
from mbjax.files import atomic


def _build_module(config: dict, smpl=None):
  """The module of a convert directory's config.json, through the one model factory (`smpl`:
  the mesh model's SMPL instead of the one in its `head.smpl_dir`)."""
  from mbjax import models
  head = config.get('head') if config['model'] != 'pose' else None
  return models.from_config(dict(config['backbone'], head=head), smpl=smpl)


def _example_input(model: str, T: int) -> tuple[int, ...]:
  """The shape a `model` kind is initialised with: (1, T, 17, 3), (1, M=1, T, 17, 3) for action."""
  return (1, 1, T, 17, 3) if model.startswith('action') else (1, T, 17, 3)


def config_from_state_dict(state_dict, model: str, variant: str, **head) -> dict:
  """The module config for `variant`, checked against the shapes in `state_dict`."""
  from mbjax.models.dstformer import VARIANTS
  if variant not in VARIANTS:
    raise ValueError(f'variant={variant!r}, expected one of {list(VARIANTS)}')
  check_model(model)
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
  if model == 'mesh':
    fc1 = state_dict[[k for k in state_dict if k.endswith('head.fc1.weight')][0]]
    config['head'] = dict(version='mesh', hidden_dim=int(fc1.shape[0]), num_joints=17, **head)
  elif model.startswith('action'):
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


def save(out_dir: str | os.PathLike, variables, config: dict, *,
         overwrite: bool = False) -> list[str]:
  """Writes `variables/` and `config.json` into a temporary sibling of `out_dir`, then swaps it in:
  a kill mid-way leaves any previous output whole. A non-empty `out_dir` is only replaced with
  `overwrite`. The leftovers of earlier converts to `out_dir` that were killed are removed first.

  Returns:
    What was cleaned up: one line per leftover, for the caller to show.
  """
  import orbax.checkpoint as ocp
  out_dir = os.path.abspath(os.fspath(out_dir))
  check_target(out_dir, overwrite)
  os.makedirs(os.path.dirname(out_dir), exist_ok=True)
  notes = remove_leftovers(out_dir)
  tmp = atomic.temporary_name(out_dir, CONVERTING)
  try:
    os.mkdir(tmp)
    try:
      with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(os.path.join(tmp, 'variables'), variables, force=True)
    except Exception as e:  # pylint: disable=broad-except  # tensorstore's errors are ValueErrors
      system = _system_error(e, out_dir)
      if system is None:
        raise
      raise system from e
    with open(os.path.join(tmp, 'config.json'), 'w') as f:
      json.dump(config, f, indent=2)
    _swap_in(tmp, out_dir)
  finally:
    atomic.remove(tmp)  # the new output where it failed, the old one where it was swapped out
  return notes


def _system_error(e: Exception, out_dir: str) -> OSError | None:
  """The OSError that a tensorstore error carries (a full disk: "[os_error_code='28']"), naming
  `out_dir`; None for any other error."""
  code = re.search(r"os_error_code='(\d+)'", str(e))
  return OSError(int(code[1]), os.strerror(int(code[1])), out_dir) if code else None


def check_target(out_dir: str | os.PathLike, overwrite: bool) -> None:
  """FileExistsError unless `save` may write `out_dir`: to check before any work is done."""
  out_dir = os.fspath(out_dir)
  if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
    raise FileExistsError(f'{out_dir} exists and is not empty; pass --overwrite to replace it')
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise FileExistsError(f'{out_dir} exists and is not a directory')


# Hidden siblings of a convert's output: its new output while written, the old one being replaced.
CONVERTING, REPLACED = 'converting', 'replaced'


def _swap_in(tmp: str, out_dir: str) -> None:
  """`tmp` becomes `out_dir`; an old `out_dir` ends up at `tmp`. In one step where the system can
  (atomic.exchange), else in two renames with the old output kept aside in between."""
  if not os.path.isdir(out_dir):
    os.rename(tmp, out_dir)
  elif not atomic.exchange(tmp, out_dir):
    aside = atomic.temporary_name(out_dir, REPLACED)
    os.rename(out_dir, aside)
    os.rename(tmp, out_dir)
    os.rename(aside, tmp)


def remove_leftovers(out_dir: str) -> list[str]:
  """Removes the hidden siblings (CONVERTING, REPLACED) of `out_dir` that converts killed on this
  host left; an old output set aside (REPLACED) goes back to `out_dir` if that is missing.

  Returns:
    One line per leftover, saying what was done.
  """
  notes = []
  for aside in atomic.stale_temporaries(out_dir, REPLACED):
    if not os.path.exists(out_dir):
      os.rename(aside, out_dir)
      notes.append(f'restored {out_dir} from {os.path.basename(aside)}, set aside by an '
                   'interrupted convert')
    else:
      atomic.remove(aside)
      notes.append(f'removed {aside}, left by an interrupted convert')
  for leftover in atomic.stale_temporaries(out_dir, CONVERTING):
    atomic.remove(leftover)
    notes.append(f'removed {leftover}, left by an interrupted convert')
  return notes


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
  shape = _example_input(config['model'], T)
  abstract = meta.unbox(jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(shape))))
  with ocp.StandardCheckpointer() as ckptr:
    variables = ckptr.restore(os.path.join(out_dir, 'variables'), abstract)
  return module, variables


def check_against_module(variables, config, src, smpl=None) -> None:
  """Every variable the module expects is present with its shape, and nothing else."""
  import jax
  import jax.numpy as jnp
  from flax.core import meta
  module = _build_module(config, smpl)
  shape = _example_input(config['model'], 4)
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


def model_kind(config: dict) -> str:
  """Which of MODELS a convert directory's or a trainer workdir's config.json describes."""
  if isinstance(config.get('model'), str):  # a convert directory
    return config['model']
  head = (config.get('model') or {}).get('head')
  if head and head.get('version') == 'mesh':
    return 'mesh'
  return f'action-{head.get("version", "class")}' if head else 'pose'
