"""The trainer against what goes wrong around it (issue 25): a second trainer on a workdir, a
killed trainer's lock, Ctrl-C, a full disk, out-of-range trainer fields and runs that fail before
writing anything. Each failure is one line, never a Python traceback."""

import errno
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from mbjax.logs import metric_writer

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'tests' / 'configs' / 'tiny_pretrain.py'
TRACEBACK = 'Traceback (most recent call last)'


def _trainer(workdir, data_dir, *overrides, flags=()):
  """`python -m mbjax.train` on the tiny config; SIGINT reaches it as at a terminal (a process
  started in the background inherits SIGINT ignored)."""
  arg = ','.join([data_dir, *flags])
  cmd = [sys.executable, '-m', 'mbjax.train', f'--config={CONFIG}:{arg}', f'--workdir={workdir}',
         *overrides]
  env = {k: v for k, v in os.environ.items() if k != 'MBJAX_TRACEBACK'}
  env.update(JAX_PLATFORMS='cpu', XLA_FLAGS='')
  return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _logged_steps(workdir) -> list[int]:
  path = os.path.join(workdir, 'metrics.jsonl')
  rows = metric_writer.read_jsonl(path, skip_torn=True) if os.path.exists(path) else []
  return [r['step'] for r in rows if 'loss' in r]


def _wait_for_steps(proc, workdir, n: int, timeout: float = 240) -> None:
  deadline = time.time() + timeout
  while len(_logged_steps(workdir)) < n:
    assert proc.poll() is None, proc.communicate()
    assert time.time() < deadline, f'no {n} steps logged in {timeout} s'
    time.sleep(0.05)


def _checkpoint_steps(workdir) -> list[int]:
  ckpts = pathlib.Path(workdir) / 'checkpoints'
  return sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) if ckpts.is_dir() else []


# ------------------------------------------------------------------------------ one trainer


def test_a_second_trainer_is_refused_and_the_first_finishes(tmp_path, pretrain_data_dir):
  workdir = tmp_path / 'run'
  first = _trainer(workdir, pretrain_data_dir, '--config.total_steps=4')
  _wait_for_steps(first, workdir, 1)
  first.send_signal(signal.SIGSTOP)  # holds the lock, mid-run, while the second one starts
  try:
    second = _trainer(workdir, pretrain_data_dir, '--config.total_steps=4')
    _, err = second.communicate(timeout=240)
  finally:
    first.send_signal(signal.SIGCONT)
  assert second.returncode == 1, err
  assert TRACEBACK not in err, err
  (line,) = [l for l in err.splitlines() if 'error' in l]
  assert line.startswith('mbjax.train: error: ') and 'in use by another trainer' in line, err
  assert f'pid {first.pid} on host {socket.gethostname()}, since ' in line, err
  out, err = first.communicate(timeout=240)
  assert first.returncode == 0, err[-3000:]
  assert _logged_steps(workdir) == [1, 2, 3, 4]  # every step once
  assert _checkpoint_steps(workdir)[-1] == 4
  assert not (workdir / 'trainer.lock').exists()


@pytest.mark.slow  # two tiny runs one after the other
def test_a_killed_trainers_lock_is_taken_over(tmp_path, pretrain_data_dir):
  workdir = tmp_path / 'run'
  killed = _trainer(workdir, pretrain_data_dir)
  _wait_for_steps(killed, workdir, 1)
  killed.send_signal(signal.SIGKILL)
  killed.wait()
  assert json.loads((workdir / 'trainer.lock').read_text())['pid'] == killed.pid
  again = _trainer(workdir, pretrain_data_dir)
  _, err = again.communicate(timeout=300)
  assert again.returncode == 0, err[-3000:]
  assert f'taking over the lock of pid {killed.pid}' in err, err[-3000:]
  assert _logged_steps(workdir)[-1] == 10


# ---------------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_saves_at_the_next_step_and_exits_130(tmp_path, pretrain_data_dir):
  workdir = tmp_path / 'run'
  proc = _trainer(workdir, pretrain_data_dir, '--config.checkpoint.every_steps=1000',
                  flags=('long',))
  _wait_for_steps(proc, workdir, 2)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=240)
  assert proc.returncode == 130, err[-3000:]
  assert TRACEBACK not in err and 'KeyboardInterrupt' not in err, err[-3000:]
  (saved,) = _checkpoint_steps(workdir)  # only the interrupt's save (no periodic one before)
  assert 2 <= saved < 40
  assert err.strip().splitlines()[-1] == (
      f'mbjax.train: interrupted at step {saved}: checkpoint saved in {workdir}; run the same '
      'command to resume')


@pytest.mark.slow  # the watcher thread's logic in-process: test_a_second_sigint_in_the_loop...
def test_a_second_ctrl_c_exits_at_once(tmp_path, pretrain_data_dir):
  workdir = tmp_path / 'run'
  proc = _trainer(workdir, pretrain_data_dir, flags=('long',))
  _wait_for_steps(proc, workdir, 1)
  proc.send_signal(signal.SIGINT)
  time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=60)
  assert proc.returncode == 130, err[-3000:]
  assert TRACEBACK not in err, err[-3000:]
  assert err.strip().splitlines()[-1] == (
      'second interrupt: exiting now without saving (the last checkpoint is kept)')
  assert not (workdir / 'trainer.lock').exists()


def test_ctrl_c_before_the_loop_is_one_line(tmp_path, pretrain_data_dir):
  workdir = tmp_path / 'run'
  proc = _trainer(workdir, pretrain_data_dir)
  deadline = time.time() + 120
  while not proc.stderr.readline().count('single process') and time.time() < deadline:
    pass  # the program is past its flags, loading JAX and building the run
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=240)
  assert proc.returncode == 130, err[-3000:]
  assert TRACEBACK not in err, err[-3000:]
  assert err.strip().splitlines()[-1].startswith('mbjax.train: interrupted'), err[-3000:]


def test_a_second_sigint_in_the_loop_exits_130_without_waiting(monkeypatch):
  from mbjax.train import faults
  exits, aborted = [], []
  monkeypatch.setattr(os, '_exit', exits.append)
  stop = faults.Stop(on_abort=lambda: aborted.append(True))
  try:
    os.kill(os.getpid(), signal.SIGINT)
    assert stop.signal == 'SIGINT' and not exits  # the first: saved at the next step
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.signal == 'SIGINT' and not exits  # already stopping
    os.kill(os.getpid(), signal.SIGINT)  # seen by the watcher thread, not the main thread
    deadline = time.time() + 10
    while not exits and time.time() < deadline:
      time.sleep(0.01)
    assert exits == [130] and aborted == [True]
  finally:
    stop.restore()
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ------------------------------------------------------------------------------- full disk


@pytest.mark.slow  # root only; the same message in-process: test_a_write_failing_for_space...
def test_a_full_disk_is_one_line_naming_the_workdir(tmp_path, pretrain_data_dir):
  disk = tmp_path / 'disk'
  disk.mkdir()
  # Room for the run's first checkpoint (~2 MB) and its logs, not for the second.
  mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', str(disk)],
                           capture_output=True, text=True)
  if mounted.returncode:
    pytest.skip(f'cannot mount a small tmpfs here: {mounted.stderr.strip()}')
  try:
    workdir = disk / 'run'
    proc = _trainer(workdir, pretrain_data_dir)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]
    assert TRACEBACK not in err and "exception was never retrieved" not in err, err[:6000]
    assert not [l for l in err.splitlines() if l.startswith('E')], err[:6000]  # absl errors
    last = err.strip().splitlines()[-1]
    assert last.startswith(f'mbjax.train: error: {workdir}: No space left on device (errno 28, '
                           'ENOSPC)'), err[-3000:]
    assert 'saving checkpoint step' in last or 'writing' in last
  finally:
    subprocess.run(['umount', '-l', str(disk)], check=False)


def test_a_write_failing_for_space_names_the_workdir(tmp_path, tiny_config, pretrain_data_dir,
                                                      monkeypatch):
  from mbjax import train

  def full(self, config):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.workdir / 'config.json'))

  monkeypatch.setattr(metric_writer.MetricWriter, 'write_config', full)
  c = tiny_config('tiny_pretrain', pretrain_data_dir)
  c.total_steps, c.evals = 2, {}
  with pytest.raises(train.WorkdirWriteError) as failed:
    train.train_and_evaluate(c, str(tmp_path / 'run'))
  assert str(failed.value) == (
      f'{tmp_path / "run"}: No space left on device (errno 28, ENOSPC) (writing config.json); '
      'checkpoints written before are intact: free space (or fix the disk) and run the same '
      'command to resume')
  assert not (tmp_path / 'run').exists()  # nothing written yet: the new folder is gone again


def test_orbax_background_errors_are_read_for_their_os_error():
  from mbjax.train import faults
  reported = ValueError(
      'RESOURCE_EXHAUSTED: Error writing local file "/w/run/checkpoints/4.orbax-checkpoint-tmp/'
      'state.orbax-checkpoint-tmp/_sharding": Failed writing: "/w/run/checkpoints/4.orbax-'
      'checkpoint-tmp/state.orbax-checkpoint-tmp/_sharding.__lock": Failed to write 108673 '
      "bytes to file 7: No space left on device [os_error_code='28']")
  error = faults.storage_error(reported, '/w/run')
  assert error.errno == errno.ENOSPC
  assert str(error).startswith('/w/run: No space left on device (errno 28, ENOSPC) (saving '
                               'checkpoint step 4); ')
  assert faults.storage_error(ValueError('a shape mismatch'), '/w/run') is None
  assert faults.storage_error(FileNotFoundError(2, 'gone'), '/w/run') is None


# ----------------------------------------------------------------- trainer fields, leftovers


@pytest.mark.parametrize('field, value, says', [
    ('total_steps', 0, 'config.total_steps=0: expected a positive number of steps to stop after, '
                       'or -1 (the default) for the whole curriculum'),
    ('total_steps', -5, 'config.total_steps=-5'),
    ('lr', -1.0, 'config.lr=-1.0: expected a finite number > 0'),
    ('checkpoint.every_steps', 0, 'config.checkpoint.every_steps=0: expected a whole number >= 1'),
    ('log_every_steps', 0, 'config.log_every_steps=0'),
    ('evals.lifting.every_steps', -1, 'config.evals.lifting.every_steps=-1'),
])
def test_trainer_fields_out_of_range_stop_before_anything(tmp_path, tiny_config,
                                                          pretrain_data_dir, field, value, says):
  from mbjax import train
  c = tiny_config('tiny_pretrain', pretrain_data_dir)
  *parents, name = field.split('.')
  node = c
  for parent in parents:
    node = node[parent]
  node[name] = value
  with pytest.raises(ValueError) as refused:
    train.train_and_evaluate(c, str(tmp_path / 'run'))
  assert says in str(refused.value) and '\n' not in str(refused.value)
  assert not (tmp_path / 'run').exists()


def test_a_run_failing_before_any_result_leaves_no_workdir(tmp_path, tiny_config,
                                                           pretrain_data_dir):
  from mbjax import train
  c = tiny_config('tiny_pretrain', pretrain_data_dir)
  c.init_from = str(tmp_path / 'missing.bin')
  with pytest.raises(FileNotFoundError):
    train.train_and_evaluate(c, str(tmp_path / 'new'))
  assert not (tmp_path / 'new').exists()  # it made the folder: gone again
  kept = tmp_path / 'kept'
  kept.mkdir()
  (kept / 'notes.txt').write_text('mine')
  with pytest.raises(FileNotFoundError):
    train.train_and_evaluate(c, str(kept))
  assert sorted(os.listdir(kept)) == ['notes.txt']  # a folder that was there stays as it was
