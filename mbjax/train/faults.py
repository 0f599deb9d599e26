"""What stops a run from outside: signals and a workdir that cannot be written.

* `Stop`: SIGTERM and SIGINT (Ctrl-C) ask the loop to save at the next step boundary and stop;
  a second Ctrl-C exits at once (status 130) without saving.
* `storage_error`: a write that failed for lack of space, quota or a read-only or failing disk,
  as Python raises it or as orbax's background save reports it (a ValueError that carries the
  OS error code), becomes one `WorkdirWriteError` naming the workdir and the OS's words.
(orbax's own tracebacks of a failed save, re-raised here, are kept off the console for every
program by `mbjax.logs.log_filter.hide_reraised_library_errors`.)
"""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
import threading
from typing import Callable

from absl import logging

INTERRUPTED = 130  # the shell's status of a process stopped by Ctrl-C (128 + SIGINT)
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG)
_OS_CODE = re.compile(r"os_error_code='?(\d+)")
_PATH = re.compile(r'(?:local file|Failed writing:) "([^"]+)"')


class Stop:
  """SIGTERM or SIGINT -> `requested`, for the loop to save and stop at its next step; a SIGINT
  after either exits the process at once (status 130), `on_abort` run first.

  Python runs a signal handler only between bytecodes of the main thread, and two signals that
  arrive while that thread waits inside XLA make one call. The second Ctrl-C is therefore seen by
  a thread that reads the signal numbers Python writes to its wakeup fd, one byte per signal, as
  they arrive.
  """

  def __init__(self, on_abort: Callable[[], None] | None = None):
    self.signal: str | None = None  # the first signal received: 'SIGTERM' or 'SIGINT'
    self._on_abort = on_abort
    self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
    self._read, self._write = os.pipe()
    os.set_blocking(self._write, False)
    self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
    self._watcher = threading.Thread(target=self._watch, name='mbjax-signals', daemon=True)
    self._watcher.start()

  @property
  def requested(self) -> bool:
    return self.signal is not None

  def _handle(self, signum, frame) -> None:
    """The first signal, in the main thread: stop at the next step."""
    del frame
    if self.requested:
      return
    self.signal = signal.Signals(signum).name
    more = ' (Ctrl-C again to exit at once without saving)' if signum == signal.SIGINT else ''
    logging.warning('%s received: saving a checkpoint at the next step and stopping%s',
                    self.signal, more)

  def _watch(self) -> None:
    """Every signal as it arrives: a SIGINT after any other exits the process."""
    seen = 0
    while data := os.read(self._read, 64):
      for signum in data:
        if signum == signal.SIGINT and seen:
          self._abort()
        seen += signum in (signal.SIGINT, signal.SIGTERM)

  def _abort(self) -> None:
    print('second interrupt: exiting now without saving (the last checkpoint is kept)',
          file=sys.stderr, flush=True)
    try:
      if self._on_abort is not None:
        self._on_abort()
    finally:
      os._exit(INTERRUPTED)  # pylint: disable=protected-access

  def restore(self) -> None:
    signal.set_wakeup_fd(self._previous_fd)
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    os.close(self._write)  # the watcher reads the end of the pipe and returns
    self._watcher.join(timeout=5)
    os.close(self._read)


class WorkdirWriteError(OSError):
  """A write into the workdir failed for a reason of the disk (see STORAGE_ERRNOS)."""

  def __str__(self) -> str:
    return self.strerror


def _causes(error: BaseException):
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def _code_and_path(error: BaseException) -> tuple[int, str | None] | None:
  """(errno, path or None) of a storage failure in `error` or its causes; None if none is."""
  for e in _causes(error):
    if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
      return e.errno, e.filename if isinstance(e.filename, str) else None
    text = str(e)
    code = _OS_CODE.search(text)
    if code and int(code.group(1)) in STORAGE_ERRNOS:
      path = _PATH.search(text)
      return int(code.group(1)), path.group(1) if path else None
  return None


def _what(path: str | None, workdir: str) -> str:
  """' (saving checkpoint step 4)', ' (writing metrics.jsonl)' or '' for a failed path."""
  if not path:
    return ''
  step = re.search(r'/(checkpoints|best|snapshots)/(\d+)', path)
  if step:
    kind = {'checkpoints': 'checkpoint', 'best': 'best checkpoint', 'snapshots': 'snapshot'}
    return f' (saving {kind[step.group(1)]} step {step.group(2)})'
  relative = os.path.relpath(os.path.abspath(path), os.path.abspath(workdir))
  return f' (writing {relative if not relative.startswith("..") else path})'


def storage_error(error: BaseException, workdir: str) -> WorkdirWriteError | None:
  """One WorkdirWriteError for a disk's failure anywhere in `error`'s chain, else None."""
  found = _code_and_path(error)
  if found is None:
    return None
  code, path = found
  return WorkdirWriteError(code, (
      f'{workdir}: {os.strerror(code)} (errno {code}, {errno.errorcode.get(code, "?")})'
      f'{_what(path, workdir)}; checkpoints written before are intact: free space (or fix the '
      'disk) and run the same command to resume'))
