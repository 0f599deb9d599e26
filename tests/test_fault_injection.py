"""Fault injection: a training run SIGKILLed at seeded random points, each time resumed by the
same command, must end bitwise equal to the run that was never interrupted, and every checkpoint
each resumed process wrote must equal the uninterrupted run's at that step.

A kill point is drawn per seed from one of three kinds: while a checkpoint is being written (an
orbax temporary folder exists), after a random number of further training steps, or at a random
time after the process starts (during imports, restore or compilation). The quick test (3 seeds,
one per kind) runs with the suite; the full one (10 seeds) with `pytest -m slow`. A corrupted
newest checkpoint is tests/test_recovery.py's.
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from mbjax import checkpoint
from mbjax.logs import metric_writer

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'tests' / 'configs' / 'tiny_pretrain.py'
TOTAL_STEPS = 40  # tiny_pretrain.py:long
KINDS = ('save', 'steps', 'startup')


@pytest.fixture(scope='module')
def compile_cache(tmp_path_factory):
  """A persistent XLA cache shared by every process of this module: restarts skip compiling."""
  return str(tmp_path_factory.mktemp('xla_cache'))


def _launch(workdir, data_dir, cache):
  cmd = [sys.executable, '-m', 'mbjax.train', f'--config={CONFIG}:{data_dir},long',
         f'--workdir={workdir}', '--config.checkpoint.keep=100']
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='', JAX_COMPILATION_CACHE_DIR=cache,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)


def _steps(workdir) -> list[int]:
  ckpts = pathlib.Path(workdir) / 'checkpoints'
  return sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) if ckpts.is_dir() else []


def _tmp_folders(workdir) -> set[str]:
  """The checkpoint steps being written: orbax writes each into a temporary folder, then renames
  it to the step number."""
  ckpts = pathlib.Path(workdir) / 'checkpoints'
  return {p.name for p in ckpts.iterdir() if 'tmp' in p.name} if ckpts.is_dir() else set()


def _logged_step(workdir) -> int:
  path = os.path.join(workdir, 'metrics.jsonl')
  rows = metric_writer.read_jsonl(path) if os.path.exists(path) else []
  return max([r['step'] for r in rows if 'loss' in r], default=0)


def _wait_and_kill(proc, workdir, kind: str, rng: np.random.Generator) -> str:
  """Kills `proc` at a point of `kind`; returns what happened (for the failure message)."""
  deadline = time.time() + 240
  stale = _tmp_folders(workdir)  # left by the previous kill; this process deletes them
  saving = lambda: bool(_tmp_folders(workdir) - stale)
  if kind == 'startup':
    time.sleep(rng.uniform(0.2, 4.0))
  elif kind == 'steps':
    start = _logged_step(workdir)
    target = int(rng.integers(1, 8))
    while time.time() < deadline and proc.poll() is None and _logged_step(workdir) < start + target:
      time.sleep(0.01)
  else:  # 'save': the first save that starts after a random number of further saves
    skip = int(rng.integers(0, 3))
    seen = False
    while time.time() < deadline and proc.poll() is None:
      if saving():
        if not skip:
          break
        if not seen:
          skip, seen = skip - 1, True
      else:
        seen = False
      time.sleep(0.001)
  finished = proc.poll() is not None
  if not finished:
    proc.send_signal(signal.SIGKILL)
  proc.wait()
  if finished:
    return f'{kind}: finished before the kill'
  mid_save = ' mid-save (temporary folder left)' if saving() else ''
  return f'{kind}: killed{mid_save}, newest checkpoint {_steps(workdir)[-1:]}'


def _state(workdir, step):
  return jax.device_get(checkpoint.read_state(workdir, step))


def _assert_bitwise(a, b, what):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b), what
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=what)


@pytest.fixture(scope='module')
def straight(tmp_path_factory, pretrain_data_dir, compile_cache):
  """The workdir of the uninterrupted run, every checkpoint kept."""
  workdir = str(tmp_path_factory.mktemp('straight') / 'run')
  proc = _launch(workdir, pretrain_data_dir, compile_cache)
  assert proc.wait(timeout=300) == 0, proc.stderr.read()[-3000:]
  return workdir


def _run_with_kills(tmp_path, straight, data_dir, cache, seeds):
  faulty = str(tmp_path / 'faulty')
  history = []
  for seed in seeds:
    rng = np.random.default_rng(seed)
    history.append(_wait_and_kill(_launch(faulty, data_dir, cache), faulty,
                                  KINDS[seed % len(KINDS)], rng))
  proc = _launch(faulty, data_dir, cache)
  assert proc.wait(timeout=300) == 0, (history, proc.stderr.read()[-3000:])

  assert _steps(faulty)[-1] == TOTAL_STEPS, history
  assert not _tmp_folders(faulty), history  # half-written steps of killed saves were cleaned up
  assert set(_steps(faulty)) <= set(_steps(straight)), history
  for step in _steps(faulty):  # what every resumed process saved, not only the end
    _assert_bitwise(_state(faulty, step), _state(straight, step), f'step {step}: {history}')
  return history


def test_random_kills_resume_bitwise(tmp_path, straight, pretrain_data_dir, compile_cache):
  history = _run_with_kills(tmp_path, straight, pretrain_data_dir, compile_cache, seeds=range(3))
  print(history)  # shown with pytest -s
  assert sum('killed' in h for h in history) >= 2, history


@pytest.mark.slow
def test_ten_random_kills_resume_bitwise(tmp_path, straight, pretrain_data_dir, compile_cache):
  history = _run_with_kills(tmp_path, straight, pretrain_data_dir, compile_cache, seeds=range(10))
  print(history)  # shown with pytest -s
  assert sum('killed' in h for h in history) >= 7, history
  assert any('mid-save' in h for h in history), history
