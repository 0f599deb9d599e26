"""The trainer end to end on ArrayRecord files in tmp_path: run, resume after SIGKILL, SIGTERM,
the NaN guard and init from an official .bin."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbjax import checkpoint, convert, metric_writer
from mbjax.models import DSTformer

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'tests' / 'configs' / 'tiny_pretrain.py'



def _config(pretrain_data_dir, *flags):
  import importlib.util
  spec = importlib.util.spec_from_file_location('tiny_pretrain', CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(','.join([pretrain_data_dir, *flags]))


def _main(workdir, pretrain_data_dir, *flags, **popen):
  arg = ','.join([pretrain_data_dir, *flags])
  cmd = [sys.executable, '-m', 'mbjax.main', f'--config={CONFIG}:{arg}', f'--workdir={workdir}']
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='')
  return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **popen)


def _final_params(workdir):
  directory = os.path.join(workdir, 'checkpoints')
  import orbax.checkpoint as ocp
  with ocp.CheckpointManager(directory, item_names=('state', 'data')) as m:
    step = m.latest_step()
    state = m.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
  return step, jax.device_get(state['params'])


def test_train_end_to_end(tmp_path, pretrain_data_dir):
  from mbjax import train
  config = _config(pretrain_data_dir)
  workdir = str(tmp_path / 'run')
  summary = train.train_and_evaluate(config, workdir)
  assert summary['step'] == 10
  rows = metric_writer.read_jsonl(os.path.join(workdir, 'metrics.jsonl'))
  assert [r['step'] for r in rows if 'loss' in r] == list(range(1, 11))
  assert all(np.isfinite(r['loss']) for r in rows if 'loss' in r)
  # The curriculum: epoch 0 is 3D only, then 2D (wild) batches appear.
  assert any('2d/loss_2d_proj' in r for r in rows) and any('3d/loss_3d_pos' in r for r in rows)
  for name in ('config.json', 'summary.json'):
    assert os.path.exists(os.path.join(workdir, name))
  assert os.listdir(os.path.join(workdir, 'tb'))
  assert summary['lifting/mpjpe_mm'] > 0 and 'lifting/zero_depth_mpjpe_mm' in summary
  step, params = _final_params(workdir)
  assert step == 10
  # Restarting a finished run does nothing and keeps the parameters.
  again = train.train_and_evaluate(config, workdir)
  assert again['step'] == 10


def test_log_due_every_n_at_the_end_and_at_phase_ends():
  from mbjax import train
  kinds = ['3d'] * 25 + ['2d'] * 2 + ['3d'] * 25 + ['2d'] * 2 + ['3d'] * 6  # 60 steps
  due = [s for s in range(1, 61) if train.log_due(s, 60, 10, kinds.__getitem__)]
  # Step s completes index s - 1; 25, 27, 52 and 54 close a phase.
  assert due == [10, 20, 25, 27, 30, 40, 50, 52, 54, 60]


def test_sigkill_resume_matches_uninterrupted_run(tmp_path, pretrain_data_dir):
  straight = str(tmp_path / 'straight')
  proc = _main(straight, pretrain_data_dir, 'long')
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out

  killed = str(tmp_path / 'killed')
  proc = _main(killed, pretrain_data_dir, 'long')
  ckpts = os.path.join(killed, 'checkpoints')
  deadline = time.time() + 240
  while time.time() < deadline:  # kill it mid-run, after a first checkpoint landed
    steps = [int(s) for s in os.listdir(ckpts) if s.isdigit()] if os.path.isdir(ckpts) else []
    if steps and max(steps) >= 6:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  partial, _ = _final_params(killed)
  assert 6 <= partial < 40
  proc = _main(killed, pretrain_data_dir, 'long')
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out
  step_a, a = _final_params(straight)
  step_b, b = _final_params(killed)
  assert step_a == step_b == 40
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(x, y)  # bitwise on CPU


def test_sigterm_saves_and_exits_zero(tmp_path, pretrain_data_dir):
  workdir = str(tmp_path / 'term')
  proc = _main(workdir, pretrain_data_dir, 'long')
  ckpts = os.path.join(workdir, 'checkpoints')
  deadline = time.time() + 240
  while time.time() < deadline:
    if os.path.isdir(ckpts) and any(s.isdigit() for s in os.listdir(ckpts)):
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 0, out
  step, _ = _final_params(workdir)
  assert 2 <= step <= 40


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path, pretrain_data_dir):
  from mbjax import train
  workdir = str(tmp_path / 'nan')
  with pytest.raises(train.NonFiniteLossError, match='non-finite loss'):
    train.train_and_evaluate(_config(pretrain_data_dir, 'nan'), workdir)
  step, params = _final_params(workdir)
  assert step >= 1
  assert all(np.isfinite(p).all() for p in jax.tree_util.tree_leaves(params))


def test_init_from_official_bin(tmp_path, pretrain_data_dir):
  from mbjax import train
  config = _config(pretrain_data_dir)
  model = DSTformer(**{k: v for k, v in config.model.items()
                       if k not in ('dtype', 'param_dtype')})
  variables = model.init(jax.random.key(42), jnp.zeros((1, 9, 17, 3)))
  path = tmp_path / 'official.bin'
  convert.save_official(variables, 'pose', path, epoch=3)
  fresh = jax.device_get(model.init(jax.random.key(0), jnp.zeros((1, 9, 17, 3)))['params'])
  loaded = train._init_params_from(str(path), fresh)
  want = convert.official_to_variables(convert.load_official(path), 'pose')['params']
  jax.tree_util.tree_map(np.testing.assert_array_equal, loaded, want)
  # The same official weights load into the scanned-layers model.
  scanned = model.clone(scan_layers=True)
  fresh_scanned = jax.device_get(
      scanned.init(jax.random.key(0), jnp.zeros((1, 9, 17, 3)))['params'])
  loaded_scanned = train._init_params_from(str(path), fresh_scanned)
  from mbjax.models.dstformer import unscan_params
  jax.tree_util.tree_map(np.testing.assert_array_equal, unscan_params(loaded_scanned), want)
  with config.unlocked():
    config.init_from = str(path)
    config.total_steps = 2
    config.model.scan_layers = True
  summary = train.train_and_evaluate(config, str(tmp_path / 'ft'))
  assert summary['step'] == 2


def test_gradient_accumulation_matches_the_full_batch(tmp_path, pretrain_data_dir):
  from mbjax import train
  results = []
  for accum in (1, 2):
    config = _config(pretrain_data_dir)
    with config.unlocked():
      config.total_steps = 3
      config.grad_accum_steps = accum
      config.evals = {}
    summary = train.train_and_evaluate(config, str(tmp_path / f'accum{accum}'))
    results.append((summary, jax.device_get(summary['state']['params'])))
  (full, a), (accumulated, b) = results
  np.testing.assert_allclose(accumulated['loss'], full['loss'], rtol=1e-5)
  moved = max(float(np.abs(x).max()) for x in jax.tree_util.tree_leaves(a))
  assert moved > 0
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(x, y, atol=1e-5)
