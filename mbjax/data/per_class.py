"""Class-paired batch orders: `n_views` clips of each of `global_batch / n_views` classes per batch.

The official one-shot training (`train_action_1shot.py`) samples with pytorch-metric-learning's
`MPerClassSampler(labels, m=n_views, batch_size, length_before_new_iter=len(dataset))`: every
batch holds `batch_size / m` distinct classes and `m` clips of each (drawn without replacement
when the class has that many, else with), and an epoch is `len(dataset) // batch_size` batches.

`ClassBatchOrder` gives that order as a `pipelines.Phase.order`, so `HostBatches` draws it from
(seed, phase, epoch) like any other epoch permutation. One difference from the official sampler,
which draws each batch's classes afresh: the classes of successive batches are read from a stream
of class permutations (a class already in the batch waits for the next one), so every class
comes once per pass over a permutation (at most `ceil(num_classes / classes_per_batch) + 1`
batches), and within every two passes.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def source_labels(source: Any, key: str = 'label') -> np.ndarray:
  """(N,) int64 `key` of every record of `source` (reads each record once)."""
  return np.asarray([int(np.asarray(source[i][key])) for i in range(len(source))], np.int64)


def _batch_classes(classes: np.ndarray, k: int, steps: int,
                   rng: np.random.Generator) -> np.ndarray:
  """(steps, k) classes, distinct within each row, read from a stream of permutations."""
  stream: list[int] = []
  rows = []
  for _ in range(steps):
    chosen: list[int] = []
    waiting: list[int] = []
    while len(chosen) < k:
      if not stream:
        stream = rng.permutation(classes).tolist()
      c = stream.pop(0)
      (waiting if c in chosen else chosen).append(c)
    stream = waiting + stream
    rows.append(chosen)
  return np.asarray(rows, np.int64).reshape(steps, k)


def class_batch_order(labels: Sequence[int], rng: np.random.Generator, *, n_views: int,
                      global_batch: int, steps: int) -> np.ndarray:
  """(steps * global_batch,) record indices: batch b = n_views clips of each of its classes.

  Args:
    labels: (N,) the class of each record.
    rng: the epoch's generator.
    n_views: clips per class in a batch (official `n_views`, 2).
    global_batch: clips per batch, a multiple of n_views.
    steps: batches in the epoch.

  Returns:
    Within a batch the clips of a class are adjacent: rows [2c, 2c + 1] for class slot c when
    n_views is 2.
  """
  labels = np.asarray(labels, np.int64)
  if n_views < 1 or global_batch % n_views:
    raise ValueError(f'class_batch_order: global batch {global_batch} is not a multiple of '
                     f'n_views={n_views}')
  classes = np.unique(labels)
  k = global_batch // n_views
  if len(classes) < k:
    raise ValueError(f'class_batch_order: a batch of {global_batch} needs {k} classes of '
                     f'{n_views} clips, but the source has only {len(classes)} classes')
  members = {int(c): np.flatnonzero(labels == c) for c in classes}
  order = []
  for c in _batch_classes(classes, k, steps, rng).reshape(-1):
    pool = members[int(c)]
    order.append(rng.choice(pool, n_views, replace=len(pool) < n_views))
  return np.concatenate(order) if order else np.zeros(0, np.int64)


class ClassBatchOrder:
  """`Phase.order` of class-paired batches over `source` (labels read on first use).

  Picklable (grain worker processes get a copy); the labels are cached once read.
  """

  def __init__(self, source: Any, *, n_views: int, global_batch: int, key: str = 'label'):
    if n_views < 1 or global_batch % n_views:
      raise ValueError(f'ClassBatchOrder: global batch {global_batch} is not a multiple of '
                       f'n_views={n_views}')
    self.source = source
    self.n_views = n_views
    self.global_batch = global_batch
    self.key = key
    self._labels: np.ndarray | None = None

  @property
  def labels(self) -> np.ndarray:
    if self._labels is None:
      self._labels = source_labels(self.source, self.key)
    return self._labels

  def __call__(self, rng: np.random.Generator) -> np.ndarray:
    steps = len(self.source) // self.global_batch  # as Curriculum.steps_in (official length)
    return class_batch_order(self.labels, rng, n_views=self.n_views,
                             global_batch=self.global_batch, steps=steps)
