"""One orbax CheckpointManager for the train state and the grain iterator, saved together.

Layout under the workdir: `checkpoints/<step>/{state,data}` (latest, keep-N, async) and
`best/<step>/state` (best validation metric, keep 1). Restore order in the trainer: workdir latest
-> `init_from` (an mbjax checkpoint or an official .bin) -> scratch.
"""

from __future__ import annotations

import os
from typing import Any

import grain
import orbax.checkpoint as ocp
from absl import logging


class Checkpointer:

  def __init__(self, workdir: str, *, keep: int = 3, async_save: bool = True,
               best_metric: str | None = None, best_mode: str = 'min'):
    workdir = os.path.abspath(workdir)
    self.manager = ocp.CheckpointManager(
        os.path.join(workdir, 'checkpoints'),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep,
                                             enable_async_checkpointing=async_save,
                                             create=True),
        item_names=('state', 'data'),
    )
    self.best_metric = best_metric
    self.best = None
    if best_metric:
      self.best = ocp.CheckpointManager(
          os.path.join(workdir, 'best'),
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, create=True, enable_async_checkpointing=async_save,
              best_fn=lambda m: m[best_metric], best_mode=best_mode),
          item_names=('state',),
      )

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, data_iter, *, force: bool = False) -> bool:
    args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                              data=grain.checkpoint.CheckpointSave(data_iter))
    return self.manager.save(step, args=args, force=force)

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

  def wait(self) -> None:
    self.manager.wait_until_finished()
    if self.best is not None:
      self.best.wait_until_finished()

  def close(self) -> None:
    self.wait()
    self.manager.close()
    if self.best is not None:
      self.best.close()


def restore_state_only(directory: str, abstract_state: Any, step: int | None = None) -> Any:
  """The `state` item of a trainer checkpoint directory (`<workdir>/checkpoints` or `/best`)."""
  with ocp.CheckpointManager(os.path.abspath(directory), item_names=('state', 'data')) as mngr:
    step = mngr.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'no checkpoint in {directory}')
    return mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state))).state
