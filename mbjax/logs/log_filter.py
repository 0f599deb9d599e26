"""Console logs of the entry points: mbjax's own INFO lines, only warnings from the libraries.

Under `absl.app.run` the log level is INFO, and orbax, grain and TFDS log every save, deletion and
sync at INFO: dozens of lines between two progress lines. `quiet_libraries()` keeps their
warnings and errors. `MBJAX_LIBRARY_LOGS=1` shows everything.
"""

import logging as std_logging
import os

from absl import logging

QUIET = ('orbax', 'grain', 'tensorflow_datasets', 'etils', 'array_record')


class _LibraryInfo(std_logging.Filter):
  """False for records below WARNING that come from a file of one of the QUIET packages."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.levelno >= std_logging.WARNING:
      return True
    path = record.pathname.replace(os.sep, '/')
    return not any(f'/{name}/' in path for name in QUIET)


def quiet_libraries() -> None:
  """Filters the libraries' INFO lines out of absl's handler (call once, in an entry point)."""
  if os.environ.get('MBJAX_LIBRARY_LOGS') == '1':
    return
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _LibraryInfo) for f in handler.filters):
    handler.addFilter(_LibraryInfo())
