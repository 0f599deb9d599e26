"""Test setup: 8 fake CPU devices (before JAX starts) and the shared reference material."""

import os
import pathlib

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

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
