"""One row per run of a sweep directory: DIR/<run>/config.json and, once finished, summary.json.

A run folder holds the trainer's `config.json` (with the `scaling` dict the sweep writes: name,
size, budget, steps, data_fraction, metric) and, when the run finished, `summary.json` (the final
step, the metric named by `scaling.metric` and the `compute/` accounting). A run without
summary.json, preempted, or stopped before `total_steps` is unfinished: it is listed and left out
of the fits. Mistakes in the files raise ScalingError naming the file and the field.
"""

from __future__ import annotations

import csv
import json
import math
import os

COLUMNS = ('run', 'size', 'N', 'params', 'D', 'C', 'loss', 'budget', 'steps', 'data_fraction',
           'lr', 'seed', 'wall_s', 'mfu', 'finished', 'status')
# summary.json field -> runs.csv column, all required of a finished run.
_COMPUTE = {'compute/params_non_embedding': 'N', 'compute/params': 'params',
            'compute/frames': 'D', 'compute/flops': 'C', 'compute/wall_s': 'wall_s'}


class ScalingError(ValueError):
  """A mistake in the sweep directory or the command line, with a message for the user."""


def read_json(path: str) -> dict:
  """The JSON dict in `path`; ScalingError naming the file when it is not one."""
  try:
    with open(path) as f:
      value = json.load(f)
  except json.JSONDecodeError as e:
    raise ScalingError(f'{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})')
  except (OSError, UnicodeDecodeError) as e:
    raise ScalingError(f'{path}: cannot be read ({e})')
  if not isinstance(value, dict):
    raise ScalingError(f'{path}: expected a JSON object, found {type(value).__name__}')
  return value


def _number(path: str, record: dict, field: str, default=None) -> float:
  """record[field] as a float; ScalingError naming the file and field when absent or not a
  number (absent is allowed when a default is given)."""
  if field not in record or record[field] is None:
    if default is None:
      raise ScalingError(f'{path}: field {field!r} is missing')
    return default
  value = record[field]
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ScalingError(f'{path}: field {field!r} should be a number, found {value!r}')
  return float(value)


def _scaling_fields(path: str, config: dict, folder: str) -> dict:
  """The run's sweep fields from config.json's `scaling` dict (and its lr, seed)."""
  scaling = config.get('scaling')
  if not isinstance(scaling, dict):
    raise ScalingError(f'{path}: field "scaling" is missing or not a dict (not a sweep run?)')
  metric = scaling.get('metric')
  if not isinstance(metric, str) or not metric:
    raise ScalingError(f'{path}: field "scaling.metric" should name the loss metric of '
                       f'summary.json, found {metric!r}')
  model = config.get('model') if isinstance(config.get('model'), dict) else {}
  default_size = f'd{model.get("dim_feat", "?")}_l{model.get("depth", "?")}'
  where = f'{path} (scaling)'
  return dict(run=str(scaling.get('name') or folder), size=str(scaling.get('size') or default_size),
              metric=metric, budget=_number(where, scaling, 'budget', 0.0),
              steps=_number(where, scaling, 'steps', math.nan),
              data_fraction=_number(where, scaling, 'data_fraction', math.nan),
              lr=_number(path, config, 'lr', math.nan),
              seed=_number(path, config, 'seed', math.nan))


def _status(path: str, summary: dict | None) -> str:
  if summary is None:
    return 'unfinished'
  if summary.get('preempted'):
    return 'preempted'
  if _number(path, summary, 'step') < _number(path, summary, 'total_steps'):
    return 'unfinished'
  return 'finished'


def read_run(folder: str) -> dict:
  """The runs.csv row of one run folder (NaN where an unfinished run has no value)."""
  config_path = os.path.join(folder, 'config.json')
  row = _scaling_fields(config_path, read_json(config_path), os.path.basename(folder))
  row.update({column: math.nan for column in (*_COMPUTE.values(), 'loss', 'mfu')})
  summary_path = os.path.join(folder, 'summary.json')
  summary = read_json(summary_path) if os.path.exists(summary_path) else None
  row['status'] = _status(summary_path, summary)
  if row['status'] == 'finished':
    for field, column in _COMPUTE.items():
      row[column] = _number(summary_path, summary, field)
    if row['metric'] not in summary:
      raise ScalingError(f'{summary_path}: metric {row["metric"]!r} (scaling.metric of '
                         f'config.json) is missing')
    row['loss'] = _number(summary_path, summary, row['metric'])
    row['mfu'] = _number(summary_path, summary, 'compute/mfu', math.nan)
    if not (math.isfinite(row['loss']) and row['loss'] > 0):
      row['status'] = 'diverged'  # listed, but a loss that is not finite and positive is not fit
    for column in ('N', 'D', 'C'):
      if not row[column] > 0:
        raise ScalingError(f'{summary_path}: {column} should be positive, found {row[column]}')
  row['finished'] = row['status'] == 'finished'
  return row


def collect(sweep_dir: str) -> list[dict]:
  """Rows of every run folder (a sub-folder with config.json) of `sweep_dir`, by name."""
  if not os.path.isdir(sweep_dir):
    raise ScalingError(f'{sweep_dir}: no such directory')
  folders = sorted(os.path.join(sweep_dir, name) for name in os.listdir(sweep_dir))
  rows = [read_run(f) for f in folders if os.path.isfile(os.path.join(f, 'config.json'))]
  if not rows:
    raise ScalingError(f'{sweep_dir}: no runs (sub-folders with a config.json) found')
  metrics = sorted({r['metric'] for r in rows if r['finished']})
  if len(metrics) > 1:
    raise ScalingError(f'{sweep_dir}: finished runs report different metrics {metrics}; '
                       'one sweep fits one loss')
  return rows


def finished(rows: list[dict]) -> list[dict]:
  return [r for r in rows if r['finished']]


def write_csv(rows: list[dict], path: str) -> None:
  """runs.csv: COLUMNS, an empty cell where a value is unknown."""
  def cell(value):
    if isinstance(value, float):
      if math.isnan(value):
        return ''
      return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return value
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(COLUMNS)
    for row in rows:
      writer.writerow([cell(row[c]) for c in COLUMNS])


def summary_line(rows: list[dict]) -> str:
  """'12 runs: 10 finished, 1 unfinished, 1 preempted; 3 sizes, 4 budgets'."""
  counts = {}
  for r in rows:
    counts[r['status']] = counts.get(r['status'], 0) + 1
  done = finished(rows)
  parts = ', '.join(f'{n} {s}' for s, n in sorted(counts.items(), key=lambda x: -x[1]))
  sizes = len({r['size'] for r in done})
  budgets = len({r['budget'] for r in done if r['budget'] > 0})
  return f'{len(rows)} runs: {parts}; {sizes} sizes, {budgets} compute budgets among the finished'
