"""An independent reader of TensorBoard event files, for tests of mbjax.logs.tensorboard.

Bitwise CRC-32C (no table) and a generic protobuf decoder: nothing shared with the writer.
"""

import struct


def crc32c_bitwise(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for byte in data:
    crc ^= byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
  return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
  crc = crc32c_bitwise(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path) -> list[bytes]:
  data = path.read_bytes()
  records, pos = [], 0
  while pos < len(data):
    header = data[pos:pos + 8]
    (length,) = struct.unpack('<Q', header)
    (length_crc,) = struct.unpack('<I', data[pos + 8:pos + 12])
    assert length_crc == masked_crc32c(header), f'length CRC of record {len(records)}'
    payload = data[pos + 12:pos + 12 + length]
    (payload_crc,) = struct.unpack('<I', data[pos + 12 + length:pos + 16 + length])
    assert payload_crc == masked_crc32c(payload), f'payload CRC of record {len(records)}'
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


def decode(buf: bytes) -> dict[int, list]:
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


def events(path) -> list[dict]:
  """Decoded Event records: wall_time, step, and file_version / session_log / values."""
  out = []
  for payload in read_records(path):
    ev = decode(payload)
    assert set(ev) <= {1, 2, 3, 5, 7}, f'unexpected Event fields {sorted(ev)}'
    step = ev[2][0] if 2 in ev else 0
    event = {'wall_time': struct.unpack('<d', ev[1][0])[0],
             'step': step - (1 << 64) if step >= 1 << 63 else step}
    if 3 in ev:
      event['file_version'] = ev[3][0]
    if 7 in ev:  # field 6 is the deprecated log_message
      event['session_log_status'] = decode(ev[7][0])[1][0]
    if 5 in ev:
      event['values'] = {}
      for raw in decode(ev[5][0])[1]:
        value = decode(raw)
        tag = value[1][0].decode()
        if 2 in value:
          event['values'][tag] = struct.unpack('<f', value[2][0])[0]
        else:
          image = decode(value[4][0])
          event['values'][tag] = dict(height=image[1][0], width=image[2][0],
                                      colorspace=image[3][0], png=image[4][0])
    out.append(event)
  return out


def event_file(logdir):
  files = sorted(logdir.glob('events.out.tfevents.*'))
  assert len(files) == 1, files
  return files[0]
