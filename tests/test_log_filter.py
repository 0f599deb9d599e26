"""Entry points keep their own INFO lines and drop the libraries' (orbax, grain, TFDS)."""

import logging

from mbjax.logs import log_filter


def _record(path: str, level: int) -> logging.LogRecord:
  return logging.LogRecord('absl', level, path, 1, 'message', None, None)


def test_library_info_lines_are_dropped_and_warnings_kept():
  f = log_filter._LibraryInfo()
  orbax = '/venv/lib/python3.11/site-packages/orbax/checkpoint/checkpoint_manager.py'
  assert not f.filter(_record(orbax, logging.INFO))
  assert f.filter(_record(orbax, logging.WARNING))
  assert f.filter(_record('/repo/mbjax/train/', logging.INFO))


def test_quiet_libraries_installs_one_filter(monkeypatch):
  from absl import logging as absl_logging
  monkeypatch.delenv('MBJAX_LIBRARY_LOGS', raising=False)
  handler = absl_logging.get_absl_handler()
  before = list(handler.filters)
  try:
    log_filter.quiet_libraries()
    log_filter.quiet_libraries()
    assert sum(isinstance(x, log_filter._LibraryInfo) for x in handler.filters) == 1
  finally:
    handler.filters[:] = before
