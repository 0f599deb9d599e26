"""Resuming with another config: which differences change the run, and a record of every change.

A workdir's `config.json` is the config its steps were trained with. On resume, fields that only
change how the run is laid out or watched (mesh, logging, checkpoint cadence, evaluators, where
to stop) may differ; any other difference (model, batch, data, schedule, loss, seeds) would
continue the run as another experiment, so the trainer stops and lists them unless
`config.allow_config_change` is set. Every change is appended to `config_history.jsonl`.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from mbjax.logs import metric_writer

# Fields whose changes leave every step's computation as it was.
# Dotted keys, or namespaces of them ('checkpoint' covers 'checkpoint.every_steps').
HARMLESS = ('mesh', 'mesh_devices', 'fsdp', 'tensor_parallel', 'log_every_steps', 'checkpoint',
            'evals', 'evals_every', 'best_metric', 'best_mode', 'total_steps', 'init_from',
            'data.num_workers', 'data.prefetch', 'model.attention_impl', 'model.remat_policy',
            'allow_config_change')
# Fields added to the configs after runs were started: a config.json without one was trained as
# if it held this value, so a resume with it is no change.
ADDED_FIELDS = {'data.fraction': 1.0, 'model.parameterization': 'standard',
                'model.mup_base_width': 64, 'lr_schedule': 'epoch_decay'}


def flatten(tree: Any, prefix: str = '') -> dict[str, Any]:
  """Nested dicts -> {'a.b.c': leaf}."""
  if isinstance(tree, dict) and tree:
    out = {}
    for k, v in tree.items():
      out.update(flatten(v, f'{prefix}{k}.'))
    return out
  return {prefix[:-1]: tree}


def _harmless(key: str) -> bool:
  return any(key == p or key.startswith(p + '.') for p in HARMLESS)


def differences(stored: dict, config) -> dict[str, tuple[Any, Any]]:
  """{dotted key: (stored value, new value)} of every field that differs."""
  new = json.loads(json.dumps(metric_writer.json_value(config)))
  a, b = flatten(stored), flatten(new)
  for key, value in ADDED_FIELDS.items():
    if key not in a and b.get(key) == value:
      a[key] = value
  missing = object()
  return {k: (a.get(k, '<absent>'), b.get(k, '<absent>')) for k in sorted(set(a) | set(b))
          if a.get(k, missing) != b.get(k, missing)}


def check_resume(workdir: str, config, step: int, *, is_primary: bool = True) -> None:
  """Compares `config` with the workdir's `config.json` before resuming at `step`: run-changing
  differences raise unless `config.allow_config_change`; all are recorded."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return
  with open(path) as f:
    diffs = differences(json.load(f), config)
  if not diffs:
    return
  changing = {k: v for k, v in diffs.items() if not _harmless(k)}
  if changing and not config.get('allow_config_change', False):
    lines = '\n'.join(f'  {k}: {a!r} -> {b!r}' for k, (a, b) in changing.items())
    raise ValueError(f'{workdir} was trained to step {step} with another config; these changes '
                     f'would make the rest of the run another experiment:\n{lines}\nResume with '
                     'the stored config (config.json), use a new --workdir, or pass '
                     '--config.allow_config_change=True to continue anyway (recorded in '
                     'config_history.jsonl).')
  if is_primary:
    with open(os.path.join(workdir, 'config_history.jsonl'), 'a') as f:
      f.write(json.dumps(dict(step=step, time=time.time(), changes=diffs,
                              run_changing=sorted(changing))) + '\n')
