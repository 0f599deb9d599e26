"""Two `jax.distributed` processes on localhost (CPU, gloo collectives) started by
launch/local.sh train like one process, and their checkpoint resumes in a single process."""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import pytest

import param_compare
from mbjax import checkpoint, train
from mbjax.logs import metric_writer

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'tests' / 'configs' / 'tiny_pretrain.py'
LAUNCHER = ROOT / 'launch' / 'local.sh'
STEPS = 4  # the 2-process run; the single-process runs go on to STEPS + 2
ATOL = 1e-5



def _launch(num_processes, *flags, env=None, timeout=180):
  """launch/local.sh with one CPU device per process (no 8-device flag); (returncode, output)."""
  env = {**os.environ, 'PYTHON': sys.executable, 'XLA_FLAGS': '', 'JAX_PLATFORMS': 'cpu',
         **(env or {})}
  # A session of its own, so that a hung run is stopped with every process it started.
  proc = subprocess.Popen(['bash', str(LAUNCHER), str(num_processes), *flags], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
  try:
    out, _ = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    pytest.fail(f'launch/local.sh did not finish in {timeout} s:\n{out[-5000:]}')
  return proc.returncode, out


def _single_process_config(tiny_config, pretrain_data_dir, total_steps):
  c = tiny_config('tiny_pretrain', pretrain_data_dir)
  c.evals = ml_collections.ConfigDict()
  c.total_steps = total_steps
  c.mesh = dict(data=1, fsdp=1, tensor=1)
  c.mesh_devices = 1
  c.checkpoint.every_steps = STEPS
  c.checkpoint.async_save = False
  return c


def _saved_params(workdir, step, like):
  """Params of checkpoint `step`, placed like the state `like` (the saved devices may be gone)."""
  abstract = jax.tree_util.tree_map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), like)
  state = checkpoint.restore_state_only(os.path.join(workdir, 'checkpoints'), abstract, step)
  return jax.device_get(state['params'])


def _assert_close(got, want):
  param_compare.assert_close(got, want, ATOL)


def test_two_processes_match_one_and_resume_in_one(tmp_path, tiny_config, pretrain_data_dir):
  workdir = tmp_path / 'two_processes'
  logs = tmp_path / 'logs'
  code, out = _launch(2, f'--config={CONFIG}:{pretrain_data_dir}', f'--workdir={workdir}',
                      f'--config.total_steps={STEPS}', f'--config.checkpoint.every_steps={STEPS}',
                      env=dict(LOG_DIR=str(logs)))
  logs_text = '\n'.join(p.read_text() for p in sorted(logs.glob('process_*.log')))
  assert code == 0, out + logs_text[-5000:]
  # Both processes joined one run: each wrote its own iterator state into the shared checkpoint.
  data_files = sorted(os.listdir(workdir / 'checkpoints' / str(STEPS) / 'data'))
  assert [f for f in data_files if f.endswith('.json')] == [
      'process_0-of-2.json', 'process_1-of-2.json']
  assert len(list(logs.glob('process_*.log'))) == 2
  # The evaluator ran on the 2-process mesh too (config `evals.lifting`).
  summary = metric_writer.read_jsonl(workdir / 'metrics.jsonl')
  assert any('lifting/mpjpe_mm' in r for r in summary)

  # The single-process run of the same config, on one device, checkpointing at step STEPS.
  single = tmp_path / 'one_process'
  reference = train.train_and_evaluate(
      _single_process_config(tiny_config, pretrain_data_dir, STEPS + 2), str(single))
  assert reference['update_norm'] > 100 * ATOL  # parameters move: the comparison is not vacuous
  like = reference['state']
  _assert_close(_saved_params(workdir, STEPS, like), _saved_params(single, STEPS, like))

  # The 2-process checkpoint resumes in this (single) process and lands on the same parameters.
  resumed_dir = tmp_path / 'resumed'
  shutil.copytree(workdir, resumed_dir)
  resumed = train.train_and_evaluate(
      _single_process_config(tiny_config, pretrain_data_dir, STEPS + 2), str(resumed_dir))
  assert resumed['step'] == STEPS + 2
  rows = metric_writer.read_jsonl(resumed_dir / 'metrics.jsonl')
  assert [r['step'] for r in rows if 'loss' in r] == list(range(1, STEPS + 3))
  _assert_close(jax.device_get(resumed['state']['params']),
                jax.device_get(reference['state']['params']))


def test_launcher_stops_all_when_one_process_fails(tmp_path):
  # A stand-in interpreter: process 1 fails at once, process 0 would block (as in a collective).
  fake = tmp_path / 'fake_python.sh'
  fake.write_text('#!/usr/bin/env bash\n'
                  'for a in "$@"; do [[ "$a" == --process_id=1 ]] && exit 3; done\n'
                  'exec sleep 60\n')
  fake.chmod(0o755)
  start = time.time()
  code, out = _launch(2, '--workdir=unused', env=dict(PYTHON=str(fake), PORT='1'), timeout=30)
  assert code == 3, out
  assert time.time() - start < 20
  assert 'stopping the others' in out


def test_launcher_rejects_a_missing_process_count():
  code, out = _launch('two', '--workdir=unused', timeout=30)
  assert code == 2
  assert 'NUM_PROCESSES' in out
