"""The trainer's own config fields, checked before anything is built or written: a value out of
range is one ValueError naming the field, the value and what it may be (instead of a run that
trains all steps for `total_steps=0`, climbs the loss for `lr=-1`, or divides by zero)."""

from __future__ import annotations

import math
from typing import Any, Callable

_Check = Callable[[Any], bool]


def _whole(low: int) -> _Check:
  return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(low: float, *, above: bool = False) -> _Check:
  def ok(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
      return False
    return v > low if above else v >= low
  return ok


def _total_steps(v) -> bool:
  return v is None or v == -1 or _whole(1)(v)


# (field, check, what it may be); a field a config does not have is not checked.
FIELDS: tuple[tuple[str, _Check, str], ...] = (
    ('total_steps', _total_steps,
     'a positive number of steps to stop after, or -1 (the default) for the whole curriculum'),
    ('epochs', _whole(1), 'a whole number >= 1'),
    ('batch_size', _whole(1), 'a whole number >= 1'),
    ('lr', _number(0, above=True), 'a finite number > 0'),
    ('lr_head', lambda v: v is None or _number(0, above=True)(v), 'None or a finite number > 0'),
    ('lr_decay', _number(0, above=True), 'a finite number > 0 (1: no decay)'),
    ('weight_decay', _number(0), 'a finite number >= 0'),
    ('warmup_steps', _whole(0), 'a whole number >= 0'),
    ('grad_clip', _number(0), 'a finite number >= 0 (0: off)'),
    ('grad_accum_steps', _whole(1), 'a whole number >= 1 (1: off)'),
    ('log_every_steps', _whole(1), 'a whole number >= 1'),
    ('checkpoint.every_steps', _whole(1), 'a whole number >= 1'),
    ('checkpoint.keep', _whole(1), 'a whole number >= 1'),
    ('checkpoint.snapshot_every_epochs', _whole(0), 'a whole number >= 0 (0: no snapshots)'),
)
_MISSING = object()


def _field(config, path: str):
  node = config
  for name in path.split('.'):
    if not hasattr(node, 'get'):
      return _MISSING
    node = node.get(name, _MISSING)
    if node is _MISSING:
      return _MISSING
  return node


def check_trainer_fields(config) -> None:
  """ValueError for the first trainer field of `config` out of its range (see FIELDS), or for an
  evaluator whose `every_steps` is negative."""
  for path, ok, allowed in FIELDS:
    value = _field(config, path)
    if value is not _MISSING and not ok(value):
      raise ValueError(f'config.{path}={value!r}: expected {allowed}')
  for name, spec in (config.get('evals') or {}).items():
    every = spec.get('every_steps', 0) if hasattr(spec, 'get') else 0
    if not _whole(0)(every):
      raise ValueError(f'config.evals.{name}.every_steps={every!r}: expected a whole number >= 0 '
                       '(0: only before training and at the last step)')
