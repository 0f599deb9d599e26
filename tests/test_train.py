"""The trainer end to end on ArrayRecord files in tmp_path: run, SIGTERM, the NaN guard and init
from an official .bin (SIGKILL at random points: tests/test_fault_injection.py)."""

import json
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

from mbjax import checkpoint, convert, models
from mbjax.checkpoint import official
from mbjax.logs import metric_writer

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'tests' / 'configs' / 'tiny_pretrain.py'



@pytest.fixture
def config(tiny_config, pretrain_data_dir):
  """fn(*options) -> tests/configs/tiny_pretrain.py on the session's tiny datasets."""
  return lambda *flags: tiny_config('tiny_pretrain', ','.join([pretrain_data_dir, *flags]))


def _main(workdir, pretrain_data_dir, *flags, overrides=(), **popen):
  arg = ','.join([pretrain_data_dir, *flags])
  cmd = [sys.executable, '-m', 'mbjax.train', f'--config={CONFIG}:{arg}', f'--workdir={workdir}',
         *overrides]
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='')
  return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **popen)


def _checkpoint_steps(workdir):
  ckpts = os.path.join(workdir, 'checkpoints')
  return sorted(int(s) for s in os.listdir(ckpts) if s.isdigit()) if os.path.isdir(ckpts) else []


def _final_params(workdir):
  """(latest checkpoint step, its params), read by the one weight loader."""
  params = checkpoint.load_variables(workdir)['params']
  return _checkpoint_steps(workdir)[-1], jax.device_get(params)


def _assert_trees_equal(a, b):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_train_end_to_end(tmp_path, config):
  from mbjax import train
  config = config()
  with config.unlocked():
    config.checkpoint.snapshot_every_epochs = 1  # official checkpoint_frequency
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
  _assert_compute_accounting(config, rows, summary, workdir)
  step, params = _final_params(workdir)
  assert step == 10
  _assert_trees_equal(params, jax.device_get(summary['state']['params']))
  # A snapshot at the end of each epoch (in snapshots/, which checkpoint.keep does not prune).
  curriculum = train.setup(config).curriculum
  ends = [e for e in curriculum.epoch_starts[1:] if e <= 10]
  assert ends and sorted(int(p.name) for p in (tmp_path / 'run' / 'snapshots').iterdir()) == ends
  first = checkpoint.read_state(os.path.join(workdir, 'snapshots'), ends[0])
  assert int(first['step']) == ends[0]
  # The trained weights in the official format (convert --to-official on a workdir).
  official_bin = tmp_path / 'trained.bin'
  convert.to_official(workdir, str(official_bin))  # what `python -m mbjax.convert --to-official` runs
  back = official.official_to_variables(official.load_official(official_bin), 'pose')['params']
  _assert_trees_equal(back, params)
  # Restarting a finished run trains no step and leaves every artefact as it was.
  before = {name: (pathlib.Path(workdir) / name).read_bytes()
            for name in ('summary.json', 'config.json', 'metrics.jsonl')}
  again = train.train_and_evaluate(config, workdir)
  assert again['step'] == 10 and _checkpoint_steps(workdir)[-1] == 10
  assert again['lifting/mpjpe_mm'] == summary['lifting/mpjpe_mm']
  _assert_trees_equal(jax.device_get(again['state']['params']), params)
  for name, content in before.items():
    assert (pathlib.Path(workdir) / name).read_bytes() == content, name


def _assert_compute_accounting(config, rows, summary, workdir):
  """Cumulative clips, frames, FLOPs and wall time at every step; counts in the summary."""
  from mbjax.tasks import base
  B, T = config.batch_size, config.model.maxlen
  flops = base.get_task(config).flops_per_step(config)
  rows = [r for r in rows if 'loss' in r]
  for r in rows:
    assert (r['compute/clips'], r['compute/frames']) == (r['step'] * B, r['step'] * B * T)
    assert r['compute/flops'] == pytest.approx(r['step'] * flops)
  walls = [r['compute/wall_s'] for r in rows]
  assert walls == sorted(walls) and walls[0] > 0
  stored = json.loads((pathlib.Path(workdir) / 'summary.json').read_text())
  for key in ('params', 'params_non_embedding', 'flops_per_step', 'flops', 'clips', 'frames',
              'wall_s'):
    assert stored[f'compute/{key}'] == pytest.approx(summary[f'compute/{key}']), key
  assert stored['compute/flops'] == pytest.approx(summary['step'] * flops)
  assert stored['compute/params'] > stored['compute/params_non_embedding'] > 0
  assert stored['compute/wall_s'] >= walls[-1]


def test_snapshot_steps_end_every_nth_epoch():
  from mbjax import train
  curriculum = type('C', (), dict(epoch_starts=[0, 30, 40, 50, 60], total_steps=70))()
  assert train.snapshot_steps(curriculum, 2, 70) == {40, 60}
  assert train.snapshot_steps(curriculum, 1, 45) == {30, 40}  # total_steps cuts the run short
  assert train.snapshot_steps(curriculum, 0, 70) == set()


def test_log_due_every_n_at_the_end_and_at_phase_ends():
  from mbjax import train
  kinds = ['3d'] * 25 + ['2d'] * 2 + ['3d'] * 25 + ['2d'] * 2 + ['3d'] * 6  # 60 steps
  due = [s for s in range(1, 61) if train.log_due(s, 60, 10, kinds.__getitem__)]
  # Step s completes index s - 1; 25, 27, 52 and 54 close a phase.
  assert due == [10, 20, 25, 27, 30, 40, 50, 52, 54, 60]


def test_sigterm_saves_and_exits_zero(tmp_path, pretrain_data_dir):
  # No periodic save before the end: the SIGTERM save is the only checkpoint there can be.
  workdir = str(tmp_path / 'term')
  proc = _main(workdir, pretrain_data_dir, 'long',
               overrides=['--config.checkpoint.every_steps=1000'])
  jsonl = os.path.join(workdir, 'metrics.jsonl')
  deadline = time.time() + 240
  while time.time() < deadline:  # a few steps trained
    if os.path.exists(jsonl) and len(metric_writer.read_jsonl(jsonl)) >= 3:
      break
    time.sleep(0.05)
  logged = max(r['step'] for r in metric_writer.read_jsonl(jsonl))
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 0, out
  steps = _checkpoint_steps(workdir)
  assert len(steps) == 1 and logged <= steps[0] < 40, (steps, logged)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path, config):
  from mbjax import train
  workdir = str(tmp_path / 'nan')
  # The message names the step's data source and records, and the checkpoint left to resume from.
  with pytest.raises(train.NonFiniteLossError,
                     match=r"non-finite loss .* at step (\d+) .*data source 'mocap', this "
                           r"process's records \[\d+, .*last good checkpoint \(step \d+\)"):
    train.train_and_evaluate(config('nan'), workdir)
  step, params = _final_params(workdir)
  assert step >= 1
  assert all(np.isfinite(p).all() for p in jax.tree_util.tree_leaves(params))
  c = config('nan')
  with c.unlocked():
    c.checkpoint.every_steps = 1000
  with pytest.raises(train.NonFiniteLossError, match='no checkpoint yet'):
    train.train_and_evaluate(c, str(tmp_path / 'nan_early'))


def test_init_from_official_bin(tmp_path, config):
  from mbjax import train
  config = config()
  model = models.from_config(config.model)
  variables = model.init(jax.random.key(42), jnp.zeros((1, 9, 17, 3)))
  path = tmp_path / 'official.bin'
  official.save_official(variables, 'pose', path, epoch=3)
  want = official.official_to_variables(official.load_official(path), 'pose')['params']
  fresh = jax.device_get(model.init(jax.random.key(0), jnp.zeros((1, 9, 17, 3))))
  loaded, report = checkpoint.load_pretrained(fresh, str(path))
  _assert_trees_equal(loaded['params'], want)
  assert report['fresh'] == [] and report['unused'] == []
  # The same official weights load into the scanned-layers model.
  scanned = model.clone(scan_layers=True)
  fresh_scanned = jax.device_get(scanned.init(jax.random.key(0), jnp.zeros((1, 9, 17, 3))))
  loaded_scanned, _ = checkpoint.load_pretrained(fresh_scanned, str(path))
  from mbjax.models.dstformer import unscan_params
  _assert_trees_equal(unscan_params(loaded_scanned['params']), want)
  with config.unlocked():
    config.init_from = str(path)
    config.total_steps = 2
    config.model.scan_layers = True
    config.checkpoint.every_steps = 1000
    config.evals = {}
  # The trainer's restore path puts exactly the file's weights into the sharded state (training
  # from init_from end to end: test_pose3d, test_action).
  s = train.setup(config, with_data=False)
  state = train.loop._init_from(s, s.init_state(), str(path))
  _assert_trees_equal(unscan_params(jax.device_get(state['params'])), want)


def test_init_from_a_checkpoint_of_another_size_fails_listing_the_tensors(tmp_path, config):
  from mbjax import train
  config = config()
  dim = config.model.dim_feat
  other = models.from_config(dict(config.model, dim_feat=2 * dim, dim_rep=2 * dim))
  path = tmp_path / 'other.bin'
  official.save_official(other.init(jax.random.key(0), jnp.zeros((1, 9, 17, 3))), 'pose', path)
  with config.unlocked():
    config.init_from = str(path)
  wrong = (rf'(?s)\d+ of \d+ model variables .*blocks_st_0/attn_s/proj/kernel: stored '
           rf'\({2 * dim}, {2 * dim}\), model wants \({dim}, {dim}\)')
  with pytest.raises(ValueError, match=wrong):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  with config.unlocked():
    config.init_from = str(tmp_path / 'missing')
  with pytest.raises(FileNotFoundError, match='no such file or directory'):
    train.train_and_evaluate(config, str(tmp_path / 'run2'))
  assert not (tmp_path / 'missing').exists()


@pytest.mark.slow  # 27 s; -m slow
def test_gradient_accumulation_matches_the_full_batch(tmp_path, config):
  from mbjax import train
  results = []
  for accum in (1, 2):
    c = config()
    with c.unlocked():
      c.total_steps = 3
      c.grad_accum_steps = accum
      c.evals = {}
    summary = train.train_and_evaluate(c, str(tmp_path / f'accum{accum}'))
    results.append((summary, jax.device_get(summary['state']['params'])))
  (full, a), (accumulated, b) = results
  np.testing.assert_allclose(accumulated['loss'], full['loss'], rtol=1e-5)
  initial = jax.device_get(train.setup(c, with_data=False).init_state()['params'])
  moved = max(float(np.abs(x - y).max()) for x, y in
              zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(initial)))
  assert moved > 1e-4  # three steps changed the parameters, so the comparison below means something
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(x, y, atol=1e-5)
