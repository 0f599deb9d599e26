"""What a sweep is: a config file with `get_config(arg)` and `sweep(arg)`, and the runs it names.

A sweep file (e.g. configs/scaling.py) is an ordinary trainer config file plus:
  sweep(arg) -> [Run(name, overrides), ...]: the runs, each the file's `get_config(arg)` with
      `overrides` ({'model.dim_feat': 128, 'total_steps': 400, ...}) set as `--config.` flags;
  prepare(arg, sweep_dir) -> {dotted key: value} (optional): run once before launching (e.g. to
      build the datasets of a demo); the overrides it returns apply to every run.
Every run is then `python -m mbjax.train --config=FILE:ARG --config.k=v ... --workdir=DIR/NAME`:
an ordinary workdir (config.json, metrics.jsonl, checkpoints, summary.json).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import re
import shlex
import sys
from typing import Any, Mapping

_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.=-]*$')


@dataclasses.dataclass(frozen=True)
class Run:
  """One run of a sweep: its folder name under the sweep dir and its config overrides."""

  name: str
  overrides: Mapping[str, Any]


def load_module(path: str):
  """The sweep file at `path` as a module (loaded by path, as config files are)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path}: no such sweep file')
  spec = importlib.util.spec_from_file_location(f'_mbjax_sweep_{abs(hash(path))}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not callable(getattr(module, 'sweep', None)):
    raise ValueError(f'{path}: a sweep file defines sweep(arg) -> [Run, ...] besides get_config '
                     '(see mbjax/sweep/spec.py)')
  return module


def runs_of(module, arg: str) -> list[Run]:
  """The file's runs, checked: unique folder-safe names, overrides a dict of scalars."""
  runs = list(module.sweep(arg))
  if not runs:
    raise ValueError(f'{module.__file__}: sweep({arg!r}) names no run')
  seen = set()
  for run in runs:
    if not isinstance(run, Run):
      raise TypeError(f'{module.__file__}: sweep() yields Run(name, overrides), got {run!r}')
    if not _NAME.match(run.name) or run.name in seen:
      raise ValueError(f'{module.__file__}: run name {run.name!r} is '
                       f'{"repeated" if run.name in seen else "not a plain folder name"}')
    seen.add(run.name)
    for key, value in run.overrides.items():
      if not isinstance(value, (bool, int, float, str)):
        raise ValueError(f'{module.__file__}: run {run.name}: override {key}={value!r} is not a '
                         'number, bool or string (the only values a --config. flag carries)')
  return runs


def isoflop_steps(budget: float, flops_per_step: float) -> int:
  """Steps that spend `budget` FLOPs at `flops_per_step` (nearest, at least 1): within half a
  step of the budget."""
  if budget <= 0 or flops_per_step <= 0:
    raise ValueError(f'isoflop_steps: budget {budget} and flops_per_step {flops_per_step} must '
                     'be positive')
  return max(1, int(math.floor(budget / flops_per_step + 0.5)))


def flag_value(value: Any) -> str:
  """`value` as a --config. flag writes it (floats in full precision)."""
  if isinstance(value, float):
    return repr(value)
  return str(value)


def train_command(config: str, run: Run, sweep_dir: str, common: Mapping[str, Any] = (),
                  python: str | None = None) -> list[str]:
  """argv of one run: the trainer on `config` ('FILE:ARG') with the common then the run's own
  overrides, in the run's folder."""
  overrides = {**dict(common), **dict(run.overrides)}
  return [python or sys.executable, '-m', 'mbjax.train', f'--config={config}',
          *(f'--config.{k}={flag_value(v)}' for k, v in overrides.items()),
          f'--workdir={os.path.join(sweep_dir, run.name)}']


def shell_line(argv: list[str]) -> str:
  return ' '.join(shlex.quote(a) for a in argv)


def status(workdir: str) -> str:
  """'finished' (summary.json at total_steps, not preempted), 'interrupted' (started: a
  config.json or checkpoints, no final summary) or 'new'."""
  path = os.path.join(workdir, 'summary.json')
  if os.path.exists(path):
    try:
      with open(path) as f:
        summary = json.load(f)
      if (not summary.get('preempted') and
          summary.get('step', -1) >= summary.get('total_steps', math.inf)):
        return 'finished'
    except (OSError, ValueError):
      pass
  started = any(os.path.exists(os.path.join(workdir, p)) for p in ('config.json', 'checkpoints'))
  return 'interrupted' if started else 'new'
