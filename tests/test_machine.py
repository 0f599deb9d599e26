"""The machine's own limit: the matmul path chosen per CPU (mbjax.cli.dot_path), the cached
matmul peak (mbjax.train.peak_flops.cpu_peak) and what the benches report against it."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from mbjax.cli import dot_path, machine
from mbjax.train import peak_flops

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
  monkeypatch.setenv('MBJAX_CACHE_DIR', str(tmp_path))
  monkeypatch.delenv(dot_path.ENV, raising=False)
  return tmp_path


def test_a_forced_path_wins_and_a_wrong_name_is_one_clear_error(own_cache, monkeypatch):
  monkeypatch.setenv(dot_path.ENV, 'eigen')
  assert dot_path.choose() == 'eigen'
  monkeypatch.setenv(dot_path.ENV, 'default')
  assert dot_path.choose() == dot_path.DEFAULT
  monkeypatch.setenv(dot_path.ENV, 'mkl')
  with pytest.raises(ValueError, match=r"MBJAX_DOT_PATH='mkl': expected one of \['eigen', "):
    dot_path.choose()
  assert not list(own_cache.iterdir())  # nothing timed, nothing cached


def test_the_trial_times_every_path_once_and_the_choice_is_cached(own_cache, monkeypatch):
  calls = []
  monkeypatch.setattr(dot_path, 'trial_seconds',
                      lambda path, scale=1.0: calls.append(path) or
                      {'ynnpack': 1.0, 'onednn': 0.8, 'eigen': 0.97}[path])
  assert dot_path.choose() == 'onednn' and sorted(calls) == sorted(dot_path.PATHS)
  cached = json.loads((own_cache / dot_path.CACHE).read_text())[machine.key()]
  assert cached == {'choice': 'onednn', 'seconds': {'ynnpack': 1.0, 'onednn': 0.8, 'eigen': 0.97},
                    'failed': {}}
  assert dot_path.choose() == 'onednn' and len(calls) == 3  # the cache, no second trial
  # Within the margin the default stays.
  monkeypatch.setattr(dot_path, 'trial_seconds',
                      lambda path, scale=1.0: {'ynnpack': 1.0, 'onednn': 0.97, 'eigen': 0.99}[path])
  assert dot_path.run_trial()['choice'] == dot_path.DEFAULT


def test_apply_sets_the_flags_and_leaves_the_users_own(own_cache, monkeypatch):
  monkeypatch.setenv(dot_path.ENV, 'onednn')
  monkeypatch.setenv('JAX_PLATFORMS', 'cpu')
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
  assert dot_path.apply() == 'onednn' and dot_path.active() == 'onednn'
  assert os.environ['XLA_FLAGS'].split() == ['--xla_force_host_platform_device_count=2',
                                             *dot_path.PATHS['onednn']]
  mine = '--xla_cpu_use_onednn=false'
  monkeypatch.setenv('XLA_FLAGS', mine)
  assert dot_path.apply() is None and os.environ['XLA_FLAGS'] == mine


def _compiled_dot(path: str) -> str:
  code = ('import jax, jax.numpy as jnp; a = jnp.ones((256, 512)); '
          'print(jax.jit(lambda a: jnp.tanh(a @ a.T)).lower(a).compile().as_text())')
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=' '.join(dot_path.PATHS[path]))
  return subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                        check=True, timeout=300).stdout


def test_each_paths_flags_change_how_xla_runs_the_dot():
  assert '__ynn_fusion' in _compiled_dot('ynnpack')
  onednn = _compiled_dot('onednn')
  assert 'onednn_fusion' in onednn and '__ynn_fusion' not in onednn
  eigen = _compiled_dot('eigen')
  assert 'onednn_fusion' not in eigen and '__ynn_fusion' not in eigen and ' dot(' in eigen


def test_a_path_that_crashes_is_never_chosen(own_cache, monkeypatch):
  def trial(path, scale=1.0):
    if path == 'onednn':
      raise subprocess.CalledProcessError(-4, ['python'])  # SIGILL
    return {'ynnpack': 1.0, 'eigen': 0.9}[path]
  monkeypatch.setattr(dot_path, 'trial_seconds', trial)
  result = dot_path.run_trial()
  assert result['choice'] == 'eigen' and result['failed'] == {'onednn': 'killed by signal 4'}


@pytest.mark.slow
def test_a_real_trial_at_a_small_scale_names_a_path(own_cache):
  result = dot_path.run_trial(scale=0.05)
  assert result['choice'] in dot_path.PATHS and result['choice'] not in result['failed']
  assert set(result['seconds']) | set(result['failed']) == set(dot_path.PATHS)
  assert all(0 < s < 60 for s in result['seconds'].values())


def test_the_cpu_peak_is_measured_once_and_cached(own_cache, monkeypatch):
  measured = []
  monkeypatch.setattr(peak_flops, 'measure_matmul_flops',
                      lambda device, dtype, **kw: measured.append(dtype) or 1.5e11)
  shapes = len(peak_flops.CPU_PEAK_SHAPES)  # the fastest of a few matmul shapes
  assert peak_flops.cpu_peak('float32') == 1.5e11
  assert peak_flops.cpu_peak('float32') == 1.5e11 and measured == ['float32'] * shapes
  assert peak_flops.cpu_peak('float32', remeasure=True) == 1.5e11
  assert len(measured) == 2 * shapes
  assert 'AMD' in machine.cpu_model() or machine.cpu_model()  # some name, never empty


@pytest.mark.slow
def test_model_bench_reports_its_share_of_the_measured_peak(own_cache):
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='', MBJAX_DOT_PATH='eigen',
             MBJAX_CACHE_DIR=str(own_cache))
  out = subprocess.run([sys.executable, '-m', 'mbjax.bench', 'model', '--variant=tiny',
                        '--batch=1', '--frames=9', '--iters=1', '--min_seconds=0'],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result['dot_path'] == 'eigen' and result['cpu_model'] == machine.cpu_model()
  assert result['peak_gflops'] > 0 and isinstance(result['cpu_flags'], list)
  for k in ('infer', 'train'):
    expected = 100 * result[f'{k}_gflops_per_s'] / result['peak_gflops']
    assert result['pct_of_peak'][k] == pytest.approx(expected, abs=0.5)


def test_the_share_of_peak_is_taken_against_the_whole_machine(own_cache, monkeypatch):
  from mbjax.bench import model as model_bench
  monkeypatch.setattr(peak_flops, 'cpu_peak', lambda dtype='float32', **kw: 200e9)
  shares = model_bench._against_peak({'infer_gflops_per_s': 150.0, 'train_gflops_per_s': 100.0},
                                     'float32')
  devices = len(__import__('jax').devices())
  assert shares['peak_gflops'] == pytest.approx(200.0, abs=0.1)  # split over devices, then summed
  assert shares['pct_of_peak'] == {'infer': 75.0, 'train': 50.0}, devices
