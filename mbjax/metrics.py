"""Metric writers that need no TensorFlow, and the console progress line of the trainer.

* `TensorBoardWriter` writes a TensorBoard event file by hand: TFRecord framing (length, masked
  CRC-32C of the length, payload, masked CRC-32C of the payload) around `Event` protobufs encoded
  field by field. `clu`'s writers import TensorFlow, which we do not install.
* `JsonlWriter` appends one JSON object per step; on resume it drops the steps a crashed run wrote
  past the restored checkpoint, so the file never holds a step twice.
* `MetricWriter` fans out to both under a workdir, and does nothing on processes other than 0.
* `Progress` prints steps/s, clips/s, TFLOP/s, MFU and ETA with the compile step and paused time
  (evaluation, checkpointing) left out of the rates.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import socket
import struct
import sys
import time
from typing import Any, Callable, Mapping

import jax
import numpy as np

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


def _json_value(value: Any) -> Any:
  """Numpy / JAX values -> JSON-native values (scalars -> float / int / bool, arrays -> lists)."""
  if isinstance(value, (bool, int, float, str)) or value is None:
    return value
  if isinstance(value, Mapping):
    return {str(k): _json_value(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_value(v) for v in value]
  if isinstance(value, (np.ndarray, np.generic, jax.Array)):
    return np.asarray(value).tolist()  # 0-d -> Python scalar, n-d -> nested lists
  if hasattr(value, 'to_dict'):  # ml_collections.ConfigDict
    return _json_value(value.to_dict())
  return str(value)


def _write_json(path: pathlib.Path, data: Mapping[str, Any]) -> None:
  """Writes through a temporary file so a crash never leaves half a JSON file."""
  tmp = path.with_name(path.name + '.tmp')
  tmp.write_text(json.dumps(_json_value(data), indent=2, sort_keys=True) + '\n')
  os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# TFRecord framing and protobuf encoding.
# ---------------------------------------------------------------------------------------------


def _crc32c_table() -> tuple[int, ...]:
  """Byte table of CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)."""
  crc = np.arange(256, dtype=np.uint32)
  for _ in range(8):
    crc = np.where(crc & 1, (crc >> 1) ^ np.uint32(0x82F63B78), crc >> 1)
  return tuple(int(c) for c in crc)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  """CRC-32C of `data` (check value: crc32c(b'123456789') == 0xE3069283)."""
  table = _CRC32C_TABLE
  crc = 0xFFFFFFFF
  for byte in data:
    crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
  """The CRC TFRecord stores: rotated right by 15 bits plus a constant."""
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(payload: bytes) -> bytes:
  """uint64 length, masked CRC of the length, payload, masked CRC of the payload (little endian)."""
  length = struct.pack('<Q', len(payload))
  return (length + struct.pack('<I', masked_crc32c(length)) + payload +
          struct.pack('<I', masked_crc32c(payload)))


def _varint(value: int) -> bytes:
  value &= (1 << 64) - 1  # negative int64 -> ten-byte two's complement, as protobuf does
  out = bytearray()
  while True:
    bits = value & 0x7F
    value >>= 7
    if value:
      out.append(bits | 0x80)
    else:
      out.append(bits)
      return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
  return _varint((field << 3) | wire_type)


def _pb_varint(field: int, value: int) -> bytes:
  return _key(field, 0) + _varint(int(value))


def _pb_double(field: int, value: float) -> bytes:
  return _key(field, 1) + struct.pack('<d', value)


def _pb_float(field: int, value: float) -> bytes:
  return _key(field, 5) + struct.pack('<f', value)


def _pb_bytes(field: int, value: bytes) -> bytes:
  return _key(field, 2) + _varint(len(value)) + value


# Field numbers of tensorflow/core/util/event.proto and tensorflow/core/framework/summary.proto.
# Event field 6 is the deprecated log_message; SessionLog is 7.
_EVENT_WALL_TIME, _EVENT_STEP, _EVENT_FILE_VERSION, _EVENT_SUMMARY = 1, 2, 3, 5
_EVENT_SESSION_LOG = 7
_SUMMARY_VALUE = 1
_VALUE_TAG, _VALUE_SIMPLE_VALUE, _VALUE_IMAGE = 1, 2, 4
_IMAGE_HEIGHT, _IMAGE_WIDTH, _IMAGE_COLORSPACE, _IMAGE_ENCODED = 1, 2, 3, 4
_SESSION_LOG_STATUS, _SESSION_LOG_START = 1, 1
FILE_VERSION = b'brain.Event:2'


def _event(step: int, body: bytes, wall_time: float | None = None) -> bytes:
  wall_time = time.time() if wall_time is None else wall_time
  return _pb_double(_EVENT_WALL_TIME, wall_time) + _pb_varint(_EVENT_STEP, step) + body


def _summary_value(tag: str, body: bytes) -> bytes:
  return _pb_bytes(_SUMMARY_VALUE, _pb_bytes(_VALUE_TAG, tag.encode('utf-8')) + body)


def _png(image: np.ndarray, tag: str) -> tuple[bytes, int]:
  """uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> PNG bytes and the TensorBoard colorspace."""
  from PIL import Image  # Pillow is only needed by runs that log images

  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f'TensorBoardWriter.image: image {tag!r} has dtype {image.dtype}, '
                     'expected uint8')
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim == 2:
    return _encode_png(Image.fromarray(image, mode='L')), 1
  if image.ndim == 3 and image.shape[-1] in (3, 4):
    mode = 'RGB' if image.shape[-1] == 3 else 'RGBA'
    return _encode_png(Image.fromarray(image, mode=mode)), image.shape[-1]
  raise ValueError(f'TensorBoardWriter.image: image {tag!r} has shape {image.shape}, expected '
                   '(H, W), (H, W, 1), (H, W, 3) or (H, W, 4)')


def _encode_png(image) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format='PNG')
  return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Writers.
# ---------------------------------------------------------------------------------------------


class TensorBoardWriter:
  """Writes `events.out.tfevents.<time>.<host>` in `logdir`, readable by TensorBoard.

  Args:
    logdir: folder of the event file (created).
    start_step: on resume, the restored step. A SessionLog START event at this step tells
      TensorBoard to drop the points a crashed run wrote at steps >= start_step.
    flush_secs: records are buffered and flushed on a write at least this long after the last
      flush, and on `flush()` / `close()`.
  """

  def __init__(self, logdir: str | os.PathLike, *, start_step: int | None = None,
               flush_secs: float = 10.0):
    self.logdir = pathlib.Path(logdir)
    self.logdir.mkdir(parents=True, exist_ok=True)
    name = f'events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}'
    path, n = self.logdir / name, 0
    while path.exists():  # two writers in the same second (e.g. a quick restart): never append
      n += 1
      path = self.logdir / f'{name}.{n}'
    self.path = path
    self._file = open(path, 'wb')
    self._flush_secs = flush_secs
    self._last_flush = time.monotonic()
    self._write(_event(0, _pb_bytes(_EVENT_FILE_VERSION, FILE_VERSION)))
    if start_step is not None:
      session_log = _pb_varint(_SESSION_LOG_STATUS, _SESSION_LOG_START)
      self._write(_event(start_step, _pb_bytes(_EVENT_SESSION_LOG, session_log)))
    self.flush()

  def _write(self, event: bytes) -> None:
    if self._file is None:
      raise ValueError(f'TensorBoardWriter: {self.path} is closed')
    self._file.write(tfrecord_frame(event))
    if time.monotonic() - self._last_flush >= self._flush_secs:
      self.flush()

  def scalars(self, step: int, metrics: Mapping[str, Any]) -> None:
    """One event holding every scalar of `metrics` (name -> number or 0-d array) at `step`."""
    values = []
    for tag, value in metrics.items():
      array = np.asarray(jax.device_get(value))
      if array.size != 1 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f'TensorBoardWriter.scalars: {tag!r} at step {step} is {array.dtype} '
                         f'{array.shape}, expected a real scalar')
      values.append(_summary_value(tag, _pb_float(_VALUE_SIMPLE_VALUE, float(array.reshape(())))))
    if values:
      self._write(_event(step, _pb_bytes(_EVENT_SUMMARY, b''.join(values))))

  def image(self, step: int, tag: str, image: np.ndarray) -> None:
    """A uint8 image, (H, W, 3) RGB (also (H, W) gray or (H, W, 4) RGBA), stored as PNG."""
    png, colorspace = _png(image, tag)
    height, width = np.asarray(image).shape[:2]
    body = (_pb_varint(_IMAGE_HEIGHT, height) + _pb_varint(_IMAGE_WIDTH, width) +
            _pb_varint(_IMAGE_COLORSPACE, colorspace) + _pb_bytes(_IMAGE_ENCODED, png))
    value = _summary_value(tag, _pb_bytes(_VALUE_IMAGE, body))
    self._write(_event(step, _pb_bytes(_EVENT_SUMMARY, value)))

  def flush(self) -> None:
    if self._file is not None:
      self._file.flush()
      self._last_flush = time.monotonic()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None

  def __enter__(self) -> TensorBoardWriter:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


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
      record[name] = _json_value(value)
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


def read_jsonl(path: str | os.PathLike) -> list[dict]:
  """All records of a JSONL metrics file."""
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


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

  def image(self, step: int, tag: str, image: np.ndarray) -> None:
    """A uint8 (H, W, 3) image to TensorBoard."""
    if self.is_primary:
      self._tb.image(step, tag, image)

  def write_config(self, config: Any) -> None:
    """`workdir/config.json` (a ConfigDict or a mapping)."""
    if self.is_primary:
      self.workdir.mkdir(parents=True, exist_ok=True)
      _write_json(self.workdir / 'config.json', _json_value(config))

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


# ---------------------------------------------------------------------------------------------
# Progress line.
# ---------------------------------------------------------------------------------------------


def _format_duration(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return f'{hours}:{minutes:02d}:{secs:02d}'


class Progress:
  """Console progress of training: a tqdm bar on a terminal, a plain line every N steps otherwise.

  Rates count from the first `update` on, so the first (compile) step is excluded, and time spent
  inside `pause()` (evaluation, checkpoints) is excluded too. They are averages over the run so far.

  Args:
    total_steps: the last step of the run.
    start_step: the step the run starts from (non-zero on resume).
    clips_per_step: clips in one global batch.
    desc: label in front of the line.
    num_devices: devices sharing a step (None -> `jax.device_count()`), for the per-device rates.
    flops_per_step: model FLOPs of one global train step; enables TFLOP/s per device.
    peak_flops_per_device: peak FLOP/s of one device; with `flops_per_step` enables MFU.
    show: metric names shown from `update(step, metrics)` besides the rates.
    print_every: steps between plain lines when not on a terminal.
    file: output stream (default stdout).
    use_bar: force the tqdm bar on or off (default: on when `file` is a terminal).
    clock: seconds since some origin (tests pass a fake one).
  """

  def __init__(self, total_steps: int, *, start_step: int = 0, clips_per_step: int,
               desc: str = 'train', num_devices: int | None = None,
               flops_per_step: float | None = None, peak_flops_per_device: float | None = None,
               show: tuple[str, ...] = ('loss',), print_every: int = 100, file=None,
               use_bar: bool | None = None, clock: Callable[[], float] = time.perf_counter):
    self.total_steps = int(total_steps)
    self.step = int(start_step)
    self.clips_per_step = clips_per_step
    self.desc = desc
    self.num_devices = jax.device_count() if num_devices is None else int(num_devices)
    self.flops_per_step = flops_per_step
    self.peak_flops_per_device = peak_flops_per_device
    self.show = tuple(show)
    self.print_every = max(1, int(print_every))
    self.file = sys.stdout if file is None else file
    self._clock = clock
    self._first_time = self._first_step = None  # set by the first update (after compile)
    self._paused_total = 0.0  # paused seconds since the first update
    self._pause_depth = 0
    self._pause_start = None
    self._metrics: dict[str, float] = {}
    if use_bar is None:
      use_bar = bool(getattr(self.file, 'isatty', lambda: False)())
    self._bar = None
    if use_bar:
      import tqdm  # only on a terminal

      self._bar = tqdm.tqdm(total=self.total_steps, initial=self.step, desc=desc, file=self.file,
                            dynamic_ncols=True,
                            bar_format='{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} '
                                       '{postfix}')  # tqdm's own rate would count compile time

  # -- pausing ---------------------------------------------------------------------------------

  def pause(self) -> contextlib.AbstractContextManager:
    """Stops the clock until `resume()`; as a context manager, resumes on exit."""
    if self._pause_depth == 0:
      self._pause_start = self._clock()
    self._pause_depth += 1
    return _Resume(self)

  def resume(self) -> None:
    if self._pause_depth == 0:
      raise ValueError('Progress.resume() without a matching pause()')
    self._pause_depth -= 1
    if self._pause_depth == 0:
      if self._first_time is not None:
        # Only pauses after the first update shorten the measured time; one spanning the first
        # update counts from there.
        self._paused_total += self._clock() - max(self._pause_start, self._first_time)
      self._pause_start = None

  # -- rates -----------------------------------------------------------------------------------

  def _active_seconds(self) -> float:
    now = self._clock()
    active = now - self._first_time - self._paused_total
    if self._pause_start is not None:  # update called while paused
      active -= now - max(self._pause_start, self._first_time)
    return active

  def rates(self) -> dict[str, float]:
    """steps_per_s, clips_per_s, clips_per_s_per_device, eta_s (and tflops_per_device, mfu when
    FLOPs were given); empty until two updates have been seen."""
    if self._first_time is None or self.step <= self._first_step:
      return {}
    active = self._active_seconds()
    if active <= 0:
      return {}
    steps_per_s = (self.step - self._first_step) / active
    out = {
        'steps_per_s': steps_per_s,
        'clips_per_s': steps_per_s * self.clips_per_step,
        'clips_per_s_per_device': steps_per_s * self.clips_per_step / self.num_devices,
        'eta_s': max(0, self.total_steps - self.step) / steps_per_s,
    }
    if self.flops_per_step:
      out['tflops_per_device'] = self.flops_per_step * steps_per_s / self.num_devices / 1e12
      if self.peak_flops_per_device:
        out['mfu'] = out['tflops_per_device'] * 1e12 / self.peak_flops_per_device
    return out

  def line(self) -> str:
    """The fields of the progress line, e.g. 'loss 0.0412 | 3.10 steps/s | 397 clips/s | ...'."""
    parts = []
    for name in self.show:
      if name in self._metrics:
        parts.append(f'{name} {self._metrics[name]:.4g}')
    r = self.rates()
    if r:
      parts += [f'{r["steps_per_s"]:.3g} steps/s', f'{r["clips_per_s"]:.4g} clips/s']
      if self.num_devices > 1:
        parts.append(f'{r["clips_per_s_per_device"]:.4g} clips/s/dev')
      if 'tflops_per_device' in r:
        parts.append(f'{r["tflops_per_device"]:.3g} TFLOP/s/dev')
      if 'mfu' in r:
        parts.append(f'MFU {100 * r["mfu"]:.1f}%')
      parts.append(f'ETA {_format_duration(r["eta_s"])}')
    return ' | '.join(parts)

  # -- updates ---------------------------------------------------------------------------------

  def update(self, step: int, metrics: Mapping[str, Any] | None = None) -> None:
    """Records that `step` steps are done; `metrics` may hold device scalars (read once)."""
    step = int(step)
    if self._first_time is None:
      self._first_time, self._first_step = self._clock(), step
    self.step = step
    if metrics:
      shown = {k: v for k, v in metrics.items() if k in self.show}
      self._metrics.update(to_float_dict(shown))
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      self._bar.set_postfix_str(self.line(), refresh=True)
    elif step == self._first_step or step % self.print_every == 0 or step >= self.total_steps:
      fields = self.line()
      print(f'{self.desc} step {step}/{self.total_steps}' + (f' | {fields}' if fields else ''),
            file=self.file, flush=True)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None

  def __enter__(self) -> Progress:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


class _Resume(contextlib.AbstractContextManager):
  """What `Progress.pause()` returns: leaving the `with` block resumes the clock."""

  def __init__(self, progress: Progress):
    self._progress = progress

  def __exit__(self, *exc) -> None:
    self._progress.resume()
