"""One owner per folder: an exclusive lock file that says who holds it.

  held = lock.acquire('run/trainer.lock')   # LockHeld naming host, pid and since when
  ...
  held.release()                            # also on exit: the kernel drops a dead owner's lock

The lock is `flock` on the file, so a process that dies, even by SIGKILL, holds nothing: the
next owner finds the lock free, reads the dead owner's record (host, pid, start time) and takes
over with a warning. Where the file system has no `flock`, the record decides: a holder on this
host whose process is gone (or whose pid now belongs to another process) is stale; a holder on
another host is taken as alive.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import socket
import time

from absl import logging

_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class LockHeld(FileExistsError):
  """The lock belongs to a live process; the message names it."""


@dataclasses.dataclass(frozen=True)
class Holder:
  """Who holds a lock: host, pid, when it took it (Unix time) and, on Linux, the process's start
  (boot id and start tick), which tells a live process from a later one with the same pid."""

  host: str
  pid: int
  since: float
  process_start: str = ''

  def describe(self) -> str:
    when = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.since))
    return f'pid {self.pid} on host {self.host}, since {when}'

  def alive(self) -> bool:
    """Whether this holder still runs (only knowable on this host; elsewhere assumed)."""
    if self.host != socket.gethostname():
      return True
    try:
      os.kill(self.pid, 0)
    except ProcessLookupError:
      return False
    except PermissionError:  # another user's live process
      return True
    return not self.process_start or _process_start(self.pid) in ('', self.process_start)


def _process_start(pid: int) -> str:
  """'<boot id>:<start tick>' of a Linux process; '' where /proc does not say."""
  try:
    with open('/proc/sys/kernel/random/boot_id') as f:
      boot = f.read().strip()
    with open(f'/proc/{pid}/stat') as f:
      fields = f.read().rsplit(')', 1)[1].split()
    return f'{boot}:{fields[19]}'  # field 22 of stat: start time, in ticks since boot
  except (OSError, IndexError):
    return ''


def _me() -> Holder:
  return Holder(socket.gethostname(), os.getpid(), time.time(), _process_start(os.getpid()))


def _read(fd: int) -> Holder | None:
  """The record in the lock file; None if empty or unreadable (a crash while writing it)."""
  os.lseek(fd, 0, os.SEEK_SET)
  try:
    record = json.loads(os.read(fd, 4096).decode() or 'null')
    return Holder(str(record['host']), int(record['pid']), float(record['since']),
                  str(record.get('process_start', '')))
  except (ValueError, KeyError, TypeError, UnicodeDecodeError):
    return None


def _write(fd: int, holder: Holder) -> None:
  os.ftruncate(fd, 0)
  os.pwrite(fd, (json.dumps(dataclasses.asdict(holder)) + '\n').encode(), 0)
  os.fsync(fd)


class Lock:
  """A held lock; `release()` (or the end of the process) frees it."""

  def __init__(self, path: str, fd: int):
    self.path, self._fd = path, fd

  def release(self) -> None:
    """Removes the lock file and unlocks (removed first: whoever opens it next gets a new one)."""
    if self._fd is None:
      return
    try:
      os.remove(self.path)
    except FileNotFoundError:
      pass
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    self._fd = None

  def __enter__(self) -> Lock:
    return self

  def __exit__(self, *exc) -> None:
    self.release()


def _held_message(path: str, holder: Holder | None, what: str) -> str:
  who = holder.describe() if holder else 'another process'
  return (f'{os.path.dirname(path)} is in use by another {what}: {who} (lock file {path}); '
          'stop that run first or use another folder')


def _flock(fd: int) -> bool:
  """True when the flock was taken, False where the file system has no flock; raises
  BlockingIOError when another process holds it."""
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return True
  except BlockingIOError:
    raise
  except OSError as e:
    if e.errno in _NO_FLOCK:
      return False
    raise


def _open_locked(path: str, what: str) -> tuple[int, bool]:
  """(fd of `path`, whether flock holds it), retried while an owner removes the file under us."""
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
      flocked = _flock(fd)
    except BlockingIOError:
      holder = _read(fd)
      os.close(fd)
      raise LockHeld(_held_message(path, holder, what)) from None
    try:
      same = os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
      same = False
    if same:
      return fd, flocked
    os.close(fd)  # the previous owner released (removed) it between our open and flock


def acquire(path: str | os.PathLike, *, what: str = 'process') -> Lock:
  """Takes the lock file `path` for this process, or raises LockHeld naming the live holder.

  A record left by a holder that is gone (killed) is taken over with a warning.
  """
  path = os.path.abspath(os.fspath(path))
  fd, flocked = _open_locked(path, what)
  try:
    previous = _read(fd)
    if previous is not None and not flocked and previous.alive():
      raise LockHeld(_held_message(path, previous, what))
    if previous is not None:
      logging.warning('%s: taking over the lock of %s, which is no longer running', path,
                      previous.describe())
    _write(fd, _me())
  except BaseException:
    os.close(fd)
    raise
  return Lock(path, fd)
