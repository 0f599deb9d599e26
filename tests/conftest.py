"""Test setup: 8 fake CPU devices (before JAX starts) and the shared reference material."""

import os
import pathlib
import shutil
import tempfile

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# One persistent XLA compilation cache per session, shared with the processes the tests start:
# the tiny models of many tests compile to the same programs (a cached program is the same
# binary, so bitwise comparisons between runs are unaffected).
_CACHE_CREATED = 'JAX_COMPILATION_CACHE_DIR' not in os.environ
if _CACHE_CREATED:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='mbjax-test-xla-cache-')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
# Program starts in tests keep XLA's default matmul path and infer's float32 (no per-machine
# trials, the same numbers on every CPU; tests of the trials set their own), and what mbjax
# measures per machine goes to a folder of this session.
os.environ.setdefault('MBJAX_DOT_PATH', 'default')
os.environ.setdefault('MBJAX_INFER_DTYPE', 'float32')
_MACHINE_CACHE_CREATED = 'MBJAX_CACHE_DIR' not in os.environ
if _MACHINE_CACHE_CREATED:
  os.environ['MBJAX_CACHE_DIR'] = tempfile.mkdtemp(prefix='mbjax-test-machine-cache-')

import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get('MBJAX_SHARED', ROOT.parent / 'shared'))


@pytest.fixture(scope='session')
def reference_dir() -> pathlib.Path:
  path = SHARED / 'reference'
  if not path.is_dir():
    pytest.fail(f'reference vectors not found at {path}; set MBJAX_SHARED to the shared/ folder')
  return path


@pytest.fixture(scope='session')
def shared_data_dir() -> pathlib.Path:
  path = SHARED / 'data'
  if not path.is_dir():
    pytest.fail(f'shared data not found at {path}; set MBJAX_SHARED to the shared/ folder')
  return path


@pytest.fixture(scope='session')
def pretrain_data_dir(tmp_path_factory) -> str:
  """ArrayRecord `mocap` and `wild` datasets for tests/configs/tiny_pretrain.py (9-frame clips of
  the shipped assets), built once per session."""
  from data_prep import builder
  from mbjax.data import shipped
  d = tmp_path_factory.mktemp('pretrain_tfds')
  builder.build('mocap', source=shipped.assets_dir('mocap'), data_dir=d,
                options=dict(clip_len=9, stride=27, yaws=(0.0,)))
  builder.build('wild', source=shipped.assets_dir('wild'), data_dir=d,
                options=dict(clip_len=9, stride=9))
  return str(d)


@pytest.fixture(scope='session')
def tiny_config():
  """fn(name, arg) -> `get_config(arg)` of tests/configs/<name>.py, loaded by path as
  `--config=tests/configs/<name>.py:arg` would load it."""
  import importlib.util

  def load(name: str, arg: str):
    path = ROOT / 'tests' / 'configs' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)

  return load


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  if _CACHE_CREATED:
    shutil.rmtree(os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)
  if _MACHINE_CACHE_CREATED:
    shutil.rmtree(os.environ['MBJAX_CACHE_DIR'], ignore_errors=True)
