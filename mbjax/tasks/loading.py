"""A config's trained model with its weights from a checkpoint: the one loader that the
evaluate, infer and export command lines share."""

from __future__ import annotations

import jax
import numpy as np
from flax.core import meta

from mbjax import models
from mbjax.tasks import base


def load_model(config, checkpoint: str):
  """(task, model, variables) of `config` with every variable from `checkpoint`.

  Args:
    config: a task config (`config.task`, `config.model`, `config.batch_size`).
    checkpoint: an official `.bin`, an `mbjax.convert` directory or a trainer workdir.
  """
  task = base.get_task(config)
  base.configure(task, config)
  model = task.make_model(config)
  abstract = meta.unbox(models.abstract_variables(model, task.example_batch(config)))
  target = jax.tree_util.tree_map(lambda a: np.zeros(a.shape, a.dtype), abstract)
  variables, report = task.load_pretrained(target, checkpoint)
  if report.get('fresh'):  # a task may start a new head fresh when training, never when evaluating
    fresh = report['fresh']
    raise ValueError(f'{checkpoint}: holds no {", ".join(fresh[:4])}'
                     f'{f" (and {len(fresh) - 4} more)" if len(fresh) > 4 else ""}: evaluating '
                     f'needs a trained {config.task} model, not a pretrained backbone alone')
  return task, model, jax.device_put(variables)
