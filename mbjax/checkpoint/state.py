"""The trainer's checkpoints: one orbax manager for the train state and the grain iterator.

`Checkpointer` saves them together under `checkpoints/<step>/{state,data}` (latest, keep-N,
async), `best/<step>/state` (best validation metric, keep 1) and `snapshots/<step>/state` (the
end of every N-th epoch with `checkpoint.snapshot_every_epochs`, all kept). `read_state` reads a
whole train state back onto this process's first device, whatever mesh saved it. Both go through
`newest_that_restores`: a damaged newest step is skipped, with a warning naming it.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp
from absl import logging



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
    import grain  # pylint: disable=g-import-not-at-top  # ~1 s: only where the trainer saves
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
    import grain  # pylint: disable=g-import-not-at-top
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
    directory = os.fspath(self.manager.directory)
    found = newest_that_restores(
        directory, sorted(self.manager.all_steps(), reverse=True),
        lambda step, _: self.restore(step, abstract_state, data_iter), self._set_aside,
        check=lambda stored, where: check_same_shapes(stored, abstract_state, where))
    return None if found is None else (found[0], *found[1])

  def _set_aside(self, step: int, error: Exception) -> None:
    directory = os.fspath(self.manager.directory)
    broken = os.path.join(directory, f'broken-{step}')
    logging.warning('checkpoint step %d in %s does not restore (%s); skipping it, kept aside '
                    'as %s', step, directory, one_line(error), broken)
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


def newest_that_restores(directory: str, steps, restore: Callable[[int, Any], Any],
                         on_damage: Callable[[int, Exception], None], *,
                         check: Callable[[Any, str], None] | None = None):
  """(step, restore(step, metadata)) of the first of `steps` (newest first) whose `state` array
  metadata reads and whose arrays restore; None if none does.

  The one restore path: the trainer's resume (which sets a damaged step aside) and every
  read-only reader of a workdir (which only warns). `on_damage(step, error)` is called for each
  step skipped; `check(metadata, step_dir)` may raise for a step that is whole but unusable
  (another model), which is not damage and stops the search.
  """
  for step in steps:
    step_dir = os.path.join(directory, str(step))
    try:
      stored = _state_metadata(step_dir)
    except Exception as e:  # noqa: BLE001 - any failure to read it means it cannot be restored
      on_damage(step, e)
      continue
    if check is not None:
      check(stored, step_dir)
    # Past the check the arrays are the ones wanted: a failure to read them is damage.
    try:
      return step, restore(step, stored)
    except Exception as e:  # noqa: BLE001 - truncated or missing array files
      on_damage(step, e)
  return None


def one_line(error: Exception, limit: int = 300) -> str:
  """'Type: message' of the first cause of `error` on one line, cut to `limit` characters
  (tensorstore's errors span dozens of lines; the first cause says which file and why)."""
  while error.__cause__ is not None:
    error = error.__cause__
  text = ' '.join(f'{type(error).__name__}: {error}'.split())
  return text if len(text) <= limit else text[:limit - 3] + '...'


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
    return {k: tuple(getattr(v, 'shape', ())) for k, v in flat_paths(tree).items()}

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


def checkpoint_steps(directory: str) -> list[int]:
  """The steps saved under a checkpoint directory, newest first (read only: unlike an orbax
  manager, listing creates and cleans up nothing)."""
  if not os.path.isdir(directory):
    return []
  return sorted((int(name) for name in os.listdir(directory)
                 if name.isdigit() and os.path.isdir(os.path.join(directory, name))), reverse=True)


def read_state(path: str, step: int | None = None) -> dict:
  """The whole train state (step, params, model_state, opt_state, rng) of checkpoint `step`
  of a trainer workdir (or of its `checkpoints`, `best` or `snapshots` folder), on this process's
  first device whatever mesh it was saved from.

  Default: the newest step that restores; each newer one that does not is skipped with a warning
  naming it, and left where it is (only the trainer sets damaged steps aside). A ValueError in one
  line when no step restores.
  """
  directory = os.path.join(path, 'checkpoints') if os.path.isdir(
      os.path.join(path, 'checkpoints')) else path
  directory = os.path.abspath(directory)
  steps = checkpoint_steps(directory) if step is None else [step]
  if not steps:
    raise FileNotFoundError(f'{path}: no trainer checkpoint found (looked in {directory})')
  skipped = []

  def damaged(step, error):
    skipped.append((step, one_line(error, 200)))
    logging.warning('checkpoint step %d in %s does not restore (%s); skipping it (left in place)',
                    step, directory, one_line(error))

  found = newest_that_restores(directory, steps, lambda step, stored: _restore_on_one_device(
      os.path.join(directory, str(step)), stored), damaged)
  if found is None:
    raise ValueError(f'{directory}: no checkpoint restores: '
                     + '; '.join(f'step {step} ({why})' for step, why in skipped))
  if skipped:
    logging.warning('%s: using checkpoint step %d, the newest that restores (skipped: %s)',
                    directory, found[0], ', '.join(f'step {step}' for step, _ in skipped))
  return found[1]


def _restore_on_one_device(step_dir: str, stored: Any) -> dict:
  """The `state` item of a checkpoint step with the shapes of `stored` (its array metadata), on
  this process's first device."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree_util.tree_map(
      lambda md: jax.ShapeDtypeStruct(md.shape, md.dtype, sharding=device), stored)
  with ocp.StandardCheckpointer() as ckptr:
    return ckptr.restore(os.path.join(step_dir, 'state'), target)


def flat_paths(tree) -> dict:
  """{'a/b/c': leaf} of a nested tree (dict keys by name; other nodes as jax prints them)."""
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): v
          for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
