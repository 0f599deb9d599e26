"""A config's trained model with its weights from a checkpoint: the one loader that the
evaluate, infer and export command lines share."""

from __future__ import annotations

import jax
import numpy as np
from flax.core import meta

from mbjax import checkpoint as checkpoint_lib
from mbjax import models
from mbjax.tasks import base


def load_model(config, checkpoint: str):
  """(task, model, variables) of `config` with every variable from `checkpoint`.

  The task's own `load_pretrained` starts a training run, where a new head may start fresh; a
  trained model takes every variable from the file, and a file of another kind of model (an
  action checkpoint for a pose config, a pretrained backbone for a head model) is refused in one
  line naming both (`checkpoint.loader.check_kind`). A workdir whose newest checkpoint is damaged
  gives its newest step that restores, with a warning naming the ones skipped.

  Args:
    config: a task config (`config.task`, `config.model`, `config.batch_size`).
    checkpoint: an official `.bin`, an `mbjax.convert` directory or a trainer workdir.
  """
  task = base.get_task(config)
  base.configure(task, config)
  model = task.make_model(config)
  abstract = meta.unbox(models.abstract_variables(model, task.example_batch(config)))
  target = jax.tree_util.tree_map(lambda a: np.zeros(a.shape, a.dtype), abstract)
  variables, _ = checkpoint_lib.load_pretrained(target, checkpoint, what=str(checkpoint))
  return task, model, jax.device_put(variables)
