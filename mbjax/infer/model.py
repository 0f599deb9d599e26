"""The lifting model of `--config` and `--checkpoint`, and the test-time options that go with it.

Which model: a checkpoint that records its own model wins, because weights only fit the model they
were trained as.
- A trainer workdir (its `config.json`; a demo workdir's `train/` is found too): the stored
  `model` block (all but the execution knobs `RUNTIME_FIELDS`, which come from --config) and the
  stored `rootrel`, `no_conf`, `gt_2d`, `flip_test` (a missing `rootrel` is the trainer's default,
  True).
- An `mbjax.convert` directory (`config.json` + `variables/`): its backbone sizes.
- An official `.bin`: --config's model; the default --config is the official in-the-wild model,
  `configs/pose3d_h36m.py:global_lite` (Lite, rootrel=False, flip test).
Everything else (flip_test when the checkpoint has none, batch_size) is --config's.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pathlib
import sys
from typing import Any, Callable

import ml_collections
import numpy as np

DEFAULT_CONFIG = 'configs/pose3d_h36m.py:global_lite'
# Model fields that say how to run the model, not what it is: taken from --config.
RUNTIME_FIELDS = ('attention_impl', 'remat_policy', 'dtype', 'scan_layers')
_TEST_FIELDS = ('rootrel', 'no_conf', 'gt_2d', 'flip_test')
_CHECKOUT = pathlib.Path(__file__).resolve().parents[2]


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """`get_config(arg)` of a config file named 'path[:arg]' (relative paths: cwd, then the checkout),
  loaded by path as `--config` loads it."""
  path, _, arg = spec.partition(':')
  file = pathlib.Path(path)
  if not file.is_file() and (_CHECKOUT / path).is_file():
    file = _CHECKOUT / path
  if not file.is_file():
    raise FileNotFoundError(f'{path}: config file not found; pass --config=PATH[:VARIANT]')
  root = str(file.resolve().parents[1])  # configs/x.py imports `configs.common`
  added = root not in sys.path
  if added:
    sys.path.insert(0, root)
  try:
    spec_ = importlib.util.spec_from_file_location(f'_mbjax_infer_config_{file.stem}', file)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
  finally:
    if added:
      sys.path.remove(root)
  return module.get_config(arg) if arg else module.get_config()


def checkpoint_dir(checkpoint: str) -> str:
  """The trainer workdir inside a demo workdir (`DIR/train`), else `checkpoint` itself."""
  inner = os.path.join(checkpoint, 'train')
  if (os.path.isdir(checkpoint) and not os.path.exists(os.path.join(checkpoint, 'config.json'))
      and os.path.exists(os.path.join(inner, 'config.json'))):
    return inner
  return checkpoint


def stored_config(checkpoint: str) -> tuple[str, dict | None]:
  """(kind, config.json contents): 'workdir', 'convert' or 'official' (None)."""
  path = os.path.join(checkpoint, 'config.json')
  if not os.path.isdir(checkpoint) or not os.path.exists(path):
    return 'official', None
  try:
    with open(path) as f:
      stored = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f'{path}: cannot read the checkpoint config: {e}') from e
  if os.path.isdir(os.path.join(checkpoint, 'variables')) and 'backbone' in stored:
    return 'convert', stored
  if not isinstance(stored.get('model'), dict):
    raise ValueError(f'{path}: no `model` block: not a trainer workdir config')
  return 'workdir', stored


def _check_pose(checkpoint: str, kind: str, stored: dict | None) -> None:
  """A ValueError when a workdir or convert directory records a model with a head (an official
  .bin's kind is checked against --config's model when its weights load)."""
  if kind == 'official':
    return
  head = stored['model'].get('head') if kind == 'workdir' else None
  model = stored.get('model') if kind == 'convert' else 'pose' if not head else (
      'mesh' if head.get('version') == 'mesh' else f'action-{head.get("version", "class")}')
  if model != 'pose':
    article = 'an' if str(model)[:1] in 'aeiou' else 'a'
    raise ValueError(f'{checkpoint}: {article} {model} checkpoint; inference needs a pose '
                     '(DSTformer + 3D head) checkpoint (mbjax.infer takes action and mesh ones as '
                     '--action and --mesh)')


def model_config(config: ml_collections.ConfigDict, checkpoint: str
                 ) -> tuple[ml_collections.ConfigDict, str]:
  """(`config` with the checkpoint's model and test options, where the model came from)."""
  kind, stored = stored_config(checkpoint)
  _check_pose(checkpoint, kind, stored)
  c = ml_collections.ConfigDict(config.to_dict())
  if kind == 'workdir':
    model = {k: v for k, v in stored['model'].items() if k not in RUNTIME_FIELDS}
    c.model = dict(c.model.to_dict(), **model)
    c.rootrel = stored.get('rootrel', True)
    for field in _TEST_FIELDS[1:]:
      if field in stored:
        c[field] = stored[field]
  elif kind == 'convert':
    c.model.update(stored['backbone'])
  return c, f'{kind} {checkpoint}' + ('' if kind != 'official' else ' (model of --config)')


@dataclasses.dataclass
class Lifter:
  """A loaded model: `predict` (B, t, 17, C) -> (B, t, 17, 3) and its test-time options."""

  predict: Callable[[np.ndarray], np.ndarray]
  maxlen: int
  rootrel: bool
  flip: bool
  gt_2d: bool
  no_conf: bool
  config: ml_collections.ConfigDict
  source: str
  model: Any = None  # the DSTformer and its variables, for a backbone shared with other heads
  variables: Any = None  # (mbjax/infer/shared.py); None for a stand-in `predict`
  masks_padding: bool = False  # `predict` is `masked_apply`'s: it takes NaN-padded windows
  dtype: dict | None = None  # {'compute', 'why'}: the compute dtype and who chose it


def masked_apply(model):
  """Jitted `(variables, x) -> model.apply(variables, x)` for clips whose trailing padding
  frames are NaN (`lift.lift` pads short windows to a few lengths, so that tracks of many
  lengths compile a few shapes): those frames are zeroed and masked out of temporal attention,
  which leaves the real frames' output as without the padding."""
  import jax
  import jax.numpy as jnp

  @jax.jit
  def apply(variables, x):
    padding = jnp.isnan(x)
    real = ~padding.any(axis=(2, 3))
    return model.apply(variables, jnp.where(padding, 0.0, x), frame_mask=real)

  return apply


def load(config: ml_collections.ConfigDict, checkpoint: str) -> Lifter:
  """The model of `config` / `checkpoint` (module docstring) with its weights, jitted."""
  from mbjax.tasks.loading import load_model
  checkpoint = checkpoint_dir(checkpoint)
  config, source = model_config(config, checkpoint)
  config.task = 'pose3d'  # the DSTformer with its 3D head, whatever task trained it
  _, model, variables = load_model(config, checkpoint)
  apply = masked_apply(model)
  return Lifter(predict=lambda x: apply(variables, x), maxlen=int(config.model.maxlen),
                rootrel=bool(config.get('rootrel', True)),
                flip=bool(config.get('flip_test', True)), gt_2d=bool(config.get('gt_2d', False)),
                no_conf=bool(config.get('no_conf', False)), config=config, source=source,
                model=model, variables=variables, masks_padding=True)
