"""The evaluator registry: `config.evals.<name> = dict(type=..., every_steps=..., ...)`.

Each type names a module with `make_evaluator(config, model, spec) -> fn(variables) -> metrics`;
`type` defaults to the entry's name (`config.evals.h36m` is an `h36m` evaluator). The trainer runs
every evaluator at step 0, every `every_steps` steps (0: never in between) and at the last step;
`python -m mbjax.evaluate` runs the same evaluators on a checkpoint.
"""

from __future__ import annotations

import importlib

from mbjax.tasks import base

EVALUATORS = {
    'lifting': 'mbjax.evaluate.lifting',  # 2D-to-3D lifting of held-out 3D clips, mm, baselines
    'h36m': 'mbjax.evaluate.h36m',  # Human3.6M MPJPE / P-MPJPE, the official protocol
    'action': 'mbjax.evaluate.action',  # NTU top-1 / top-5, mean class accuracy, multi-clip
}


def make_evaluator(config, model, name: str, spec):
  """fn(variables) -> metrics of the evaluator `config.evals.<name>` = `spec`."""
  kind = spec.get('type', name)
  if kind not in EVALUATORS:
    raise ValueError(f'config.evals.{name}: unknown evaluator type {kind!r}; known types: '
                     f'{sorted(EVALUATORS)}')
  return importlib.import_module(EVALUATORS[kind]).make_evaluator(config, model, spec)


def make_evaluators(config, model) -> base.Evaluators:
  """name -> (every_steps, fn(variables) -> metrics) for every entry of `config.evals`."""
  return {name: (int(spec.get('every_steps', 0) or 0), make_evaluator(config, model, name, spec))
          for name, spec in config.get('evals', {}).items()}
