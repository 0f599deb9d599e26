"""The TF-free TensorBoard writer, read back byte by byte by an independent reader."""

import io
import time

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import event_reader
from mbjax.logs import tensorboard


def test_crc32c_known_answers():
  # Check value of CRC-32C and the iSCSI test vectors of RFC 3720, B.4.
  assert tensorboard.crc32c(b'123456789') == 0xE3069283
  assert tensorboard.crc32c(b'') == 0
  assert tensorboard.crc32c(bytes(32)) == 0x8A9136AA
  assert tensorboard.crc32c(b'\xff' * 32) == 0x62A8AB43
  assert tensorboard.crc32c(bytes(range(32))) == 0x46DD794E
  data = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
  assert tensorboard.crc32c(data) == event_reader.crc32c_bitwise(data)
  assert tensorboard.masked_crc32c(data) == event_reader.masked_crc32c(data)


def test_tensorboard_scalars_and_image_read_back(tmp_path):
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
  t0 = time.time()
  with tensorboard.TensorBoardWriter(tmp_path) as writer:
    writer.scalars(0, {'loss': 1.5, 'lr': np.float32(3e-4)})
    writer.scalars(10, {'loss': jnp.float32(0.25), 'steps': np.int64(7)})
    writer.image(10, 'pose/overlay', image)
    writer.scalars(2**40, {'loss': -2.0})  # int64 steps past 2**32
  path = event_reader.event_file(tmp_path)
  assert path.name.startswith('events.out.tfevents.')
  events = event_reader.events(path)
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
  with tensorboard.TensorBoardWriter(tmp_path) as writer:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    writer.image(1, 'gray', gray[..., None])
    with pytest.raises(ValueError, match="'f'.*float32.*expected uint8"):
      writer.image(1, 'f', np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="'v'.*expected a real scalar"):
      writer.scalars(1, {'v': np.zeros(3)})
  img = event_reader.events(event_reader.event_file(tmp_path))[1]['values']['gray']
  assert img['colorspace'] == 1
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(img['png']))), gray)


def test_tensorboard_resume_marks_session_start(tmp_path):
  with tensorboard.TensorBoardWriter(tmp_path, start_step=300) as writer:
    writer.scalars(301, {'loss': 0.5})
  events = event_reader.events(event_reader.event_file(tmp_path))
  assert events[1]['step'] == 300 and events[1]['session_log_status'] == 1  # SessionLog.START
  assert events[2]['values'] == {'loss': 0.5}


def test_tensorboard_reader_rejects_corruption(tmp_path):
  with tensorboard.TensorBoardWriter(tmp_path) as writer:
    writer.scalars(3, {'loss': 1.0})
  path = event_reader.event_file(tmp_path)
  data = bytearray(path.read_bytes())
  data[-6] ^= 1  # a bit of the last float
  path.write_bytes(bytes(data))
  with pytest.raises(AssertionError, match='payload CRC of record 1'):
    event_reader.read_records(path)


def test_tensorboard_two_writers_same_second_do_not_share_a_file(tmp_path):
  with tensorboard.TensorBoardWriter(tmp_path) as a, tensorboard.TensorBoardWriter(tmp_path) as b:
    a.scalars(1, {'x': 1.0})
    b.scalars(2, {'x': 2.0})
  files = sorted(tmp_path.iterdir())
  assert len(files) == 2
  assert sorted(event_reader.events(f)[-1]['step'] for f in files) == [1, 2]
