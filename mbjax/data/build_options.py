"""Build options of a dataset module, checked before anything is read.

`generate(source, split, report, **options)` declares its options as keyword parameters with type
annotations; a module may add OPTION_RANGES = {'clip_len': (1, None), 'fps': (1, 1000)} (inclusive
bounds, None for unbounded; for a sequence option every element is checked). `check` rejects an
unknown option, a value of the wrong type and a value out of range, naming the option, what it got
and what is allowed.
"""

from __future__ import annotations

import collections.abc
import inspect
import numbers
import types
import typing
from typing import Any, Mapping


class OptionError(ValueError):
  """A build option that the dataset module does not accept (a usage error)."""


def check(module, name: str, options: Mapping[str, Any]) -> None:
  """Raises OptionError for the first option of `options` that `module.generate` rejects."""
  generate = module.generate
  signature = inspect.signature(generate)
  accepted = [p.name for p in list(signature.parameters.values())[3:]
              if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
  unknown = sorted(set(options) - set(accepted))
  if unknown:
    raise OptionError(f'{name}: unknown option {", ".join(unknown)}; {name} accepts: '
                      f'{", ".join(accepted) or "no options"}')
  try:
    hints = typing.get_type_hints(generate)
  except (NameError, TypeError):  # an annotation that does not resolve: check ranges only
    hints = {}
  ranges = getattr(module, 'OPTION_RANGES', {})
  for key, value in options.items():
    hint = hints.get(key)
    if hint is not None and not matches(value, hint):
      raise OptionError(f'{name}: option {key}={value!r} ({type(value).__name__}): expected '
                        f'{describe(hint)}')
    if key in ranges:
      _check_range(name, key, value, *ranges[key])


def _check_range(name: str, key: str, value: Any, low, high) -> None:
  values = value if isinstance(value, (list, tuple)) else [value]
  outside = [v for v in values if isinstance(v, numbers.Real) and not isinstance(v, bool)
             and ((low is not None and v < low) or (high is not None and v > high))]
  if outside:
    if high is None:
      allowed = f'>= {low}'
    elif low is None:
      allowed = f'<= {high}'
    else:
      allowed = f'in [{low}, {high}]'
    each = ' (each value)' if isinstance(value, (list, tuple)) else ''
    raise OptionError(f'{name}: option {key}={value!r} is out of range; allowed{each}: {allowed}')


def matches(value: Any, hint: Any) -> bool:
  """Whether `value` (a Python literal from the command line) fits the annotation `hint`."""
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if hint is Any:
    return True
  if origin in (typing.Union, types.UnionType):
    return any(matches(value, arm) for arm in args)
  if hint is type(None):
    return value is None
  if hint is bool:
    return isinstance(value, bool)
  if hint is int:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
  if hint is float:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
  if origin is tuple:
    if not isinstance(value, (tuple, list)):
      return False
    if len(args) == 2 and args[1] is Ellipsis:
      return all(matches(v, args[0]) for v in value)
    return not args or (len(args) == len(value) and all(map(matches, value, args)))
  if origin in (collections.abc.Sequence, list):
    return (isinstance(value, (tuple, list))
            and all(matches(v, args[0]) for v in value) if args else True)
  if origin in (collections.abc.Mapping, dict):
    return isinstance(value, dict) and (not args or all(
        matches(k, args[0]) and matches(v, args[1]) for k, v in value.items()))
  if isinstance(hint, type):
    return isinstance(value, hint)
  return True  # an annotation this check does not know: leave it to generate


def describe(hint: Any) -> str:
  """An annotation in words: 'an integer', 'a sequence of numbers (e.g. (1, 2))', ..."""
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if origin in (typing.Union, types.UnionType):
    return ' or '.join(describe(arm) for arm in args)
  if hint is type(None):
    return 'None'
  simple = {bool: 'True or False', int: 'an integer', float: 'a number', str: 'a string'}
  if hint in simple:
    return simple[hint]
  if origin is tuple and args and args[-1] is not Ellipsis:
    return f'a tuple of {len(args)} ({", ".join(describe(a) for a in args)})'
  if origin in (tuple, collections.abc.Sequence, list):
    plural = {bool: 'booleans', int: 'integers', float: 'numbers', str: 'strings'}
    element = plural.get(args[0], describe(args[0])) if args else 'values'
    return f'a sequence of {element} in parentheses, e.g. (a, b)'
  if origin in (collections.abc.Mapping, dict):
    return 'a dict, e.g. {key: value}'
  return getattr(hint, '__name__', str(hint))
