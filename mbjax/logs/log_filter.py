"""Console logs of the entry points: what the user needs, the rest at debug level.

Under `absl.app.run` the log level is INFO, and orbax, grain, TFDS and JAX log every save, deletion,
sync and backend probe at INFO: dozens of lines between two progress lines ("Unable to initialize
backend 'tpu'" on every CPU run). Some of their warnings say nothing is wrong: orbax warns
"Metadata file does not exist" for a step's `state` item, whose metadata file sits one level up,
every time a trainer workdir's weights are read (`mbjax.checkpoint.state.read_state`).

`quiet_libraries()` (installed by `mbjax.cli.run` for every command line) shows those records
only at debug level (`--verbosity=1`, or `MBJAX_LIBRARY_LOGS=1` for everything); the libraries'
other warnings and errors are kept. `also` adds folders of mbjax whose INFO lines a program
keeps at debug level (the demo: the per-file lines of the dataset readers, which its build
reports summarise).
"""

from __future__ import annotations

import logging as std_logging
import os
import traceback
import sys

from absl import logging

QUIET = ('orbax', 'grain', 'tensorflow_datasets', 'etils', 'array_record', 'jax', 'jaxlib',
         'jax2onnx', 'onnx', 'onnx_ir', 'onnxruntime')
# (package, start of the message) of library warnings that report nothing wrong.
BENIGN_WARNINGS = (
    ('orbax', 'Metadata file does not exist'),  # a step's item read directly: see the docstring
    # a hint about checkpoint cadence when a save waits for the previous one (busy CPUs); the
    # progress line's rates leave checkpointing out
    ('orbax', 'Waiting for previous save to complete'),
)


def _from(path: str, package: str) -> bool:
  return f'/{package}/' in path.replace(os.sep, '/')


class _LibraryInfo(std_logging.Filter):
  """Keeps a record unless it is library chatter (QUIET below WARNING, BENIGN_WARNINGS, `also`
  folders below WARNING); chatter is kept, as DEBUG, only at debug verbosity."""

  def __init__(self):
    super().__init__()
    self.also: set[str] = set()

  def chatter(self, record: std_logging.LogRecord) -> bool:
    if record.levelno >= std_logging.ERROR:
      return False
    if record.levelno >= std_logging.WARNING:
      message = str(record.msg)
      return any(_from(record.pathname, package) and message.startswith(start)
                 for package, start in BENIGN_WARNINGS)
    return any(_from(record.pathname, name) for name in (*QUIET, *self.also))

  def filter(self, record: std_logging.LogRecord) -> bool:
    if not self.chatter(record):
      return True
    if record.levelno > std_logging.DEBUG:
      record.levelno, record.levelname = std_logging.DEBUG, 'DEBUG'
    return logging.level_debug()


def quiet_libraries(also: tuple[str, ...] = ()) -> None:
  """Keeps library chatter (and INFO lines from the mbjax folders in `also`, e.g. 'mbjax/data')
  off absl's handler; idempotent."""
  if os.environ.get('MBJAX_LIBRARY_LOGS') == '1':
    return
  handler = logging.get_absl_handler()
  found = [f for f in handler.filters if isinstance(f, _LibraryInfo)]
  if not found:
    found = [_LibraryInfo()]
    handler.addFilter(found[0])
  found[0].also.update(also)


class _Reraised(std_logging.Filter):
  """False for an error record with a traceback from orbax or asyncio: orbax raises the same
  exception again in the trainer, which reports it."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.levelno < std_logging.ERROR or not record.exc_info:
      return True
    path = record.pathname.replace(os.sep, '/')
    return not any(f'/{name}/' in path for name in ('orbax', 'asyncio'))


def _closed_loop_echo(kind, value, tb) -> bool:
  """Whether an exception is asyncio's 'Event loop is closed' from a write that finished after
  orbax gave up its save: tensorstore prints each such one (as unraisable, or PyErr_Print)."""
  frames = traceback.extract_tb(tb)
  return (kind is RuntimeError and str(value) == 'Event loop is closed' and bool(frames)
          and '/asyncio/' in frames[-1].filename.replace(os.sep, '/'))


def hide_reraised_library_errors() -> None:
  """Installs `_Reraised` on absl's handler, and exception hooks that leave out the closed event
  loop's echoes of a failed save (`mbjax.cli.run` calls it for every program unless MBJAX_TRACEBACK=1)."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _Reraised) for f in handler.filters):
    handler.addFilter(_Reraised())
  if getattr(sys.excepthook, 'mbjax_hides_echoes', False):
    return
  excepthook, unraisablehook = sys.excepthook, sys.unraisablehook

  def uncaught(kind, value, tb):
    if not _closed_loop_echo(kind, value, tb):
      excepthook(kind, value, tb)

  def unraisable(info):
    if not _closed_loop_echo(info.exc_type, info.exc_value, info.exc_traceback):
      unraisablehook(info)

  uncaught.mbjax_hides_echoes = True
  sys.excepthook, sys.unraisablehook = uncaught, unraisable
