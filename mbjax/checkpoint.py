"""Checkpoints: the trainer's orbax manager, and the one loader of trained or released weights.

`Checkpointer`: one orbax CheckpointManager for the train state and the grain iterator, saved
together. `load_variables` / `load_pretrained`: weights from an official `.bin`, an
`mbjax.convert` directory or a trainer workdir, fitted onto a model (a pretrained DSTformer onto
the `backbone/` of a head model), with a report of what was taken and what was kept.

Layout under the workdir: `checkpoints/<step>/{state,data}` (latest, keep-N, async),
`best/<step>/state` (best validation metric, keep 1) and `snapshots/<step>/state` (the end of
every N-th epoch with `checkpoint.snapshot_every_epochs`, all kept). Restore order in the
trainer: workdir latest -> `init_from` (an mbjax checkpoint or an official .bin) -> scratch.
"""

from __future__ import annotations

import os
import re
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax.core import meta

from mbjax import convert
from mbjax.models.dstformer import scan_params, unscan_params


class Checkpointer:

  def __init__(self, workdir: str, *, keep: int = 3, async_save: bool = True,
               best_metric: str | None = None, best_mode: str = 'min', snapshots: bool = False):
    workdir = os.path.abspath(workdir)
    self.manager = ocp.CheckpointManager(
        os.path.join(workdir, 'checkpoints'),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep,
                                             enable_async_checkpointing=async_save,
                                             create=True,
                                             # the half-written step of a killed save
                                             cleanup_tmp_directories=True),
        item_names=('state', 'data'),
    )
    self.best_metric = best_metric
    self.best = None
    if best_metric:
      self.best = ocp.CheckpointManager(
          os.path.join(workdir, 'best'),
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, create=True, enable_async_checkpointing=async_save,
              cleanup_tmp_directories=True,
              best_fn=lambda m: m[best_metric], best_mode=best_mode),
          item_names=('state',),
      )
    # Every-N-epochs states, kept forever (official checkpoint_frequency). Written synchronously:
    # a kill can never leave the regular checkpoint of a step without its snapshot.
    self.snapshots = ocp.CheckpointManager(
        os.path.join(workdir, 'snapshots'),
        options=ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False,
                                             cleanup_tmp_directories=True),
        item_names=('state',)) if snapshots else None

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, data_iter, *, force: bool = False) -> bool:
    args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                              data=grain.checkpoint.CheckpointSave(data_iter))
    return self.manager.save(step, args=args, force=force)

  def save_snapshot(self, step: int, state: Any) -> None:
    """Keeps `state` under `snapshots/<step>` (a step already there is left as it is)."""
    if self.snapshots is not None and step not in self.snapshots.all_steps():
      self.snapshots.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
                          force=True)

  def save_best(self, step: int, state: Any, metrics: dict) -> None:
    if self.best is not None and self.best_metric in metrics:
      self.best.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
                     metrics={k: float(v) for k, v in metrics.items()}, force=True)

  def restore(self, step: int, abstract_state: Any, data_iter) -> tuple[Any, bool]:
    """(state, whether the iterator state was restored too).

    The iterator state is per process; restoring on another process count falls back to the
    trainer positioning the pipeline by step (batches depend only on the step).
    """
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state),
          data=grain.checkpoint.CheckpointRestore(data_iter)))
      return restored.state, True
    except (ValueError, FileNotFoundError) as e:
      logging.warning('restoring the data iterator of step %d failed (%s); the pipeline is '
                      'positioned by step instead', step, e)
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state)))
      return restored.state, False

  def restore_latest(self, abstract_state: Any, data_iter) -> tuple[int, Any, bool] | None:
    """(step, state, iterator restored) of the newest checkpoint that restores; None if none.

    A damaged checkpoint (unreadable metadata, truncated or missing files) is skipped with a
    warning that names it and why, and kept aside as `broken-<step>` (never deleted). A checkpoint
    whose shapes differ from `abstract_state` is not damaged: that is another model, and an error.
    """
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        stored = _state_metadata(os.path.join(os.fspath(self.manager.directory), str(step)))
      except Exception as e:  # noqa: BLE001 - any failure to read it means it cannot be resumed
        self._set_aside(step, e)
        continue
      check_same_shapes(stored, abstract_state, f'{self.manager.directory}/{step}')
      # Past this check the arrays are the ones this run needs: a failure to read them is damage.
      try:
        state, data_restored = self.restore(step, abstract_state, data_iter)
      except Exception as e:  # noqa: BLE001 - truncated or missing array files
        self._set_aside(step, e)
        continue
      return step, state, data_restored
    return None

  def _set_aside(self, step: int, error: Exception) -> None:
    directory = os.fspath(self.manager.directory)
    broken = os.path.join(directory, f'broken-{step}')
    logging.warning('checkpoint step %d in %s does not restore (%s: %s); skipping it, kept aside '
                    'as %s', step, directory, type(error).__name__, str(error)[:300], broken)
    if jax.process_index() == 0:
      os.rename(os.path.join(directory, str(step)), broken)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices(f'mbjax_set_aside_{step}')
    self.manager.reload()

  def wait(self) -> None:
    self.manager.wait_until_finished()
    if self.best is not None:
      self.best.wait_until_finished()

  def close(self) -> None:
    self.wait()
    self.manager.close()
    for manager in (self.best, self.snapshots):
      if manager is not None:
        manager.close()


def _state_metadata(step_dir: str):
  """The array metadata tree (shapes, dtypes) of a checkpoint step's `state` item."""
  with ocp.StandardCheckpointer() as ckptr:
    tree = ckptr.metadata(os.path.join(step_dir, 'state')).item_metadata
  if tree is None:
    raise FileNotFoundError(f'{step_dir}/state: no array metadata (_METADATA missing?)')
  return tree


def check_same_shapes(stored: Any, wanted: Any, where: str) -> None:
  """A ValueError listing each (path, stored shape, requested shape) where two train states
  differ: parameters and model state by name, the optimizer state by its array shapes."""
  def shapes(tree):
    return {k: tuple(getattr(v, 'shape', ())) for k, v in _flat(tree).items()}

  lines = []
  for part in ('params', 'model_state'):
    have, want = shapes(stored.get(part) or {}), shapes(wanted.get(part) or {})
    lines += [f'  {part}/{k}: stored {have.get(k, "absent")}, this config wants '
              f'{want.get(k, "absent")}' for k in sorted(set(have) | set(want))
              if have.get(k) != want.get(k)]
  have = sorted(shapes(stored.get('opt_state')).values())
  want = sorted(shapes(wanted.get('opt_state')).values())
  if not lines and have != want:
    lines.append(f'  opt_state: {len(have)} stored arrays, this config\'s optimizer has '
                 f'{len(want)} (other freeze_patterns / partial_train / optimizer settings?)')
  if lines:
    more = f'\n  ... and {len(lines) - 15} more' if len(lines) > 15 else ''
    raise ValueError(f'{where}: the checkpoint was saved by another model or optimizer '
                     f'({len(lines)} arrays differ); resume with the config it was trained with, '
                     'or start a new --workdir:\n' + '\n'.join(lines[:15]) + more)


def restore_state_only(directory: str, abstract_state: Any, step: int | None = None) -> Any:
  """The `state` item of a trainer checkpoint directory (`<workdir>/checkpoints` or `/best`)."""
  with ocp.CheckpointManager(os.path.abspath(directory), item_names=('state', 'data')) as mngr:
    step = mngr.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'no checkpoint in {directory}')
    return mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state))).state


# ------------------------------------------------------------------------------------------
# Weights: the one loader for every place that reads trained or released weights.


def read_state(path: str, step: int | None = None) -> dict:
  """The whole train state (step, params, model_state, opt_state, rng) of checkpoint `step`
  (default: the latest) of a trainer workdir, on this process's first device whatever mesh it
  was saved from."""
  directory = os.path.join(path, 'checkpoints') if os.path.isdir(
      os.path.join(path, 'checkpoints')) else path
  directory = os.path.abspath(directory)
  if step is None:
    with ocp.CheckpointManager(directory, item_names=('state', 'data')) as m:
      step = m.latest_step()
  if step is None:
    raise FileNotFoundError(f'{path}: no trainer checkpoint found (looked in {directory})')
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree_util.tree_map(
      lambda md: jax.ShapeDtypeStruct(md.shape, md.dtype, sharding=device),
      _state_metadata(os.path.join(directory, str(step))))
  with ocp.StandardCheckpointer() as ckptr:
    return ckptr.restore(os.path.join(directory, str(step), 'state'), target)


def _restore_workdir(path: str) -> dict:
  """Variables (params + model state) of the latest checkpoint of a trainer workdir."""
  state = read_state(path)
  return {'params': state['params'], **(state.get('model_state') or {})}


def load_variables(path: str) -> dict:
  """Flax variables (`params` and any `batch_stats`) from an official `.bin`, an
  `mbjax.convert` directory, or a trainer workdir (its latest checkpoint)."""
  path = os.fspath(path)
  if os.path.isfile(path):
    state_dict = convert.load_official(path)
    return convert.official_to_variables(state_dict, convert.official_kind(state_dict))
  if not os.path.isdir(path):
    raise FileNotFoundError(f'{path}: no such file or directory (expected an official .bin, an '
                            'mbjax.convert directory or a trainer workdir)')
  if os.path.exists(os.path.join(path, 'config.json')) and os.path.isdir(
      os.path.join(path, 'variables')):
    return dict(meta.unbox(convert.restore(path)[1]))
  return _restore_workdir(path)


def _is_dstformer(params) -> bool:
  return isinstance(params, dict) and 'pos_embed' in params


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


def _flat(tree) -> dict:
  """{'a/b/c': leaf} of a nested tree (dict keys by name; other nodes as jax prints them)."""
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): v
          for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


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
  variant = convert.variant_of(dims)
  return f'{variant} ({text})' if variant else f'{text}, no named variant'


def fit_pretrained(target: dict, source: dict, *, fresh=(), what: str = 'pretrained weights'
                   ) -> tuple[dict, dict]:
  """(target with every variable of `source` that has its path and shape, report).

  `fresh`: regular expressions (searched in 'collection/path') of the variables allowed to keep
  their initial value (a new head). Any other variable of `target` that `source` lacks or has in
  another shape is an error listing each (path, stored shape, wanted shape).
  """
  target = meta.unbox(target)
  flat_src = _flat(_align_source(target, source))
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
    wanted = _flat(target)
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


def load_pretrained(variables: dict, path: str, *, fresh=()) -> tuple[dict, dict]:
  """`fit_pretrained(variables, load_variables(path))`: the task protocol's usual loader."""
  return fit_pretrained(variables, load_variables(path), fresh=fresh,
                        what=f'pretrained weights {path}')
