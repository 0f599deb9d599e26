"""A run's folder: one trainer at a time, left as it was found when a run fails before it has
written anything, and a history that is set aside rather than cut.

  with workdir.claim(path):   # LockHeld naming who trains in it (host, pid, since when)
    ...                       # restore, train; a failure before the first metrics line or
                              # checkpoint removes what this run created there
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from typing import Iterator

import jax
import numpy as np
from absl import logging

from mbjax.files import lock

LOCK_NAME = 'trainer.lock'
METRICS = 'metrics.jsonl'
RESULTS = ('checkpoints', 'best', 'snapshots')  # folders whose any entry is a result


def _lock(workdir: str) -> lock.Lock | None:
  """Process 0 takes the workdir's lock (the other processes of the run share it); every process
  raises LockHeld when process 0 could not take it."""
  held, refused = None, None
  if jax.process_index() == 0:
    try:
      held = lock.acquire(os.path.join(workdir, LOCK_NAME), what='trainer')
    except OSError as e:  # LockHeld, or a folder it cannot write
      refused = e
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    ok = int(multihost_utils.broadcast_one_to_all(np.int32(refused is None)))
    if not ok and refused is None:
      refused = lock.LockHeld(f'{workdir}: process 0 could not take the trainer lock '
                              f'({LOCK_NAME}); its log says why')
  if refused is not None:
    raise refused
  return held


def has_results(workdir: str) -> bool:
  """Whether a run wrote anything worth keeping: a metrics line or a checkpoint."""
  metrics = os.path.join(workdir, METRICS)
  if os.path.isfile(metrics) and os.path.getsize(metrics) > 0:
    return True
  return any(os.path.isdir(p) and os.listdir(p)
             for p in (os.path.join(workdir, name) for name in RESULTS))


def _remove_new(workdir: str, before: set[str] | None) -> None:
  """Removes what this run created in `workdir` (all of it when `before` is None: it created the
  folder); what was there before and set-aside history stay."""
  if before is None:
    shutil.rmtree(workdir, ignore_errors=True)
    return
  for name in set(os.listdir(workdir)) - before:
    if name.endswith('.aside'):
      continue
    path = os.path.join(workdir, name)
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path, ignore_errors=True)
    else:
      os.remove(path)


@contextlib.contextmanager
def claim(workdir: str) -> Iterator[lock.Lock | None]:
  """Creates `workdir` if needed and holds its trainer lock for the block (yields the lock; None
  on processes other than 0, which share process 0's). If the block fails
  before the run wrote a metrics line or a checkpoint, what it created is removed again (the
  folder itself if it was new; never a file that was there before)."""
  primary = jax.process_index() == 0
  before = set(os.listdir(workdir)) if os.path.isdir(workdir) else None
  os.makedirs(workdir, exist_ok=True)
  held = None
  try:
    held = _lock(workdir)
    yield held
  except BaseException:
    # Only under the lock: a refused start never touches the folder of the run that holds it.
    if primary and held is not None and not has_results(workdir):
      _remove_new(workdir, before)
    raise
  finally:
    if held is not None:
      held.release()


def set_aside_history(workdir: str) -> str | None:
  """Renames a previous run's metrics.jsonl to `metrics.jsonl.<time>.aside` before a run starts
  over from step 0 (all checkpoints broken, or none written), with one warning line; returns the
  new name, or None when there was nothing to keep."""
  path = os.path.join(workdir, METRICS)
  if not os.path.isfile(path) or os.path.getsize(path) == 0:
    return None
  with open(path) as f:
    lines = sum(1 for line in f if line.strip())
  stamp = time.strftime('%Y%m%d-%H%M%S')
  aside, n = f'{path}.{stamp}.aside', 1
  while os.path.exists(aside):
    n += 1
    aside = f'{path}.{stamp}-{n}.aside'
  os.rename(path, aside)
  logging.warning('%s: no checkpoint to resume from; training starts at step 0 and the previous '
                  '%s (%d lines) is kept as %s', workdir, METRICS, lines, os.path.basename(aside))
  return aside
