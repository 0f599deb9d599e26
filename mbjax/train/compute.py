"""Compute accounting of a training run: parameters, FLOPs, clips, frames and wall time.

Every run's metrics carry the cumulative `compute/flops`, `compute/clips`, `compute/frames` and
`compute/wall_s` at each logged step, and its summary adds the parameter counts (with and without
embeddings), the FLOPs of one step and the MFU where the device's peak is known. Scaling-law
analysis (`python -m mbjax.scaling`) reads them back.

FLOPs are the task's analytic count (`Task.flops_per_step`: 3 x the forward matmuls, attention
included; tests/test_compute.py checks it against XLA's cost analysis of the trainer's step), at
the longest clip of `example_batch`, as the progress line's TFLOP/s. Wall time accumulates over
resumes: a resumed run starts from the last `compute/wall_s` its metrics.jsonl holds.
"""

from __future__ import annotations

import math
import os
import time

import jax

from mbjax.logs import metric_writer

# Parameters that hold embeddings rather than computation: the joint (input) projection and the
# joint and frame position tables. Scaling laws count N without them, as Kaplan et al. (2020).
EMBEDDING_NAMES = ('joints_embed', 'pos_embed', 'temp_embed')


def parameter_counts(params) -> dict[str, int]:
  """`params` (total parameter count) and `params_non_embedding` (without EMBEDDING_NAMES) of a
  params tree of arrays or shapes."""
  total = embedding = 0
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    size = math.prod(getattr(leaf, 'shape', ()))
    total += size
    names = jax.tree_util.keystr(path, simple=True, separator='/').split('/')
    if any(name in EMBEDDING_NAMES for name in names):
      embedding += size
  return dict(params=int(total), params_non_embedding=int(total - embedding))


def _logged_wall_s(workdir: str, step: int) -> float:
  """The last `compute/wall_s` logged at or before `step` in the run's metrics.jsonl (0 if none)."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not step or not os.path.exists(path):
    return 0.0
  wall = 0.0
  for record in metric_writer.read_jsonl(path, skip_torn=True):
    if record.get('step', 0) <= step and 'compute/wall_s' in record:
      wall = float(record['compute/wall_s'])
  return wall


class ComputeMeter:
  """Cumulative compute of a run, from its step count (every step is one global batch)."""

  def __init__(self, *, params, example: dict, flops_per_step: float | None, workdir: str,
               start_step: int = 0, started: float | None = None):
    """`started`: the `time.perf_counter()` at which this session began (now if None)."""
    self.counts = parameter_counts(params)
    self.clips_per_step = int(example['input'].shape[0])
    self.frames_per_clip = int(example['input'].shape[1]) if example['input'].ndim > 1 else 1
    self.flops_per_step = flops_per_step
    self._wall_before = _logged_wall_s(workdir, start_step)
    self._start = time.perf_counter() if started is None else started

  def wall_s(self) -> float:
    """Seconds of this run so far, over all its sessions (setup and compiles included)."""
    return self._wall_before + time.perf_counter() - self._start

  def at(self, step: int) -> dict[str, float]:
    """The cumulative `compute/*` metrics after `step` steps."""
    clips = step * self.clips_per_step
    out = {'compute/clips': float(clips), 'compute/frames': float(clips * self.frames_per_clip),
           'compute/wall_s': round(self.wall_s(), 3)}
    if self.flops_per_step:
      out['compute/flops'] = float(step * self.flops_per_step)
    return out

  def summary(self, step: int, rates: dict) -> dict:
    """The summary's `compute/*` entries: counts, FLOPs per step and in all, MFU if known."""
    out = {f'compute/{k}': v for k, v in self.counts.items()}
    if self.flops_per_step:
      out['compute/flops_per_step'] = float(self.flops_per_step)
    out.update(self.at(step))
    if 'mfu' in rates:
      out['compute/mfu'] = float(rates['mfu'])
    return out
