"""A seeded validation slice of a training split: model selection that never looks at the test set.

NTU RGB+D has train and test splits only (the official code keeps the epoch with the best test
accuracy). `split(source, fraction, seed)` holds out a seeded `fraction` of the training records:
the trainer trains on the rest and the `val` evaluator picks the best checkpoint on the slice.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mbjax.data.subjects import SubsetSource


def holdout_indices(n: int, fraction: float, seed: int) -> np.ndarray:
  """Sorted indices of the held-out records: ceil(fraction * n) of range(n), drawn by `seed`.

  The same (n, fraction, seed) always gives the same slice; 0 holds out nothing.
  """
  if not 0 <= fraction < 1:
    raise ValueError(f'holdout: fraction must be in [0, 1), got {fraction}')
  count = math.ceil(fraction * n)
  if count >= n and n:
    raise ValueError(f'holdout: fraction {fraction} of {n} records leaves none to train on')
  return np.sort(np.random.default_rng([seed, n]).permutation(n)[:count])


def split(source: Any, fraction: float, seed: int) -> tuple[SubsetSource, SubsetSource]:
  """(records to train on, held-out records) of `source`; disjoint, together all of it."""
  held = holdout_indices(len(source), fraction, seed)
  rest = np.setdiff1d(np.arange(len(source)), held)
  return (SubsetSource(source, rest, f'training part (without {fraction:g} held out)'),
          SubsetSource(source, held, f'held-out {fraction:g}'))
