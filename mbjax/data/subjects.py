"""Human3.6M subject filters: keep or drop the clips of some subjects (e.g. hold S8 out).

A dataset spec (`records.load_spec`) may say `subjects=('S8',)` (only those subjects' clips) or
`exclude_subjects=('S8',)` (all but those). The subject of a record is read from its H36M-style
`source` field: 's_08_act_02_subact_01_ca_01' is subject 'S8'.

Finding the kept records reads every record once: the ArrayRecord files hold whole records, so
reading one field costs about as much as reading all of them (about 0.2 ms per 150 kB H36M clip
from the page cache, a few seconds for the ~20k clips of the train split). The kept indices are
cached per (split, filter) within a process, so a second load of the same spec is free.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

_SOURCE = re.compile(r'^s_(\d+)_')
_SUBJECT = re.compile(r'^[sS]0*(\d+)$')


def subject_name(name: str) -> str:
  """'S8', 's8' or 'S08' -> 'S8'.

  Raises:
    ValueError: a name that is not 'S' followed by a number.
  """
  match = _SUBJECT.match(str(name).strip())
  if not match:
    raise ValueError(f'subject {name!r}: expected a Human3.6M subject such as \'S8\'')
  return f'S{int(match.group(1))}'


def subject_of(source: Any) -> str:
  """The subject of an H36M `source` value (str or bytes): 's_08_act_02_...' -> 'S8'."""
  if isinstance(source, np.ndarray):
    source = source.item()
  text = source.decode('utf-8') if isinstance(source, (bytes, np.bytes_)) else str(source)
  match = _SOURCE.match(text)
  if not match:
    raise ValueError(f'source {text!r} does not name an H36M subject (expected '
                     "'s_08_act_02_subact_01_ca_01')")
  return f'S{int(match.group(1))}'


class SubsetSource:
  """Random access to the records `indices` of `source`, in that order (picklable)."""

  def __init__(self, source: Any, indices: Sequence[int], description: str):
    self.source = source
    self.indices = np.asarray(indices, np.int64)
    self.description = description

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    if not -len(self) <= index < len(self):
      raise IndexError(f'record {index} out of range for {self!r}')
    return self.source[int(self.indices[index])]

  def __repr__(self) -> str:
    return f'SubsetSource({self.source!r}, {self.description}, records={len(self)})'


def record_subjects(source: Any) -> list[str]:
  """The subject of every record of `source`, in order (reads each record once)."""
  out = []
  for index in range(len(source)):
    record = source[index]
    if 'source' not in record:
      raise ValueError(f'{source!r}: record {index} has no `source` field (fields: '
                       f'{", ".join(sorted(record))}), so it cannot be filtered by subject')
    try:
      out.append(subject_of(record['source']))
    except ValueError as e:
      raise ValueError(f'{source!r}: record {index}: {e}') from None
  return out


# (path, split, records, keep, drop) -> (kept indices, subjects present), for built splits.
_CACHE: dict[tuple, tuple[np.ndarray, tuple]] = {}


def _kept(source: Any, keep: tuple, drop: tuple) -> tuple[np.ndarray, tuple]:
  """(indices of the kept records, sorted subjects present) of `source`."""
  subjects = np.asarray(record_subjects(source))
  mask = np.ones(len(subjects), bool)
  if keep:
    mask &= np.isin(subjects, keep)
  if drop:
    mask &= ~np.isin(subjects, drop)
  return np.flatnonzero(mask), tuple(sorted(set(subjects.tolist()), key=lambda s: int(s[1:])))


def _kept_cached(source: Any, keep: tuple, drop: tuple) -> tuple[np.ndarray, tuple]:
  """`_kept`, remembered for a built split (one with a `path` and a `split`)."""
  path, split = getattr(source, 'path', None), getattr(source, 'split', None)
  if path is None or split is None:
    return _kept(source, keep, drop)
  key = (path, split, len(source), keep, drop)
  if key not in _CACHE:
    _CACHE[key] = _kept(source, keep, drop)
  return _CACHE[key]


def filter_subjects(source: Any, *, subjects: Sequence[str] = (),
                    exclude_subjects: Sequence[str] = ()) -> Any:
  """`source` cut to the clips of `subjects` (if given) minus those of `exclude_subjects`.

  Args:
    source: records with an H36M `source` field (e.g. a `records.RecordSource`).
    subjects: keep only these subjects ('S8', ...); empty keeps all.
    exclude_subjects: drop these subjects.

  Returns:
    `source` itself when both are empty, else a `SubsetSource` over the kept records.

  Raises:
    ValueError: records without `source`, a named subject that no record has (the message lists
      the subjects present), or a filter that keeps nothing.
  """
  keep = tuple(sorted({subject_name(s) for s in subjects or ()}))
  drop = tuple(sorted({subject_name(s) for s in exclude_subjects or ()}))
  if not keep and not drop:
    return source
  indices, present = _kept_cached(source, keep, drop)
  missing = [s for s in keep + drop if s not in present]
  if missing:
    raise ValueError(f'{source!r}: no record of subject {", ".join(missing)}; subjects present: '
                     f'{", ".join(present)}')
  description = ', '.join(part for part in (keep and f'subjects={",".join(keep)}',
                                            drop and f'exclude_subjects={",".join(drop)}') if part)
  if not len(indices):
    raise ValueError(f'{source!r}: {description} keeps no record (subjects present: '
                     f'{", ".join(present)})')
  return SubsetSource(source, indices, description)
