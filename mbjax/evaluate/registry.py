"""The evaluator registry: `config.evals.<name> = dict(type=..., every_steps=..., ...)`.

Each type names a module with `make_evaluator(config, model, spec, inputs) -> fn(variables) ->
metrics` (`inputs`: the `TaskInputs` the task hands its evaluators)
(and optionally `save_artifacts(result, directory, name, step) -> paths`, pictures of a result);
`type` defaults to the entry's name (`config.evals.h36m` is an `h36m` evaluator). The trainer runs
every evaluator at step 0, every `every_steps` steps (0: never in between) and at the last step;
`every_epochs=N` (N > 0) instead evaluates every N times the first epoch's steps, where the task
gives its epoch length. `python -m mbjax.evaluate` runs the same evaluators on a checkpoint.

Model selection stays off the test set: an evaluator with `subjects` (a validation split carved
from training subjects, `h36m_val`) must see no clip the task trains on, and while one is
configured `config.best_metric` may not name an evaluator of a test split.
"""

from __future__ import annotations

import importlib
from typing import Callable, Sequence

from mbjax.data import subjects
from mbjax.evaluate.inputs import TaskInputs

EVALUATORS = {
    'lifting': 'mbjax.evaluate.lifting',  # 2D-to-3D lifting of held-out 3D clips, mm, baselines
    'h36m': 'mbjax.evaluate.h36m',  # Human3.6M MPJPE / P-MPJPE, the official protocol
    'h36m_val': 'mbjax.evaluate.h36m_val',  # H36M held-out training subjects, pixels
    'action': 'mbjax.evaluate.action',  # NTU top-1 / top-5, mean class accuracy, multi-clip
    'oneshot': 'mbjax.evaluate.oneshot',  # NTU-120 one-shot: cosine 1-NN to the exemplars, %
    'mesh': 'mbjax.evaluate.mesh',  # SMPL mesh recovery: MPVE, MPJPE, PA-MPJPE, mm
}
DEFAULT_SPLITS = {'h36m': 'test'}  # the split of an evaluator type whose spec names none


def make_evaluator(config, model, name: str, spec, inputs: TaskInputs = TaskInputs()):
  """fn(variables) -> metrics of the evaluator `config.evals.<name>` = `spec`, given what the
  task hands its evaluators (`inputs`)."""
  kind = spec.get('type', name)
  if kind not in EVALUATORS:
    raise ValueError(f'config.evals.{name}: unknown evaluator type {kind!r}; known types: '
                     f'{sorted(EVALUATORS)}')
  return importlib.import_module(EVALUATORS[kind]).make_evaluator(config, model, spec, inputs)


def save_artifacts(config, name: str, result: dict, directory: str, step: int | None = None
                   ) -> list[str]:
  """The files (pictures) the module of evaluator `config.evals.<name>` makes of its `result` in
  `directory`, through its optional `save_artifacts(result, directory, name, step)`; [] when it
  has none or the evaluator is not one of the registry's."""
  spec = config.get('evals', {}).get(name)
  kind = spec.get('type', name) if spec is not None else None
  if kind not in EVALUATORS:
    return []
  save = getattr(importlib.import_module(EVALUATORS[kind]), 'save_artifacts', None)
  return save(result, directory, name, step) if save else []


def _subjects(names) -> set[str]:
  return {subjects.subject_name(s) for s in names or ()}


def _split_of(name: str, spec) -> str:
  kind = spec.get('type', name)
  return spec.get('split', DEFAULT_SPLITS.get(kind, 'train'))


def check_best_metric(config) -> None:
  """`config.best_metric` names no test-split evaluator while a validation evaluator (one with
  `subjects`) is configured, nor an evaluator of a whole split while one of a validation slice
  (`part='val'`) is."""
  evals = config.get('evals', {})
  best = config.get('best_metric') or ''
  validation = [name for name, spec in evals.items() if spec.get('subjects')]
  name = best.split('/', 1)[0]
  if validation and name in evals and _split_of(name, evals[name]) == 'test':
    raise ValueError(f'config.best_metric={best!r} selects the best checkpoint on the test split '
                     f'(config.evals.{name}); with the validation evaluator {validation[0]!r} '
                     f'configured, select on it, e.g. {validation[0]}/mpjpe_px')
  sliced = [n for n, spec in evals.items() if spec.get('part', 'all') == 'val']
  if sliced and name in evals and evals[name].get('part', 'all') != 'val':
    raise ValueError(f'config.best_metric={best!r} would select the best checkpoint on '
                     f'{evals[name].get("split")} (config.evals.{name}), not on the validation '
                     f"slice: use an evaluator with part='val' (e.g. {sliced[0]}/...)")


def check_held_out(config, train_specs: Sequence) -> None:
  """No validation evaluator (`subjects` on a dataset split) shares a subject with a training
  spec of the same dataset split: that spec must drop them (`exclude_subjects`)."""
  for name, spec in config.get('evals', {}).items():
    held_out = _subjects(spec.get('subjects'))
    if not held_out:
      continue
    where = (spec.get('name', 'h36m'), _split_of(name, spec))
    for train in train_specs:
      if (train['name'], train.get('split', 'train')) != where:
        continue
      kept = held_out - _subjects(train.get('exclude_subjects'))
      if train.get('subjects'):  # a training source of named subjects trains on those only
        kept &= _subjects(train['subjects'])
      if kept:
        drop = ', '.join(repr(s) for s in sorted(held_out))
        raise ValueError(f'config.evals.{name} validates on {", ".join(sorted(kept))}, but '
                         f'training reads their clips from {where[0]}/{where[1]}: give that '
                         f'training source exclude_subjects=({drop},) (the configs\' '
                         'val=SUBJECTS word does)')


def _every(name: str, spec, steps_per_epoch: Callable[[], int] | None) -> int:
  epochs = int(spec.get('every_epochs', 0) or 0)
  if epochs <= 0:
    return int(spec.get('every_steps', 0) or 0)
  if steps_per_epoch is None:
    raise ValueError(f'config.evals.{name}.every_epochs={epochs}: this task gives no epoch '
                     'length; use every_steps')
  return epochs * steps_per_epoch()


def make_evaluators(config, model, *, inputs: TaskInputs = TaskInputs(),
                    train_specs: Sequence = (),
                    steps_per_epoch: Callable[[], int] | None = None) -> dict:
  """name -> (every_steps, fn(variables) -> metrics) for every entry of `config.evals`.

  An entry with `part='val'` (a seeded validation slice of a training split,
  `config.data.val_fraction`) is left out when that fraction is 0: there is no slice.

  Args:
    config: the run's config.
    model: the model every evaluator runs.
    inputs: what the task hands its evaluators (its dataset's records, clip length, ...).
    train_specs: the dataset specs the task trains on (for `check_held_out`).
    steps_per_epoch: fn() -> steps of the first epoch, for `every_epochs` entries (called only
      when one is configured).
  """
  check_best_metric(config)
  check_held_out(config, train_specs)
  no_slice = not float((config.get('data') or {}).get('val_fraction', 0.0) or 0.0)
  return {name: (_every(name, spec, steps_per_epoch),
                 make_evaluator(config, model, name, spec, inputs))
          for name, spec in config.get('evals', {}).items()
          if not (no_slice and spec.get('part', 'all') == 'val')}
