"""Metric writers read back byte by byte, JSONL resume, process-0 gating, and the progress rates."""

import io
import json
import struct
import time

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from mbjax import metrics

# ---------------------------------------------------------------------------------------------
# An independent reader: bitwise CRC-32C (no table) and a generic protobuf decoder.
# ---------------------------------------------------------------------------------------------


def _crc32c_bitwise(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for byte in data:
    crc ^= byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
  return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
  crc = _crc32c_bitwise(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _read_records(path) -> list[bytes]:
  data = path.read_bytes()
  records, pos = [], 0
  while pos < len(data):
    header = data[pos:pos + 8]
    (length,) = struct.unpack('<Q', header)
    (length_crc,) = struct.unpack('<I', data[pos + 8:pos + 12])
    assert length_crc == _masked(header), f'length CRC of record {len(records)}'
    payload = data[pos + 12:pos + 12 + length]
    (payload_crc,) = struct.unpack('<I', data[pos + 12 + length:pos + 16 + length])
    assert payload_crc == _masked(payload), f'payload CRC of record {len(records)}'
    records.append(payload)
    pos += 16 + length
  assert pos == len(data)
  return records


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
  value, shift = 0, 0
  while True:
    byte = buf[pos]
    pos += 1
    value |= (byte & 0x7F) << shift
    shift += 7
    if not byte & 0x80:
      return value, pos


def _decode(buf: bytes) -> dict[int, list]:
  """field number -> raw values (int for varint, bytes for fixed64/fixed32/length-delimited)."""
  fields, pos = {}, 0
  while pos < len(buf):
    key, pos = _read_varint(buf, pos)
    field, wire = key >> 3, key & 7
    if wire == 0:
      value, pos = _read_varint(buf, pos)
    elif wire == 1:
      value, pos = buf[pos:pos + 8], pos + 8
    elif wire == 5:
      value, pos = buf[pos:pos + 4], pos + 4
    elif wire == 2:
      length, pos = _read_varint(buf, pos)
      value, pos = buf[pos:pos + length], pos + length
    else:
      raise AssertionError(f'unexpected wire type {wire}')
    fields.setdefault(field, []).append(value)
  return fields


def _events(path) -> list[dict]:
  """Decoded Event records: wall_time, step, and file_version / session_log / values."""
  out = []
  for payload in _read_records(path):
    ev = _decode(payload)
    assert set(ev) <= {1, 2, 3, 5, 7}, f'unexpected Event fields {sorted(ev)}'
    step = ev[2][0] if 2 in ev else 0
    event = {'wall_time': struct.unpack('<d', ev[1][0])[0],
             'step': step - (1 << 64) if step >= 1 << 63 else step}
    if 3 in ev:
      event['file_version'] = ev[3][0]
    if 7 in ev:  # field 6 is the deprecated log_message
      event['session_log_status'] = _decode(ev[7][0])[1][0]
    if 5 in ev:
      event['values'] = {}
      for raw in _decode(ev[5][0])[1]:
        value = _decode(raw)
        tag = value[1][0].decode()
        if 2 in value:
          event['values'][tag] = struct.unpack('<f', value[2][0])[0]
        else:
          image = _decode(value[4][0])
          event['values'][tag] = dict(height=image[1][0], width=image[2][0],
                                      colorspace=image[3][0], png=image[4][0])
    out.append(event)
  return out


def _event_file(logdir):
  files = sorted(logdir.glob('events.out.tfevents.*'))
  assert len(files) == 1, files
  return files[0]


# ---------------------------------------------------------------------------------------------
# TensorBoard writer.
# ---------------------------------------------------------------------------------------------


def test_crc32c_known_answers():
  # Check value of CRC-32C and the iSCSI test vectors of RFC 3720, B.4.
  assert metrics.crc32c(b'123456789') == 0xE3069283
  assert metrics.crc32c(b'') == 0
  assert metrics.crc32c(bytes(32)) == 0x8A9136AA
  assert metrics.crc32c(b'\xff' * 32) == 0x62A8AB43
  assert metrics.crc32c(bytes(range(32))) == 0x46DD794E
  data = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
  assert metrics.crc32c(data) == _crc32c_bitwise(data)
  assert metrics.masked_crc32c(data) == _masked(data)


def test_tensorboard_scalars_and_image_read_back(tmp_path):
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
  t0 = time.time()
  with metrics.TensorBoardWriter(tmp_path) as writer:
    writer.scalars(0, {'loss': 1.5, 'lr': np.float32(3e-4)})
    writer.scalars(10, {'loss': jnp.float32(0.25), 'steps': np.int64(7)})
    writer.image(10, 'pose/overlay', image)
    writer.scalars(2**40, {'loss': -2.0})  # int64 steps past 2**32
  path = _event_file(tmp_path)
  assert path.name.startswith('events.out.tfevents.')
  events = _events(path)
  assert len(events) == 5
  assert events[0]['file_version'] == b'brain.Event:2'
  assert all(t0 - 1 <= e['wall_time'] <= time.time() + 1 for e in events)
  assert [e['step'] for e in events] == [0, 0, 10, 10, 2**40]
  assert events[1]['values'] == {'loss': 1.5, 'lr': pytest.approx(3e-4, rel=1e-7)}
  assert events[2]['values'] == {'loss': 0.25, 'steps': 7.0}
  assert events[4]['values'] == {'loss': -2.0}
  img = events[3]['values']['pose/overlay']
  assert (img['height'], img['width'], img['colorspace']) == (5, 7, 3)
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(img['png']))), image)


def test_tensorboard_gray_image_and_bad_inputs(tmp_path):
  with metrics.TensorBoardWriter(tmp_path) as writer:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    writer.image(1, 'gray', gray[..., None])
    with pytest.raises(ValueError, match="'f'.*float32.*expected uint8"):
      writer.image(1, 'f', np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="'v'.*expected a real scalar"):
      writer.scalars(1, {'v': np.zeros(3)})
  img = _events(_event_file(tmp_path))[1]['values']['gray']
  assert img['colorspace'] == 1
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(img['png']))), gray)


def test_tensorboard_resume_marks_session_start(tmp_path):
  with metrics.TensorBoardWriter(tmp_path, start_step=300) as writer:
    writer.scalars(301, {'loss': 0.5})
  events = _events(_event_file(tmp_path))
  assert events[1]['step'] == 300 and events[1]['session_log_status'] == 1  # SessionLog.START
  assert events[2]['values'] == {'loss': 0.5}


def test_tensorboard_reader_rejects_corruption(tmp_path):
  with metrics.TensorBoardWriter(tmp_path) as writer:
    writer.scalars(3, {'loss': 1.0})
  path = _event_file(tmp_path)
  data = bytearray(path.read_bytes())
  data[-6] ^= 1  # a bit of the last float
  path.write_bytes(bytes(data))
  with pytest.raises(AssertionError, match='payload CRC of record 1'):
    _read_records(path)


def test_tensorboard_two_writers_same_second_do_not_share_a_file(tmp_path):
  with metrics.TensorBoardWriter(tmp_path) as a, metrics.TensorBoardWriter(tmp_path) as b:
    a.scalars(1, {'x': 1.0})
    b.scalars(2, {'x': 2.0})
  files = sorted(tmp_path.iterdir())
  assert len(files) == 2
  assert sorted(_events(f)[-1]['step'] for f in files) == [1, 2]


# ---------------------------------------------------------------------------------------------
# JSONL writer and MetricWriter.
# ---------------------------------------------------------------------------------------------


def test_jsonl_converts_scalars_and_resume_drops_later_steps(tmp_path):
  path = tmp_path / 'run' / 'metrics.jsonl'
  with metrics.JsonlWriter(path) as writer:
    for step in (10, 20, 30, 40):
      writer.scalars(step, {'loss': jnp.float32(step / 8), 'n': np.int32(step),
                            'per_joint': np.array([1.5, 2.5], np.float32)})
    # Flushed at each write: readable before close.
    assert [r['step'] for r in metrics.read_jsonl(path)] == [10, 20, 30, 40]
  with open(path, 'a') as f:
    f.write('{"step": 50, "loss"')  # torn line of a crash mid-write
  records = [json.loads(line) for line in path.read_text().splitlines()[:4]]
  assert records[0]['loss'] == 1.25 and type(records[0]['loss']) is float
  assert records[1]['n'] == 20 and type(records[1]['n']) is int
  assert records[2]['per_joint'] == [1.5, 2.5]
  assert abs(records[0]['time'] - time.time()) < 60

  with metrics.JsonlWriter(path, resume_step=30) as writer:  # restored from the step-30 checkpoint
    writer.scalars(30, {'loss': 9.0})
  records = metrics.read_jsonl(path)
  assert [r['step'] for r in records] == [10, 20, 30]
  assert records[-1]['loss'] == 9.0
  with pytest.raises(ValueError, match="'step' at step 5 is reserved"):
    metrics.JsonlWriter(path).scalars(5, {'step': 1})


def test_metric_writer_writes_everything_on_primary(tmp_path):
  config = ml_collections.ConfigDict({'lr': 5e-4, 'model': {'depth': 5}, 'patterns': ('^head/',)})
  with metrics.MetricWriter(tmp_path, is_primary=True) as writer:
    writer.write_config(config)
    writer.scalars(1, {'loss': jnp.float32(0.5), 'lr': 5e-4})
    writer.image(1, 'img', np.zeros((2, 3, 3), np.uint8))
    writer.write_summary({'mpjpe_mm': np.float64(39.2), 'step': 1})
  assert json.loads((tmp_path / 'config.json').read_text()) == {
      'lr': 5e-4, 'model': {'depth': 5}, 'patterns': ['^head/']}
  assert json.loads((tmp_path / 'summary.json').read_text()) == {'mpjpe_mm': 39.2, 'step': 1}
  records = metrics.read_jsonl(tmp_path / 'metrics.jsonl')
  assert [(r['step'], r['loss'], r['lr']) for r in records] == [(1, 0.5, 5e-4)]
  events = _events(_event_file(tmp_path / 'tb'))
  assert events[1]['values'] == {'loss': 0.5, 'lr': pytest.approx(5e-4, rel=1e-7)}
  assert set(events[2]['values']) == {'img'}


def test_metric_writer_resume_and_non_primary(tmp_path):
  with metrics.MetricWriter(tmp_path, is_primary=True) as writer:
    for step in (1, 2, 3):
      writer.scalars(step, {'loss': float(step)})
  with metrics.MetricWriter(tmp_path, is_primary=True, resume_step=2) as writer:
    writer.scalars(2, {'loss': 20.0})
  assert [(r['step'], r['loss']) for r in metrics.read_jsonl(tmp_path / 'metrics.jsonl')] == [
      (1, 1.0), (2, 20.0)]

  other = tmp_path / 'other'
  writer = metrics.MetricWriter(other, is_primary=False)
  writer.write_config({'lr': 1.0})
  writer.scalars(1, {'loss': 1.0})
  writer.image(1, 'img', np.zeros((2, 2, 3), np.uint8))
  writer.write_summary({'x': 1})
  writer.close()
  assert not other.exists()
  assert metrics.MetricWriter(tmp_path / 'auto').is_primary  # single process: process 0


def test_to_float_dict():
  out = metrics.to_float_dict({'a': jnp.float32(1.5), 'b': np.int32(3), 'c': jnp.ones((1,))})
  assert out == {'a': 1.5, 'b': 3.0, 'c': 1.0}
  assert all(type(v) is float for v in out.values())
  with pytest.raises(ValueError, match="'v' has shape \\(2,\\)"):
    metrics.to_float_dict({'v': jnp.zeros(2)})


# ---------------------------------------------------------------------------------------------
# Progress.
# ---------------------------------------------------------------------------------------------


class FakeClock:

  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now


def test_progress_rates_exclude_compile_and_pauses():
  clock, out = FakeClock(), io.StringIO()
  progress = metrics.Progress(100, start_step=20, clips_per_step=64, desc='pose3d',
                              num_devices=8, flops_per_step=8e12, peak_flops_per_device=1e13,
                              print_every=10, file=out, clock=clock)
  clock.now += 45.0  # compile
  progress.update(21, {'loss': jnp.float32(0.125), 'ignored': 1.0})
  assert progress.rates() == {}
  for step in range(22, 31):  # 0.5 s per step ...
    clock.now += 0.5
    progress.update(step, {'loss': 0.1})
  with progress.pause():  # ... an evaluation of 60 s ...
    clock.now += 60.0
  progress.pause()
  clock.now += 30.0  # ... and a checkpoint, paused without a `with`
  progress.resume()
  for step in range(31, 41):
    clock.now += 0.5
    progress.update(step, {'loss': 0.05})
  rates = progress.rates()
  assert rates['steps_per_s'] == pytest.approx(2.0)
  assert rates['clips_per_s'] == pytest.approx(128.0)
  assert rates['clips_per_s_per_device'] == pytest.approx(16.0)
  assert rates['eta_s'] == pytest.approx(30.0)
  assert rates['tflops_per_device'] == pytest.approx(2.0)
  assert rates['mfu'] == pytest.approx(0.2)
  lines = out.getvalue().splitlines()
  # First step (after compile), then every 10 steps.
  assert [line.split(' |')[0] for line in lines] == [
      'pose3d step 21/100', 'pose3d step 30/100', 'pose3d step 40/100']
  assert lines[0] == 'pose3d step 21/100 | loss 0.125'
  assert lines[-1] == ('pose3d step 40/100 | loss 0.05 | 2 steps/s | 128 clips/s | '
                       '16 clips/s/dev | 2 TFLOP/s/dev | MFU 20.0% | ETA 0:00:30')
  with pytest.raises(ValueError, match='without a matching pause'):
    progress.resume()


def test_progress_update_while_paused_and_last_step():
  clock, out = FakeClock(), io.StringIO()
  progress = metrics.Progress(4, clips_per_step=2, num_devices=1, print_every=100, file=out,
                              clock=clock)
  progress.update(1)
  clock.now += 1.0
  progress.update(2)
  with progress.pause():
    clock.now += 10.0
    assert progress.rates()['steps_per_s'] == pytest.approx(1.0)
  clock.now += 2.0
  progress.update(4)
  assert progress.rates()['steps_per_s'] == pytest.approx(1.0)
  assert 'tflops_per_device' not in progress.rates()
  assert out.getvalue().splitlines()[-1] == (
      'train step 4/4 | 1 steps/s | 2 clips/s | ETA 0:00:00')


def test_progress_bar_on_terminal():
  clock, out = FakeClock(), io.StringIO()
  with metrics.Progress(50, clips_per_step=4, num_devices=1, use_bar=True, file=out,
                        clock=clock) as progress:
    progress.update(1, {'loss': 2.0})
    clock.now += 4.0
    progress.update(9, {'loss': 1.0})
  text = out.getvalue()
  assert '9/50' in text and 'loss 1 | 2 steps/s | 8 clips/s | ETA 0:00:20' in text
