"""The one eval batcher: a model over many clips in fixed-size batches.

Every call of `predict` gets the same batch shape (the last batch is padded with zeros and the
padding rows dropped), so a jitted model compiles once per evaluation.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def predict_batched(predict: Callable[[np.ndarray], Any], inputs: np.ndarray, batch_size: int, *,
                    progress: str | None = None) -> np.ndarray:
  """`predict` over the rows of `inputs`, `min(batch_size, N)` rows a call, outputs concatenated.

  Args:
    predict: (B, ...) -> (B, ...) array (jax or numpy).
    inputs: (N, ...) array.
    batch_size: rows per call (>= 1).
    progress: a tqdm bar with this description (rows/s), or None for no bar.
  """
  inputs = np.asarray(inputs)
  if batch_size < 1:
    raise ValueError(f'predict_batched: batch_size must be >= 1, got {batch_size}')
  n = len(inputs)
  if n == 0:
    raise ValueError('predict_batched: no inputs to predict')
  size = min(batch_size, n)
  bar = None
  if progress:
    import tqdm
    bar = tqdm.tqdm(total=n, unit='clip', desc=progress, dynamic_ncols=True)
  outputs = []
  for start in range(0, n, size):
    batch = inputs[start:start + size]
    count = len(batch)
    if count < size:
      batch = np.concatenate([batch, np.zeros((size - count,) + batch.shape[1:], batch.dtype)])
    outputs.append(np.asarray(predict(batch))[:count])
    if bar is not None:
      bar.update(count)
  if bar is not None:
    bar.close()
  return np.concatenate(outputs)
