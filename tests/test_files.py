"""mbjax.files.atomic: outputs replace the old file whole or not at all."""

import os

import pytest

from mbjax.files import atomic


def test_replacing_swaps_in_the_new_file_only_on_success(tmp_path):
  path = tmp_path / 'out.bin'
  path.write_bytes(b'old')
  with pytest.raises(RuntimeError):
    with atomic.replacing(path) as tmp:
      with open(tmp, 'wb') as f:
        f.write(b'half')
      raise RuntimeError('killed mid-way')
  assert path.read_bytes() == b'old' and os.listdir(tmp_path) == ['out.bin']
  atomic.write_bytes(path, b'new')
  assert path.read_bytes() == b'new' and os.listdir(tmp_path) == ['out.bin']


def test_an_existing_output_is_refused_without_overwrite(tmp_path):
  path = tmp_path / 'notes.txt'
  path.write_text('mine')
  with pytest.raises(FileExistsError, match=r'notes.txt exists; pass --overwrite'):
    atomic.write_text(path, 'theirs', overwrite=False)
  assert path.read_text() == 'mine'
  atomic.write_text(tmp_path / 'sub' / 'new.txt', 'x', overwrite=False)
  assert (tmp_path / 'sub' / 'new.txt').read_text() == 'x'


def test_sha256_of_a_file(tmp_path):
  path = tmp_path / 'a'
  path.write_bytes(b'abc')
  assert atomic.sha256(path) == 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
