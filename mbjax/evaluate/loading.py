"""A config's model with its weights from a checkpoint: the one loader evaluators and CLIs share.

Library code (no absl flags), so that any command line (`mbjax.evaluate`, `mbjax.infer`) can use it.
"""

from __future__ import annotations


def load_model(config, checkpoint: str):
  """(task, model, variables) of `config` with every variable from `checkpoint`.

  Args:
    config: a task config (`config.task`, `config.model`, `config.batch_size`).
    checkpoint: an official `.bin`, an `mbjax.convert` directory or a trainer workdir.
  """
  import jax
  import numpy as np
  from flax.core import meta
  from mbjax import train
  from mbjax.tasks import base
  task = train.get_task(config)
  base.configure(task, config)
  model = task.make_model(config)
  abstract = meta.unbox(train.abstract_variables(model, task.example_batch(config)))
  target = jax.tree_util.tree_map(lambda a: np.zeros(a.shape, a.dtype), abstract)
  variables, report = task.load_pretrained(target, checkpoint)
  if report.get('fresh'):  # a task may start a new head fresh when training, never when evaluating
    fresh = report['fresh']
    raise ValueError(f'{checkpoint}: holds no {", ".join(fresh[:4])}'
                     f'{f" (and {len(fresh) - 4} more)" if len(fresh) > 4 else ""}: evaluating '
                     f'needs a trained {config.task} model, not a pretrained backbone alone')
  return task, model, jax.device_put(variables)
