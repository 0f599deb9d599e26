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
