"""Metric writers of a run: JSONL, TensorBoard (mbjax.logs.tensorboard), and both together.

* `JsonlWriter` appends one JSON object per step; on resume it drops the steps a crashed run wrote
  past the restored checkpoint, so the file never holds a step twice. `read_jsonl` reads it back.
* `MetricWriter` fans out to JSONL and TensorBoard under a workdir, and does nothing on processes
  other than 0.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Any, Mapping

import jax
import numpy as np

from mbjax.logs.tensorboard import TensorBoardWriter

# ---------------------------------------------------------------------------------------------
# Conversions.
# ---------------------------------------------------------------------------------------------


def to_float_dict(metrics: Mapping[str, Any]) -> dict[str, float]:
  """Device scalars -> Python floats, with a single `jax.device_get` for the whole dict."""
  host = jax.device_get(dict(metrics))
  out = {}
  for name, value in host.items():
    array = np.asarray(value)
    if array.size != 1:
      raise ValueError(f'to_float_dict: metric {name!r} has shape {array.shape}, expected a scalar')
    out[name] = float(array.reshape(()))
  return out


def json_value(value: Any) -> Any:
  """Numpy / JAX values -> JSON-native values (scalars -> float / int / bool, arrays -> lists)."""
  if isinstance(value, (bool, int, float, str)) or value is None:
    return value
  if isinstance(value, Mapping):
    return {str(k): json_value(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_value(v) for v in value]
  if isinstance(value, (np.ndarray, np.generic, jax.Array)):
    return np.asarray(value).tolist()  # 0-d -> Python scalar, n-d -> nested lists
  if hasattr(value, 'to_dict'):  # ml_collections.ConfigDict
    return json_value(value.to_dict())
  return str(value)


def _write_json(path: pathlib.Path, data: Mapping[str, Any]) -> None:
  """Writes through a temporary file so a crash never leaves half a JSON file."""
  tmp = path.with_name(path.name + '.tmp')
  tmp.write_text(json.dumps(json_value(data), indent=2, sort_keys=True) + '\n')
  os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Writers.
# ---------------------------------------------------------------------------------------------


class JsonlWriter:
  """Appends `{"step": ..., "time": ..., **metrics}` lines to `path`, flushed after each line.

  Args:
    path: the JSONL file (its folder is created).
    resume_step: on resume, the restored step. Lines of steps >= resume_step (written by a run
      that crashed after its last checkpoint) and a torn last line are dropped before appending.
  """

  def __init__(self, path: str | os.PathLike, *, resume_step: int | None = None):
    self.path = pathlib.Path(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    if resume_step is not None and self.path.exists():
      self._truncate(resume_step)
    self._file = open(self.path, 'a')

  def _truncate(self, resume_step: int) -> None:
    kept, dropped = [], 0
    for line in self.path.read_text().splitlines():
      try:
        step = json.loads(line)['step']
      except (ValueError, KeyError, TypeError):  # torn line of a crash mid-write
        dropped += 1
        continue
      if step < resume_step:
        kept.append(line + '\n')
      else:
        dropped += 1
    if dropped:
      tmp = self.path.with_name(self.path.name + '.tmp')
      tmp.write_text(''.join(kept))
      os.replace(tmp, self.path)

  def scalars(self, step: int, metrics: Mapping[str, Any]) -> None:
    """One line for `step`; numpy / JAX values become Python numbers (arrays become lists)."""
    if self._file is None:
      raise ValueError(f'JsonlWriter: {self.path} is closed')
    record = {'step': int(step), 'time': time.time()}
    for name, value in metrics.items():
      if name in record:
        raise ValueError(f'JsonlWriter: metric name {name!r} at step {step} is reserved')
      record[name] = json_value(value)
    self._file.write(json.dumps(record) + '\n')
    self._file.flush()

  def flush(self) -> None:
    if self._file is not None:
      self._file.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None

  def __enter__(self) -> JsonlWriter:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def read_jsonl(path: str | os.PathLike, *, skip_torn: bool = False) -> list[dict]:
  """All records of a JSONL metrics file; `skip_torn` leaves out lines that do not parse (a torn
  last line of a crash mid-write, before a resumed writer drops it)."""
  records = []
  with open(path) as f:
    for line in f:
      if not line.strip():
        continue
      try:
        records.append(json.loads(line))
      except ValueError:
        if not skip_torn:
          raise
  return records


def _read(pending):
  return None if pending is None else (pending[0], to_float_dict(pending[1]))


class MetricWriter:
  """JSONL (`workdir/metrics.jsonl`) and TensorBoard (`workdir/tb/`) together, process 0 only.

  Args:
    workdir: the run folder.
    is_primary: whether this process writes; None -> `jax.process_index() == 0`. On other
      processes every method does nothing (and no file is created).
    resume_step: the restored step on resume (see `JsonlWriter` and `TensorBoardWriter`).
  """

  def __init__(self, workdir: str | os.PathLike, *, is_primary: bool | None = None,
               resume_step: int | None = None):
    self.workdir = pathlib.Path(workdir)
    self.is_primary = jax.process_index() == 0 if is_primary is None else bool(is_primary)
    self._jsonl = self._tb = None
    self._pending = None  # (step, device metrics) of the step in flight
    if self.is_primary:
      self._jsonl = JsonlWriter(self.workdir / 'metrics.jsonl', resume_step=resume_step)
      self._tb = TensorBoardWriter(self.workdir / 'tb', start_step=resume_step)

  def scalars(self, step: int, metrics: Mapping[str, Any]) -> None:
    """Scalars to both writers (one `jax.device_get` for all of them)."""
    if not self.is_primary or not metrics:
      return
    metrics = to_float_dict(metrics)
    self._jsonl.scalars(step, metrics)
    self._tb.scalars(step, metrics)

  def push(self, step: int, metrics: Mapping[str, Any]) -> tuple[int, dict] | None:
    """Holds the device metrics of the step just dispatched and returns the previous step's as
    (step, floats). Reading one step behind never waits for the step in flight, so the host
    keeps the device busy. Every process reads (the trainer checks each loss); nothing is written
    here."""
    previous, self._pending = self._pending, (step, metrics)
    return _read(previous)

  def pop(self) -> tuple[int, dict] | None:
    """The held step's metrics as (step, floats), or None; before a save or an evaluation (which
    must see a finite loss first) and at the end."""
    pending, self._pending = self._pending, None
    return _read(pending)

  def image(self, step: int, tag: str, image: np.ndarray) -> None:
    """A uint8 (H, W, 3) image to TensorBoard."""
    if self.is_primary:
      self._tb.image(step, tag, image)

  def write_config(self, config: Any) -> None:
    """`workdir/config.json` (a ConfigDict or a mapping)."""
    if self.is_primary:
      self.workdir.mkdir(parents=True, exist_ok=True)
      _write_json(self.workdir / 'config.json', json_value(config))

  def write_summary(self, summary: Mapping[str, Any]) -> None:
    """`workdir/summary.json`: final numbers of the run (replaced on each call)."""
    if self.is_primary:
      self.workdir.mkdir(parents=True, exist_ok=True)
      _write_json(self.workdir / 'summary.json', summary)

  def flush(self) -> None:
    if self.is_primary:
      self._jsonl.flush()
      self._tb.flush()

  def close(self) -> None:
    if self.is_primary:
      self._jsonl.close()
      self._tb.close()

  def __enter__(self) -> MetricWriter:
    return self

  def __exit__(self, *exc) -> None:
    self.close()
