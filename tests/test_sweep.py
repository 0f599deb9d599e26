"""mbjax.sweep: IsoFLOP step counts, configs/scaling.py's runs, the print / local / slurm
launchers (finished runs skipped, a killed run resumed, the job array as text)."""

import importlib.util
import json
import os
import pathlib
import shlex
import stat
import subprocess
import sys

import numpy as np
import pytest

import kill_resume
from mbjax.sweep import launchers, spec

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_SWEEP = ROOT / 'tests' / 'configs' / 'tiny_sweep.py'


def _load(path):
  module_spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def _sweep_cli(*args, cwd=ROOT):
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='')
  return subprocess.run([sys.executable, '-m', 'mbjax.sweep', *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=600)


def test_isoflop_steps_spend_the_budget_within_one_step():
  rng = np.random.default_rng(0)
  for budget, per_step in zip(10 ** rng.uniform(11, 20, 200), 10 ** rng.uniform(8, 13, 200)):
    steps = spec.isoflop_steps(budget, per_step)
    if budget >= per_step:
      assert abs(steps * per_step - budget) <= per_step / 2
    assert steps >= 1
  with pytest.raises(ValueError, match='positive'):
    spec.isoflop_steps(0, 1e9)


@pytest.mark.parametrize('variant', ['demo', 'pretrain'])
def test_scaling_configs_are_isoflop_grids_of_full_trainer_configs(variant):
  """Every run's step count spends its budget at the run's own size, counted by the task from the
  run's full config (the file's get_config with the run's overrides)."""
  from mbjax.tasks import pretrain as pretrain_task
  scaling = _load(ROOT / 'configs' / 'scaling.py')
  runs = spec.runs_of(scaling, variant)
  sizes = {r.overrides['scaling.size'] for r in runs}
  budgets = {r.overrides['scaling.budget'] for r in runs}
  assert len(sizes) >= 3 and len(budgets) >= 3 and len(runs) == len(sizes) * len(budgets)
  for run in runs:
    config = scaling.get_config(variant)
    for key, value in run.overrides.items():
      node = config
      *parents, leaf = key.split('.')
      for p in parents:
        node = node[p]
      node[leaf] = value
    per_step = pretrain_task.flops_per_step(config)
    assert abs(config.total_steps * per_step - config.scaling.budget) <= per_step / 2, run.name
    assert config.scaling.steps == config.total_steps and config.scaling.name == run.name
  data_runs = spec.runs_of(scaling, 'data')
  assert {r.overrides['data.fraction'] for r in data_runs} == {0.25, 0.5, 1.0}


def test_sweep_files_are_checked():
  class Bad:
    __file__ = 'bad.py'

    @staticmethod
    def sweep(arg):
      del arg
      return [spec.Run('a', {}), spec.Run('a', {})]
  with pytest.raises(ValueError, match="'a' is repeated"):
    spec.runs_of(Bad, '')
  Bad.sweep = staticmethod(lambda arg: [spec.Run('x', {'model.dims': (1, 2)})])
  with pytest.raises(ValueError, match='not a number, bool or string'):
    spec.runs_of(Bad, '')


@pytest.mark.slow  # three tiny trainings and two sweep runs: 50 s
def test_print_then_local_skips_finished_and_resumes_killed_runs(tmp_path, pretrain_data_dir):
  sweep_dir = tmp_path / 'sweep'
  config = f'--config={TINY_SWEEP}:{pretrain_data_dir}'
  printed = _sweep_cli(config, f'--workdir={sweep_dir}', '--launcher=print')
  assert printed.returncode == 0, printed.stderr[-3000:]
  lines = printed.stdout.strip().splitlines()
  assert len(lines) == 2 and all(' -m mbjax.train ' in line for line in lines)
  # The printed command of run `a` runs as it is.
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='')
  done = subprocess.run(shlex.split(lines[0]), cwd=ROOT, env=env, capture_output=True, text=True)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  assert spec.status(str(sweep_dir / 'a')) == 'finished'
  summary_a = (sweep_dir / 'a' / 'summary.json').read_bytes()
  # Run `b` is killed after its first checkpoint.
  args_b = shlex.split(lines[1])[3:-1]  # after `python -m mbjax.train`, without --workdir
  assert kill_resume.kill_after_checkpoint(args_b, str(sweep_dir / 'b'), min_step=2) < 12
  assert spec.status(str(sweep_dir / 'b')) == 'interrupted'

  local = _sweep_cli(config, f'--workdir={sweep_dir}')
  assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
  assert '2 runs' in local.stdout and '1 finished (skipped), 1 interrupted (resumed), 0 new' in (
      local.stdout)
  assert (sweep_dir / 'a' / 'summary.json').read_bytes() == summary_a
  assert 'resumed at step' in (sweep_dir / 'b' / 'sweep.log').read_text()
  summary_b = json.loads((sweep_dir / 'b' / 'summary.json').read_text())
  assert summary_b['step'] == 12 and summary_b['compute/clips'] == 12 * 8
  assert json.loads((sweep_dir / 'b' / 'config.json').read_text())['data']['fraction'] == 0.5
  again = _sweep_cli(config, f'--workdir={sweep_dir}')
  assert '2 finished (skipped)' in again.stdout and 'started' not in again.stdout


def test_slurm_job_array_text_and_task_script(tmp_path):
  runs = [spec.Run('a', {'lr': 0.001}), spec.Run('b b', {'scaling.name': "it's"})]
  commands = [spec.train_command('configs/scaling.py:demo', r, str(tmp_path), {'seed': 3},
                                 python='python') for r in runs]
  path, sbatch = launchers.slurm_files(commands, str(tmp_path), max_parallel=4,
                                       sbatch_args='--gpus-per-node=1 --time=1:00:00',
                                       root='/repo')
  assert pathlib.Path(path).read_text().splitlines() == [
      f'--config=configs/scaling.py:demo --config.seed=3 --config.lr=0.001 '
      f'--workdir={tmp_path}/a',
      f"--config=configs/scaling.py:demo --config.seed=3 '--config.scaling.name=it'\"'\"'s' "
      f"'--workdir={tmp_path}/b b'"]
  assert sbatch[:2] == ['sbatch', '--array=0-1%4']
  assert '--gpus-per-node=1' in sbatch and '--time=1:00:00' in sbatch
  assert '--export=ALL,MBJAX_ROOT=/repo' in sbatch
  assert sbatch[-2:] == ['/repo/launch/slurm_sweep.sh', path]
  # The array task reads its own line and hands the flags, unsplit, to launch/slurm_gpu.sh.
  fake = tmp_path / 'root' / 'launch'
  fake.mkdir(parents=True)
  (fake / 'slurm_gpu.sh').write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
  (fake / 'slurm_gpu.sh').chmod(stat.S_IRWXU)
  env = dict(os.environ, SLURM_ARRAY_TASK_ID='1', MBJAX_ROOT=str(tmp_path / 'root'))
  out = subprocess.run(['bash', str(ROOT / 'launch' / 'slurm_sweep.sh'), path], env=env,
                       capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines() == commands[1][3:]
  missing = subprocess.run(['bash', str(ROOT / 'launch' / 'slurm_sweep.sh'), path],
                           env=dict(env, SLURM_ARRAY_TASK_ID='5'), capture_output=True, text=True)
  assert missing.returncode == 2 and 'has no line 6' in missing.stderr


def test_slurm_dry_run_writes_the_array_of_unfinished_runs(tmp_path, pretrain_data_dir):
  out = _sweep_cli(f'--config={TINY_SWEEP}:{pretrain_data_dir}', f'--workdir={tmp_path}',
                   '--launcher=slurm', '--dry_run', '--sbatch_args=--gpus-per-node=1')
  assert out.returncode == 0, out.stderr[-3000:]
  assert (tmp_path / 'sweep_commands.txt').read_text().count('--workdir=') == 2
  assert 'sbatch --array=0-1 ' in out.stdout and '--gpus-per-node=1' in out.stdout
