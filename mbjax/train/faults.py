"""What stops a run from outside: SIGTERM and SIGINT (Ctrl-C).

`Stop`: SIGTERM and SIGINT ask the loop to save at the next step boundary and stop; a second
Ctrl-C exits at once (status 130) without saving.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable

from absl import logging

INTERRUPTED = 130  # the shell's status of a process stopped by Ctrl-C (128 + SIGINT)


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
