"""The one-owner lock file (mbjax/files/lock.py): a live holder is named, a killed one's lock is
taken over with a warning, a released lock leaves no file."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from mbjax.files import lock

# A process that takes the lock, says so, and waits to be killed.
_HOLDER = '''
import sys, time
from mbjax.files import lock
held = lock.acquire(sys.argv[1], what='trainer')
print('held', flush=True)
time.sleep(600)
'''


def _start_holder(path):
  proc = subprocess.Popen([sys.executable, '-c', _HOLDER, str(path)], stdout=subprocess.PIPE,
                          text=True)
  assert proc.stdout.readline().strip() == 'held'
  return proc


def test_a_second_owner_is_refused_naming_the_holder(tmp_path):
  path = tmp_path / 'trainer.lock'
  with lock.acquire(path, what='trainer'):
    with pytest.raises(lock.LockHeld) as refused:
      lock.acquire(path, what='trainer')
    message = str(refused.value)
    assert f'pid {os.getpid()} on host {socket.gethostname()}, since ' in message
    assert str(tmp_path) in message and 'another trainer' in message and '\n' not in message
  assert not path.exists()  # released: the file is gone
  lock.acquire(path).release()  # and free again


def test_another_process_holding_it_is_named(tmp_path):
  path = tmp_path / 'trainer.lock'
  holder = _start_holder(path)
  try:
    with pytest.raises(lock.LockHeld, match=f'pid {holder.pid} on host'):
      lock.acquire(path)
  finally:
    holder.kill()
    holder.wait()


def test_the_lock_of_a_killed_process_is_taken_over_with_a_warning(tmp_path, caplog):
  path = tmp_path / 'trainer.lock'
  holder = _start_holder(path)
  os.kill(holder.pid, signal.SIGKILL)
  holder.wait()
  assert json.loads(path.read_text())['pid'] == holder.pid  # its record stays behind
  with lock.acquire(path):
    assert json.loads(path.read_text())['pid'] == os.getpid()
  assert f'taking over the lock of pid {holder.pid}' in caplog.text


def test_without_flock_the_record_decides(tmp_path, monkeypatch, caplog):
  path = tmp_path / 'trainer.lock'
  monkeypatch.setattr(lock, '_flock', lambda fd: False)  # a file system without flock
  dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                        capture_output=True, text=True).stdout.strip()
  path.write_text(json.dumps(dict(host=socket.gethostname(), pid=int(dead), since=0)))
  held = lock.acquire(path)  # its pid runs no more: stale
  assert f'taking over the lock of pid {dead}' in caplog.text
  with pytest.raises(lock.LockHeld, match=f'pid {os.getpid()}'):
    lock.acquire(path)  # this process is alive
  held.release()
  path.write_text(json.dumps(dict(host='elsewhere', pid=1, since=0)))
  with pytest.raises(lock.LockHeld, match='pid 1 on host elsewhere'):
    lock.acquire(path)  # another host's process cannot be checked: taken as alive
