"""TensorBoard event files written without TensorFlow (`clu`'s writers import it; we do not).

An event file is TFRecord framing (length, masked CRC-32C of the length, payload, masked CRC-32C
of the payload) around `Event` protobufs, encoded here field by field.
"""

from __future__ import annotations

import io
import os
import pathlib
import socket
import struct
import time
from typing import Any, Mapping

import jax
import numpy as np

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
# Writer.
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
