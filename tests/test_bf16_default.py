"""bf16 inference by default only where this CPU has native bf16 dots and ran bf16 >= 1.6x fp32
in its own timed trial (mbjax.cli.bf16), and `mbjax.infer`'s report of who chose its dtype."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from mbjax.cli import allocator, bf16, machine

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def cpu(tmp_path, monkeypatch):
  """A CPU run with its own cache and no MBJAX_INFER_DTYPE; returns a setter of its ISA flags."""
  monkeypatch.setenv('MBJAX_CACHE_DIR', str(tmp_path))
  monkeypatch.delenv(bf16.ENV, raising=False)
  monkeypatch.setattr(allocator, 'accelerator_expected', lambda: False)

  def flags(*names):
    monkeypatch.setattr(machine, 'cpu_flags', lambda: list(names))
  return flags


def _trial(speedup, calls):
  def measure(scale=1.0):
    calls.append(scale)
    return {'float32': 1.0, 'bfloat16': round(1.0 / speedup, 5), 'speedup': speedup}
  return measure


def test_no_native_bf16_dots_means_float32_and_no_trial(cpu, monkeypatch, tmp_path):
  cpu('avx2', 'fma', 'avx512f')
  calls = []
  monkeypatch.setattr(bf16, 'measure', _trial(3.0, calls))
  dtype, why = bf16.infer_dtype()
  assert dtype == 'float32' and 'no native bf16 dots (avx512_bf16 / amx_bf16)' in why
  assert not calls and not list(tmp_path.iterdir())


@pytest.mark.parametrize('native', ['avx512_bf16', 'amx_bf16'])
def test_a_trial_at_or_over_the_bar_makes_bf16_the_default_once_per_machine(cpu, monkeypatch,
                                                                            tmp_path, native):
  cpu('avx2', native)
  calls = []
  monkeypatch.setattr(bf16, 'measure', _trial(bf16.SPEEDUP, calls))
  dtype, why = bf16.infer_dtype()
  assert dtype == 'bfloat16' and f'{native}: bf16 ran 1.60x fp32' in why
  cached = json.loads((tmp_path / bf16.CACHE).read_text())
  assert list(cached) == [bf16.cache_key()] and cached[bf16.cache_key()]['speedup'] == 1.6
  assert bf16.infer_dtype()[0] == 'bfloat16' and len(calls) == 1  # cached: no second trial


def test_a_trial_under_the_bar_keeps_float32(cpu, monkeypatch):
  cpu('avx512_bf16')
  monkeypatch.setattr(bf16, 'measure', _trial(1.59, []))
  dtype, why = bf16.infer_dtype()
  assert dtype == 'float32' and 'bf16 ran only 1.59x fp32' in why and '(< 1.6x)' in why


def test_the_cache_is_per_matmul_path(cpu, monkeypatch):
  cpu('avx512_bf16')
  calls = []
  monkeypatch.setattr(bf16, 'measure', _trial(2.0, calls))
  bf16.infer_dtype()
  monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_experimental_ynn_fusion_type=')  # eigen's flags
  assert bf16.cache_key().endswith('| dot eigen')
  bf16.infer_dtype()
  assert len(calls) == 2


def test_the_environment_and_accelerators(cpu, monkeypatch):
  cpu('avx512_bf16')
  monkeypatch.setattr(bf16, 'measure', _trial(2.0, []))
  monkeypatch.setenv(bf16.ENV, 'float32')
  assert bf16.infer_dtype() == ('float32', 'set by MBJAX_INFER_DTYPE')
  monkeypatch.setenv(bf16.ENV, 'fp8')
  with pytest.raises(ValueError, match=r"MBJAX_INFER_DTYPE='fp8': expected float32, bfloat16 "):
    bf16.infer_dtype()
  monkeypatch.delenv(bf16.ENV)
  monkeypatch.setattr(allocator, 'accelerator_expected', lambda: True)
  assert bf16.infer_dtype()[0] == 'float32'


def test_a_trial_that_cannot_run_keeps_float32(cpu, monkeypatch, tmp_path):
  cpu('avx512_bf16')

  def broken(dtype, scale=1.0):
    raise subprocess.CalledProcessError(-4, 'python')
  monkeypatch.setattr(bf16, 'trial_seconds', broken)
  dtype, why = bf16.infer_dtype()
  assert dtype == 'float32' and 'did not run (CalledProcessError)' in why
  assert not (tmp_path / bf16.CACHE).exists()  # tried again next time


def test_the_trial_times_a_block_in_both_dtypes():
  """The real trial, one stream instead of the release batch's 17 (a child process each)."""
  result = bf16.measure(scale=1 / 17)
  assert result['float32'] > 0 and result['bfloat16'] > 0
  assert result['speedup'] == pytest.approx(result['float32'] / result['bfloat16'], rel=1e-2)


def _infer(tmp_path, *flags, env=None):
  from tests import test_infer_cli as cli_test
  from mbjax.checkpoint import official
  official.save_official(cli_test._tiny_variables(), 'pose', tmp_path / 'tiny.bin')
  source = cli_test.write_two_persons(tmp_path / 'two_alphapose-results.json')
  done = subprocess.run([sys.executable, '-m', 'mbjax.infer', str(source),
                         f'--checkpoint={tmp_path / "tiny.bin"}', f'--out={tmp_path / "out"}',
                         '--config=configs/pose3d_h36m.py:global_lite', *cli_test.TINY_FLAGS,
                         *flags], cwd=ROOT, capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='', **(env or {})))
  assert done.returncode == 0, done.stderr
  return done.stdout, json.loads((tmp_path / 'out' / 'results.json').read_text())['dtype']


def test_infer_reports_its_dtype_and_who_chose_it(tmp_path):
  out, dtype = _infer(tmp_path, env={bf16.ENV: 'bfloat16'})
  assert dtype == {'compute': 'bfloat16', 'why': 'set by MBJAX_INFER_DTYPE'}
  assert 'dtype bfloat16: set by MBJAX_INFER_DTYPE' in out


def test_the_command_line_and_the_config_file_win(monkeypatch):
  """`compute_dtype` of mbjax.infer: --config.model.dtype, then a config file's non-default
  dtype, then the machine's choice (float32 kept with --action / --mesh)."""
  import ml_collections
  from mbjax.infer import __main__ as infer_main
  given = []
  monkeypatch.setattr(infer_main, 'FLAGS', {'config': type('Flag', (), {'value': 1})()})
  monkeypatch.setattr(infer_main.config_flags, 'get_override_values', lambda flag: given)
  monkeypatch.setattr(bf16, 'infer_dtype', lambda: ('bfloat16', 'the trial'))
  config = lambda dtype: ml_collections.ConfigDict({'model': {'dtype': dtype}})
  chosen, why = infer_main.compute_dtype(config('float32'), heads=False)
  assert (chosen.model.dtype, why) == ('bfloat16', 'the trial')
  chosen, why = infer_main.compute_dtype(config('float32'), heads=True)
  assert chosen.model.dtype == 'float32'
  assert why == 'the trial, but --action / --mesh heads run in float32'
  assert infer_main.compute_dtype(config('bfloat16'), heads=False)[1] == 'set by the config file'
  given.append('model.dtype')
  chosen, why = infer_main.compute_dtype(config('float32'), heads=False)
  assert (chosen.model.dtype, why) == ('float32', 'set by --config.model.dtype')
