"""mbjax.files.atomic: outputs replace the old file whole or not at all."""

import errno
import os
import pathlib
import stat
import subprocess
import sys

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


def _dead_pid() -> int:
  """The id of a process that has ended."""
  done = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                        capture_output=True, text=True, check=True)
  return int(done.stdout)


@pytest.mark.skipif(not os.path.exists('/dev/full'), reason='no /dev/full (Linux only)')
def test_a_device_is_written_in_place_never_replaced_or_refused():
  atomic.check_new('/dev/null', overwrite=False)  # writing to it replaces nothing of the user's
  atomic.write_bytes('/dev/null', b'x', overwrite=False)
  with pytest.raises(OSError) as e:
    atomic.write_bytes('/dev/full', b'x' * 10_000)
  assert e.value.errno == errno.ENOSPC and e.value.filename == '/dev/full'
  assert stat.S_ISCHR(os.stat('/dev/full').st_mode)  # the device itself, not a file put there
  assert not [n for n in os.listdir('/dev') if n.startswith('.full.')]


def test_a_folder_is_not_a_file_name(tmp_path):
  with pytest.raises(IsADirectoryError, match='is a folder; expected the name of a file'):
    atomic.write_text(tmp_path, 'x')


def test_errors_name_the_target_not_the_temporary(tmp_path):
  path = tmp_path / 'out.npz'
  with pytest.raises(OSError) as e:
    with atomic.replacing(path) as tmp:
      assert tmp.endswith('.npz') and os.path.basename(tmp).startswith('.out.npz.tmp-')
      raise OSError(errno.ENOSPC, 'No space left on device')  # as write() raises it: no name
  assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
  assert os.listdir(tmp_path) == []


def test_leftovers_of_killed_writers_are_removed_by_the_next_write(tmp_path):
  path = tmp_path / 'model.hlo'
  dead = atomic.temporary_name(path).replace(f'-{os.getpid()}-', f'-{_dead_pid()}-')
  live = atomic.temporary_name(path)  # this process: still writing, as far as anyone knows
  other = atomic.temporary_name(tmp_path / 'other.hlo').replace(f'-{os.getpid()}-',
                                                                f'-{_dead_pid()}-')
  for leftover in (dead, live, other):
    pathlib.Path(leftover).write_bytes(b'partial')
  assert atomic.stale_temporaries(path) == [dead]
  atomic.write_bytes(path, b'new')
  assert sorted(os.listdir(tmp_path)) == sorted(
      ['model.hlo', os.path.basename(live), os.path.basename(other)])


def test_exchange_swaps_two_folders_in_one_step(tmp_path):
  (tmp_path / 'a').mkdir()
  (tmp_path / 'a' / 'old').write_text('old')
  (tmp_path / 'b').mkdir()
  (tmp_path / 'b' / 'new').write_text('new')
  if not atomic.exchange(tmp_path / 'b', tmp_path / 'a'):
    pytest.skip('no renameat2(RENAME_EXCHANGE) on this system')
  assert os.listdir(tmp_path / 'a') == ['new'] and os.listdir(tmp_path / 'b') == ['old']
