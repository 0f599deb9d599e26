"""A seeded validation slice of a training split: model selection that never looks at the test set.

NTU RGB+D has train and test splits only, 3DPW and the mesh H36M likewise (the official code keeps
the epoch with the best test result). `split(source, fraction, seed)` holds out a seeded `fraction`
of the training records: the trainer trains on the rest and the `val` evaluators pick the best
checkpoint on the slice.

The slice is made of whole recordings, never single clips: training clips overlap (mesh: 16
frames every 8, H36M: 243 every 81), so a clip held out on its own shares most of its frames with
its neighbours in training. `sequence_of` names a record's recording: its `source` (mesh, H36M,
AMASS clips) without the H36M camera, for the four cameras of one take have the same 3D labels; or
its `frame_dir` (NTU, own action clips) without the NTU camera, for the three views of one
performance are one motion.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np

from mbjax.data.subjects import SubsetSource

_H36M_CAMERA = re.compile(r'_ca_?\d+$')  # s_01_act_02_subact_01_ca_01 -> s_01_act_02_subact_01
_NTU_NAME = re.compile(r'^(S\d{3})C\d{3}(P\d{3}R\d{3}A\d{3})$')  # S001C002P003R001A010


def _text(value) -> str:
  if isinstance(value, np.ndarray):
    value = value.item()
  return value.decode('utf-8') if isinstance(value, (bytes, np.bytes_)) else str(value)


def sequence_of(record: dict) -> str:
  """The recording of a record's clip (module docstring): camera views of one take are one."""
  if 'source' in record:
    return _H36M_CAMERA.sub('', _text(record['source']))
  if 'frame_dir' in record:
    name = _text(record['frame_dir'])
    match = _NTU_NAME.match(name)
    return ''.join(match.groups()) if match else name
  raise ValueError(f'holdout: a record without `source` or `frame_dir` (fields: '
                   f'{", ".join(sorted(record))}): its recording is unknown, so a validation '
                   'slice could share frames with training')


def holdout_groups(groups: Sequence, fraction: float, seed: int) -> np.ndarray:
  """Sorted indices of the held-out records: whole groups (one per record in `groups`), taken in
  an order drawn by `seed` until they hold at least ceil(fraction * n) records.

  The same (groups, fraction, seed) always gives the same slice; 0 holds out nothing. With one
  group per record this is `holdout_indices`.
  """
  if not 0 <= fraction < 1:
    raise ValueError(f'holdout: fraction must be in [0, 1), got {fraction}')
  n = len(groups)
  count = math.ceil(fraction * n)
  if not count:
    return np.zeros(0, np.int64)
  names, inverse = np.unique(np.asarray(groups), return_inverse=True)
  order = np.random.default_rng([seed, n]).permutation(len(names))
  taken = np.cumsum(np.bincount(inverse, minlength=len(names))[order])
  k = int(np.searchsorted(taken, count)) + 1  # groups until count records are held out
  if k >= len(names):
    raise ValueError(f'holdout: fraction {fraction} of {n} records in {len(names)} recordings '
                     'leaves none to train on')
  return np.flatnonzero(np.isin(inverse, order[:k]))


def holdout_indices(n: int, fraction: float, seed: int) -> np.ndarray:
  """Sorted indices of ceil(fraction * n) of range(n), drawn by `seed` (every record its own
  recording)."""
  return holdout_groups(np.arange(n), fraction, seed)


# (path, split, records) -> the recording of every record, for built splits.
_CACHE: dict[tuple, np.ndarray] = {}


def record_sequences(source: Any) -> np.ndarray:
  """`sequence_of` every record of `source`, in order (reads each record once; remembered for a
  built split, one with a `path` and a `split`)."""
  path, split_name = getattr(source, 'path', None), getattr(source, 'split', None)
  key = (path, split_name, len(source))
  if path is not None and split_name is not None and key in _CACHE:
    return _CACHE[key]
  out = []
  for index in range(len(source)):
    try:
      out.append(sequence_of(source[index]))
    except ValueError as e:
      raise ValueError(f'{source!r}: record {index}: {e}') from None
  sequences = np.asarray(out, dtype=object)
  if path is not None and split_name is not None:
    _CACHE[key] = sequences
  return sequences


def split(source: Any, fraction: float, seed: int) -> tuple[SubsetSource, SubsetSource]:
  """(records to train on, held-out records) of `source`: disjoint, together all of it, and no
  recording on both sides."""
  if not fraction:
    held = np.zeros(0, np.int64)
  else:
    held = holdout_groups(record_sequences(source).astype(str), fraction, seed)
  rest = np.setdiff1d(np.arange(len(source)), held)
  return (SubsetSource(source, rest, f'training part (without {fraction:g} held out)'),
          SubsetSource(source, held, f'held-out {fraction:g} (whole recordings)'))
