"""The task protocol: everything the trainer, the evaluators and the CLIs need from a task.

A task is one module (`mbjax/tasks/<name>.py`, or any importable module named by a dotted
`config.task`) whose top-level functions implement `Task`. The trainer (`mbjax.train`) knows no
task: it builds the model, the data, the state and the step from these functions alone.

Conventions every task keeps:
- A batch is a dict of arrays whose leading axis is the global batch. `example_batch` declares
  every key; the trainer shards each over the mesh's batch axes and feeds the model `batch['input']`
  (also the shape it initialises the model with, at batch size 1).
- Variables are Flax variable dicts: `{'params': ..., <other collections>}`. Collections other than
  `params` (e.g. BatchNorm's `batch_stats`) are the model state: updated by `loss_fn` in train
  mode, kept in the train state as `model_state`, checkpointed, restored and given to evaluators.
- A curriculum step has a `kind` (e.g. '3d', '2d', 'action'); `loss_fn` is traced once per kind.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable, Mapping, Protocol

import flax.linen as nn
import jax

Metrics = dict[str, Any]
Variables = dict[str, Any]
# name -> (every_steps (0: only at step 0 and at the end), fn(variables) -> metrics)
Evaluators = dict[str, tuple[int, Callable[[Variables], Metrics]]]


class Task(Protocol):
  """What a task module provides (module-level functions with these signatures)."""

  def make_model(self, config) -> nn.Module:
    """The model of `config.model` (built with `mbjax.models.from_config`, plus any task head)."""

  def example_batch(self, config) -> Mapping[str, jax.ShapeDtypeStruct]:
    """Shape and dtype of every key of a global training batch (leading axis `batch_size`).

    The trainer derives the batch shardings (one per key, split over the batch axes) and the
    model's init input (`input` at batch size 1) from it; benchmarks make synthetic batches of it.
    Clip lengths may vary between curriculum phases: give the longest.
    """

  def make_curriculum(self, config):
    """The training data: a `mbjax.data.pipelines.Curriculum` of phases (source, kind, example
    function) whose examples carry exactly the keys of `example_batch`. Starts with
    `check_init_from(config)` (a finetuning config without pretrained weights stops)."""

  def loss_fn(self, model: nn.Module, variables: Variables, batch: Mapping[str, jax.Array],
              rng: jax.Array, kind: str, config) -> tuple[jax.Array, tuple[Metrics, Variables]]:
    """(scalar loss, (metrics, new model state)) of one training batch of `kind`.

    `variables` holds `params` and the model state; the new model state is every collection but
    `params` after this step (empty when the model has none). Metrics are scalars, named
    `<kind>/<name>`.
    """

  def make_evaluators(self, config, model: nn.Module) -> Evaluators:
    """Evaluators from `config.evals` (usually `mbjax.evaluate.registry.make_evaluators`); each
    function takes the full variables (params and model state) and returns metrics."""

  def load_pretrained(self, variables: Variables, path: str) -> tuple[Variables, dict]:
    """(variables with pretrained weights from `path`, report of what was taken and kept).

    `path` is an official `.bin`, an `mbjax.convert` directory or a trainer workdir. A pretrained
    DSTformer maps onto the `backbone/` of a head model. Parts the task initialises fresh (a new
    head) stay; anything else missing or mis-shaped is an error that lists it.
    """

  def flops_per_step(self, config) -> float | None:
    """Model FLOPs of one training step (forward + backward) of the global batch at the longest
    clip, for TFLOP/s and MFU in the progress line; None when unknown (the trainer says so)."""


# Optional: `configure(config) -> None` fills, in place, the config fields a task derives from its
# data (e.g. a custom action dataset's class count and label names); see `configure` below.
OPTIONAL_FUNCTIONS = ('configure',)

TASK_FUNCTIONS = ('make_model', 'example_batch', 'make_curriculum', 'loss_fn', 'make_evaluators',
                  'load_pretrained', 'flops_per_step')


def get_task(config):
  """The task module of `config.task`: a name under mbjax/tasks/ or a dotted module path."""
  name = config.task
  module_name = name if '.' in name else f'mbjax.tasks.{name}'
  try:
    task = importlib.import_module(module_name)
  except ModuleNotFoundError as e:
    if e.name != module_name:
      raise
    tasks_dir = os.path.dirname(__file__)
    known = sorted(f[:-3] for f in os.listdir(tasks_dir)
                   if f.endswith('.py') and f not in ('__init__.py', 'base.py', 'loading.py'))
    raise ValueError(f'config.task={name!r}: no module {module_name}; tasks: {known} '
                     '(or a dotted module path)') from None
  missing = [f for f in TASK_FUNCTIONS if not callable(getattr(task, f, None))]
  if missing:
    raise TypeError(f'task module {module_name} lacks {missing} of the task protocol '
                    '(mbjax/tasks/base.py)')
  return task


def configure(task, config) -> None:
  """Runs the task's optional `configure(config)`: once, after the command-line overrides and
  before the model is built (the trainer, then config.json, and the model loader see its fields)."""
  fn = getattr(task, 'configure', None)
  if callable(fn):
    fn(config)


def check_init_from(config) -> None:
  """Stops a finetuning config (`config.finetune` True) that names no pretrained weights.

  Every task's `make_curriculum` calls it first, so `configs/*:ft` without --config.init_from
  fails at once instead of training from random init. Official: `finetune: True` makes the script
  load the pretrained checkpoint (train.py, train_action.py, train_mesh.py, ...).
  """
  if config.get('finetune') and not config.get('init_from'):
    raise ValueError('this config finetunes a pretrained backbone (finetune=True) but '
                     'config.init_from is empty: give --config.init_from=<official pretrained '
                     '.bin, convert dir or pretraining workdir>, or use the scratch variant '
                     '(or --config.finetune=False) to train from random init')


def apply_train(model: nn.Module, variables: Variables, x, rng) -> tuple[Any, Variables]:
  """(output, new model state) of `model` in train mode: dropout from `rng`, and every collection
  but `params` (BatchNorm statistics) mutable and returned updated."""
  mutable = [c for c in variables if c != 'params']
  if not mutable:
    return model.apply(variables, x, train=True, rngs={'dropout': rng}), {}
  out, new_state = model.apply(variables, x, train=True, rngs={'dropout': rng}, mutable=mutable)
  return out, dict(new_state)
