"""Entry points keep their own INFO lines; the libraries' INFO lines and their warnings that report
nothing wrong are shown only at debug verbosity (mbjax/logs/log_filter.py)."""

import logging
import subprocess
import sys

import pytest
from absl import logging as absl_logging

from mbjax.logs import log_filter

ORBAX = '/venv/lib/python3.11/site-packages/orbax/checkpoint/checkpoint_manager.py'


def _record(path: str, level: int, msg: str = 'message') -> logging.LogRecord:
  return logging.LogRecord('absl', level, path, 1, msg, None, None)


@pytest.fixture
def verbosity():
  before = absl_logging.get_verbosity()
  yield absl_logging.set_verbosity
  absl_logging.set_verbosity(before)


def test_library_info_lines_are_dropped_and_warnings_kept(verbosity):
  verbosity(absl_logging.INFO)
  f = log_filter._LibraryInfo()
  assert not f.filter(_record(ORBAX, logging.INFO))
  assert f.filter(_record(ORBAX, logging.WARNING, 'checkpoint step 3 does not restore'))
  assert f.filter(_record('/repo/mbjax/train/loop.py', logging.INFO))
  tpu = _record('/venv/lib/python3.11/site-packages/jax/_src/xla_bridge.py', logging.INFO,
                "Unable to initialize backend 'tpu': INTERNAL: Failed to open libtpu.so")
  assert not f.filter(tpu)


def test_warnings_that_report_nothing_wrong_are_debug_lines(verbosity):
  verbosity(absl_logging.INFO)
  f = log_filter._LibraryInfo()
  benign = _record(ORBAX.replace('checkpoint_manager', '_src/metadata/checkpoint'),
                   logging.WARNING, 'Metadata file does not exist: %s')
  assert not f.filter(benign)
  verbosity(absl_logging.DEBUG)
  assert f.filter(benign) and benign.levelname == 'DEBUG'
  assert f.filter(_record(ORBAX, logging.INFO))  # at debug verbosity, everything


def test_a_program_can_keep_its_own_folders_at_debug(verbosity, monkeypatch):
  verbosity(absl_logging.INFO)
  monkeypatch.delenv('MBJAX_LIBRARY_LOGS', raising=False)
  handler = absl_logging.get_absl_handler()
  before = list(handler.filters)
  try:
    log_filter.quiet_libraries()
    log_filter.quiet_libraries(also=('mbjax/data',))
    found = [x for x in handler.filters if isinstance(x, log_filter._LibraryInfo)]
    assert len(found) == 1 and found[0].also == {'mbjax/data'}
    assert not found[0].filter(_record('/repo/mbjax/data/mocap.py', logging.INFO))
    assert found[0].filter(_record('/repo/mbjax/data/mocap.py', logging.WARNING))
  finally:
    handler.filters[:] = before


def test_every_command_line_installs_the_filter_and_help_exits_0():
  code = ('import sys; from mbjax import cli; from absl import logging; '
          'cli.run(lambda argv: print([type(f).__name__ for f in '
          'logging.get_absl_handler().filters]), program="probe")')
  done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
  assert done.returncode == 0 and '_LibraryInfo' in done.stdout, done.stderr
  helped = subprocess.run([sys.executable, '-c', code, '--help'], capture_output=True, text=True,
                          timeout=120)
  assert helped.returncode == 0 and 'flags' in helped.stdout.lower(), helped.stderr
  wrong = subprocess.run([sys.executable, '-c', code, '--no_such_flag'], capture_output=True,
                         text=True, timeout=120)
  assert wrong.returncode == 2 and "Unknown command line flag 'no_such_flag'" in wrong.stderr
