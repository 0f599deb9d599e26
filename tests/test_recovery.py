"""Resuming when the newest checkpoint is damaged, or was saved by another model."""

import os
import pathlib
import shutil

import jax
import numpy as np
import pytest

from mbjax import checkpoint, train

STEPS = 8


@pytest.fixture(scope='module')
def runs(tiny_config, pretrain_data_dir, tmp_path_factory):
  """fn(total_steps) -> config; and the uninterrupted run's workdir of STEPS + 2 steps."""
  def make(total_steps):
    c = tiny_config('tiny_pretrain', pretrain_data_dir)
    c.evals = {}
    c.total_steps = total_steps
    c.checkpoint.update(every_steps=2, keep=3, async_save=False)
    return c

  straight = tmp_path_factory.mktemp('straight')
  train.train_and_evaluate(make(STEPS + 2), str(straight))
  partial = tmp_path_factory.mktemp('partial')
  train.train_and_evaluate(make(STEPS), str(partial))
  return make, str(straight), str(partial)


def _truncate_the_array_files(step_dir: pathlib.Path):
  files = [p for p in (step_dir / 'state').rglob('*') if p.is_file() and p.parent.name == 'd']
  assert files, sorted(p.name for p in (step_dir / 'state').rglob('*'))
  for path in files:  # an interrupted copy or a full disk: every data file cut short
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


def _remove_metadata(step_dir: pathlib.Path):
  for p in step_dir.rglob('_METADATA'):
    p.unlink()


def _remove_state(step_dir: pathlib.Path):
  shutil.rmtree(step_dir / 'state')


@pytest.mark.parametrize('damage', [  # two of the three with -m slow, for the CI budget
    _truncate_the_array_files, pytest.param(_remove_metadata, marks=pytest.mark.slow),
    pytest.param(_remove_state, marks=pytest.mark.slow)])
def test_damaged_newest_checkpoint_resumes_from_the_previous_one(runs, tmp_path, damage, caplog):
  make, straight, partial = runs
  workdir = tmp_path / 'run'
  shutil.copytree(partial, workdir)
  damage(workdir / 'checkpoints' / str(STEPS))
  summary = train.train_and_evaluate(make(STEPS + 2), str(workdir))
  assert summary['step'] == STEPS + 2
  # Kept aside, not deleted, and said.
  assert (workdir / 'checkpoints' / f'broken-{STEPS}').is_dir()
  assert f'checkpoint step {STEPS}' in caplog.text and 'kept aside' in caplog.text
  # Resumed at STEPS - 2 and reached what the uninterrupted run did, bitwise.
  a = checkpoint.load_variables(straight)['params']
  b = jax.device_get(summary['state']['params'])
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_resume_with_another_model_size_names_the_parameters(runs, tmp_path):
  make, _, partial = runs
  workdir = tmp_path / 'run'
  shutil.copytree(partial, workdir)
  c = make(STEPS + 2)
  dim = c.model.dim_feat
  c.model.update(dim_feat=2 * dim, dim_rep=2 * dim)
  with pytest.raises(ValueError, match=rf'(?s)saved by another model.*params/blocks_st_0/attn_s/'
                                       rf'proj/kernel: stored \({dim}, {dim}\), this config '
                                       rf'wants \({2 * dim}, {2 * dim}\)'):
    train.train_and_evaluate(c, str(workdir))
  assert sorted(os.listdir(workdir / 'checkpoints')) == sorted(
      os.listdir(pathlib.Path(partial) / 'checkpoints'))  # nothing set aside


def test_resume_with_a_run_changing_override_stops_unless_allowed(runs, tmp_path):
  make, _, partial = runs
  workdir = tmp_path / 'run'
  shutil.copytree(partial, workdir)
  stored = (workdir / 'config.json').read_text()
  c = make(STEPS + 2)
  c.batch_size = 16
  c.lr = 2e-3
  with pytest.raises(ValueError, match=r'(?s)another config.*batch_size: 8 -> 16.*lr: 0.001 -> '
                                       r'0.002.*allow_config_change=True'):
    train.train_and_evaluate(c, str(workdir))
  assert (workdir / 'config.json').read_text() == stored  # nothing rewritten
  assert not (workdir / 'config_history.jsonl').exists()
  # Logging cadence, checkpoints and where to stop may change; recorded, not refused.
  c = make(STEPS + 2)
  c.log_every_steps = 5
  assert train.train_and_evaluate(c, str(workdir))['step'] == STEPS + 2
  import json
  (record,) = [json.loads(l) for l in (workdir / 'config_history.jsonl').read_text().splitlines()]
  assert record['step'] == STEPS and record['run_changing'] == []
  assert set(record['changes']) == {'log_every_steps', 'total_steps'}


def test_resume_with_allow_config_change_continues_and_records(runs, tmp_path):
  make, _, partial = runs
  workdir = tmp_path / 'run'
  shutil.copytree(partial, workdir)
  c = make(STEPS + 2)
  c.lr = 2e-3
  c.allow_config_change = True
  assert train.train_and_evaluate(c, str(workdir))['step'] == STEPS + 2
  import json
  (record,) = [json.loads(l) for l in (workdir / 'config_history.jsonl').read_text().splitlines()]
  assert record['run_changing'] == ['lr'] and record['changes']['lr'] == [0.001, 0.002]


# ----------------------------------------------------------------------------------------------
# evaluate, infer and export on a workdir whose newest checkpoint is damaged: the newest step that
# restores, a warning naming the one skipped, and nothing moved (only the trainer sets aside).

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _truncate_the_arrays_past_the_metadata(step_dir: pathlib.Path):
  """The array files of the OCDBT database cut short, its metadata whole: restoring failed in a
  169-line tensorstore traceback."""
  files = list((step_dir / 'state').glob('ocdbt.process_*/d/*'))
  assert files, sorted(p.name for p in (step_dir / 'state').rglob('*'))
  for path in files:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


def _damaged_copy(partial: str, tmp_path: pathlib.Path, damage) -> tuple[pathlib.Path, list]:
  workdir = tmp_path / 'run'
  shutil.copytree(partial, workdir)
  damage(workdir / 'checkpoints' / str(STEPS))
  return workdir, _listing(workdir)


def _listing(workdir: pathlib.Path) -> list[str]:
  return sorted(str(p.relative_to(workdir)) for p in workdir.rglob('*'))


def _cli(module: str, *args: str):
  import subprocess
  import sys
  env = {k: v for k, v in os.environ.items() if k != 'MBJAX_TRACEBACK'}
  env.update(JAX_PLATFORMS='cpu', XLA_FLAGS='')
  return subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def _fell_back(said: str, workdir: pathlib.Path, listing: list) -> None:
  skipped = f'checkpoint step {STEPS} in {workdir}/checkpoints does not restore ('
  assert skipped in said, said[-3000:]
  assert f'using checkpoint step {STEPS - 2}, the newest that restores (skipped: step {STEPS})' in (
      said)
  assert _listing(workdir) == listing  # nothing set aside or renamed


def test_evaluate_on_a_damaged_newest_checkpoint_uses_the_one_before(runs, tmp_path,
                                                                     pretrain_data_dir):
  import json
  workdir, listing = _damaged_copy(runs[2], tmp_path, _truncate_the_arrays_past_the_metadata)
  out = tmp_path / 'eval.json'
  done = _cli('mbjax.evaluate', f'--config=tests/configs/tiny_pretrain.py:{pretrain_data_dir}',
              f'--checkpoint={workdir}', f'--out={out}')
  assert done.returncode == 0 and 'Traceback' not in done.stderr, done.stderr[-3000:]
  _fell_back(done.stderr, workdir, listing)
  assert json.loads(out.read_text())['mpjpe_mm'] > 0


def test_infer_on_a_damaged_newest_checkpoint_uses_the_one_before(runs, tmp_path):
  workdir, listing = _damaged_copy(runs[2], tmp_path, _remove_metadata)
  out = tmp_path / 'lifted'
  done = _cli('mbjax.infer', 'data_prep/assets/wild/boxing2_alphapose-results.json',
              f'--checkpoint={workdir}', f'--out={out}')
  assert done.returncode == 0 and 'Traceback' not in done.stderr, done.stderr[-3000:]
  _fell_back(done.stderr, workdir, listing)
  assert (out / 'results.npz').is_file()


def test_export_on_a_damaged_newest_checkpoint_uses_the_one_before(runs, tmp_path, caplog):
  from mbjax.export import graph
  partial = runs[2]
  workdir, listing = _damaged_copy(partial, tmp_path, _truncate_the_arrays_past_the_metadata)
  exported = graph.build(str(workdir))
  _fell_back(caplog.text, workdir, listing)
  expected = checkpoint.read_state(partial, STEPS - 2)['params']
  for x, y in zip(jax.tree_util.tree_leaves(exported.variables['params']),
                  jax.tree_util.tree_leaves(expected)):
    np.testing.assert_array_equal(x, y)
  # When no step restores, one line says so, naming each.
  for step in (STEPS - 2, STEPS - 4):
    _remove_metadata(workdir / 'checkpoints' / str(step))
  with pytest.raises(ValueError, match=rf'^{workdir}/checkpoints: no checkpoint restores: step '
                                       rf'{STEPS} \(.*\); step {STEPS - 2} \(.*\); step '
                                       rf'{STEPS - 4} \([^\n]*$'):
    graph.build(str(workdir))


def test_every_checkpoint_broken_starts_over_and_keeps_the_history(runs, tmp_path, caplog):
  make, straight, partial = runs
  workdir = tmp_path / 'run'
  shutil.copytree(partial, workdir)
  history = (workdir / 'metrics.jsonl').read_text()
  steps = sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())
  for step in steps:
    _truncate_the_array_files(workdir / 'checkpoints' / str(step))
  summary = train.train_and_evaluate(make(STEPS + 2), str(workdir))
  assert summary['step'] == STEPS + 2
  assert all((workdir / 'checkpoints' / f'broken-{s}').is_dir() for s in steps)
  # The old metrics are kept beside, said in one line; the new file holds this run's steps.
  (aside,) = workdir.glob('metrics.jsonl.*.aside')
  assert aside.read_text() == history
  assert f'kept as {aside.name}' in caplog.text
  import json
  rows = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in rows if 'loss' in r] == list(range(1, STEPS + 3))
  # Started cleanly from step 0: the uninterrupted run's parameters, bitwise.
  a = checkpoint.load_variables(straight)['params']
  b = jax.device_get(summary['state']['params'])
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(x, y)
