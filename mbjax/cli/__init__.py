"""What every command line shares: a user's mistake is one message, never a Python traceback.

  cli.run(main, program='mbjax.evaluate')   # instead of absl's app.run(main)

Flag mistakes (an unknown `--config.` field, a config file that is missing, does not compile or
raises, a malformed value, a missing required flag, a program's own `app.UsageError`) exit with
status 2 and one line naming the flag; for an unknown config field it names the nearest valid
fields, for a missing config file the nearest file names.

Mistakes found while running (a missing or damaged file, a mismatched checkpoint,
a bad config value: `USER_ERRORS`) exit with status 1 and the error's own message, which names the
file, record or field. MBJAX_TRACEBACK=1 shows the full traceback instead.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import sys
import traceback
from typing import Callable, Sequence

from absl import app, flags, logging

# Errors that carry a message meant for the user (the library raises these for bad input).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
               IsADirectoryError, PermissionError)
# What the system says of a path it cannot write (or read): not a bug of ours, whatever raised it.
OS_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                       errno.EFBIG, errno.EIO, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR))
TRACEBACK_ENV = 'MBJAX_TRACEBACK'
_PARSE_ERRORS = (flags.Error, AttributeError, KeyError, ValueError, TypeError)
_HELP = {'help', '?', 'helpshort', 'helpfull', 'helpxml'}  # absl's help flags


def show_tracebacks() -> bool:
  return os.environ.get(TRACEBACK_ENV, '') not in ('', '0')


def fail(program: str, message: str, status: int) -> None:
  """Prints `program: error: message` to stderr and exits with `status`."""
  print(f'{program}: error: {message}', file=sys.stderr, flush=True)
  sys.exit(status)


def _final_exception_line(text: str) -> str:
  """'ValueError: ...' from a message holding a formatted traceback (ml_collections' config
  file errors embed one); `text` itself when it holds none."""
  if 'Traceback (most recent call last)' not in text:
    return text.strip()
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  found = [line for line in lines if re.match(r'^[\w.]+(Error|Exception)\b.*:', line)]
  return found[-1] if found else lines[-1]


def _loaded_config(flag_values, name: str, argv: Sequence[str]):
  """The config of config flag `name` as `argv` names it, loaded without the `--name.` overrides
  (a failed parse leaves the flag without a value); None if it does not load."""
  flag = flag_values[name]
  given = [a.split('=', 1)[1] for a in argv[1:] if a.startswith((f'--{name}=', f'-{name}='))]
  if not given and hasattr(flag.default, 'keys'):  # a default config, loaded at definition
    return flag.default
  path = given[-1] if given else flag.default
  if not isinstance(path, str):
    return None
  saved = sys.argv
  sys.argv = [argv[0], f'--{name}={path}']  # ml_collections reads overrides from sys.argv
  try:
    flag.parse(path)
    return flag.value
  except Exception:  # pylint: disable=broad-except  # the original error is reported instead
    return None
  finally:
    sys.argv = saved


def unknown_config_field(argv: Sequence[str], flag_values) -> str | None:
  """'unknown config field config.bach_size (...); nearest: batch_size' for the first
  `--config.` override of `argv` whose path does not exist in the config, else None."""
  for arg in argv[1:]:
    match = re.match(r'^--?(\w+)\.([\w.]+)=?', arg)
    if not match or match.group(1) not in flag_values:
      continue
    node = _loaded_config(flag_values, match.group(1), argv)
    path = match.group(2).split('.')
    for depth, name in enumerate(path):
      if not hasattr(node, 'keys'):
        break
      keys = list(node.keys())
      if name not in keys:
        where = '.'.join([match.group(1), *path[:depth + 1]])
        nearest = difflib.get_close_matches(name, keys, n=3, cutoff=0.5)
        hint = (f'nearest: {", ".join(nearest)}' if nearest
                else f'fields here: {", ".join(sorted(keys)) or "none"}')
        return f'unknown config field {where} (in {arg}); {hint}'
      node = node[name]
  return None


def define_config_file(name: str, default: str, help_string: str, *, program: str):
  """`config_flags.DEFINE_config_file` for a flag with a default config file.

  ml_collections loads a default config, and applies the `--name.` overrides of sys.argv, when
  the flag is defined (at import): a mistake there is reported like any flag mistake.
  """
  from ml_collections import config_flags
  try:
    return config_flags.DEFINE_config_file(name, default, help_string, lock_config=True)
  except _PARSE_ERRORS as e:
    if show_tracebacks():
      raise
    argv = list(sys.argv)
    sys.argv = [a for a in argv if not a.startswith(f'--{name}.')]
    try:  # defined without the overrides, so that the message can name the nearest fields
      config_flags.DEFINE_config_file(name, default, help_string, lock_config=True)
    finally:
      sys.argv = argv
    message = unknown_config_field(argv, flags.FLAGS) or _final_exception_line(str(e))
    fail(program, f'{message} (see --help)', 2)


def _config_file_args(argv: Sequence[str], flag_values) -> list[str]:
  """The `--name=path[:arg]` arguments of `argv` that name a config file flag."""
  found = []
  for arg in argv[1:]:
    match = re.match(r'^--?(\w+)=', arg)
    if match and match.group(1) in flag_values and (
        flag_values[match.group(1)].parser.flag_type() == 'config object'):  # ml_collections'
      found.append(arg)
  return found


def _missing_file(arg: str) -> str | None:
  """'--config=configs/pose3d_h36n.py:ft: no such config file configs/pose3d_h36n.py; nearest:
  configs/pose3d_h36m.py' when the file a config argument names does not exist, else None."""
  path = arg.split('=', 1)[1].split(':', 1)[0]
  if os.path.isfile(path):
    return None
  folder, name = os.path.split(path)
  names = os.listdir(folder or '.') if os.path.isdir(folder or '.') else []
  nearest = difflib.get_close_matches(name, [n for n in names if n.endswith('.py')], n=3)
  hint = f'; nearest: {", ".join(os.path.join(folder, n) for n in nearest)}' if nearest else ''
  return f'{arg}: no such config file {path}{hint}'


def _config_file_error(argv: Sequence[str], error: BaseException) -> str:
  """One line for a config file that failed to load with `error` (its own exception, or a
  syntax error): the argument, the exception and where in the file it was raised."""
  args = _config_file_args(argv, flags.FLAGS)
  missing = [m for m in map(_missing_file, args) if m]
  if missing:
    return missing[0]
  where = ''
  if not isinstance(error, SyntaxError) and error.__traceback__ is not None:
    frame = traceback.extract_tb(error.__traceback__)[-1]
    where = f' ({frame.filename}, line {frame.lineno})'
  text = str(error).strip().splitlines()
  prefix = f'{args[-1]}: ' if args else ''
  return (f'{prefix}the config file fails: {type(error).__name__}: '
          f'{text[-1] if text else ""}{where}')


def _deferred_config_error(argv: Sequence[str]) -> str | None:
  """ml_collections defers a config file it cannot read (a missing file) until the config is
  used: that error as one line, or None when every config flag loaded."""
  for name in flags.FLAGS:
    value = flags.FLAGS[name].value
    if type(value).__name__ == '_ErrorConfig':  # how ml_collections holds a deferred error
      return _config_file_error(argv, value.__dict__['_error'])
  return None


def _missing_required(error: Exception) -> str | None:
  """'missing required flags --config, --workdir' from absl's validator error, else None."""
  names = re.findall(r'Flag --(\w+) must have a value other than None', str(error))
  if not names:
    return None
  return f'missing required flag{"s" if len(names) > 1 else ""} ' + ', '.join(
      f'--{n}' for n in names)


def parse_flags(argv: Sequence[str], *, program: str) -> list[str]:
  """absl's FLAGS(argv) with every parsing mistake as one line (exit status 2)."""
  try:
    rest = flags.FLAGS(list(argv))
  except _PARSE_ERRORS as e:
    if show_tracebacks():
      raise
    message = (unknown_config_field(argv, flags.FLAGS) or _missing_required(e)
               or _final_exception_line(str(e)))
    fail(program, f'{message} (see --help)', 2)
  except Exception as e:  # pylint: disable=broad-except  # a config file's own error
    if show_tracebacks():
      raise
    fail(program, f'{_config_file_error(argv, e)} (see --help)', 2)
  deferred = _deferred_config_error(argv)
  if deferred:
    fail(program, f'{deferred} (see --help)', 2)
  return rest


def run(main: Callable[[list[str]], int | None], *, program: str,
        flags_parser: Callable[[list[str]], list[str]] | None = None) -> None:
  """`app.run(main)` with mistakes reported as described in the module docstring, `--help` exiting
  0, and library log chatter kept at debug level (`mbjax.logs.log_filter`); on CPU hosts first
  re-executed with malloc tuned for XLA (`mbjax.cli.allocator`) and given this CPU's fastest
  matmul path (`mbjax.cli.dot_path`)."""
  from mbjax.cli import allocator as cpu_allocator
  from mbjax.cli import dot_path
  cpu_allocator.reexec()
  try:
    dot_path.apply()
  except ValueError as e:  # a bad MBJAX_DOT_PATH
    fail(program, str(e), 2)

  def parser(argv):
    try:
      if flags_parser is None:
        return parse_flags(argv, program=program)
      return flags_parser(argv)
    except _PARSE_ERRORS as e:
      if show_tracebacks():
        raise
      fail(program, f'{_final_exception_line(str(e))} (see --help)', 2)
    except SystemExit as e:  # absl's --help and --helpfull exit 1 after printing the help
      if e.code == 1 and _HELP.intersection(a.lstrip('-').split('=', 1)[0] for a in argv[1:]):
        sys.exit(0)
      raise

  def start(argv):
    from mbjax.logs import log_filter
    log_filter.quiet_libraries()  # library chatter at debug level (mbjax/logs/log_filter.py)
    if not show_tracebacks():  # orbax's re-raised errors, tensorstore's closed-loop echoes
      log_filter.hide_reraised_library_errors()
    try:
      return call(program, main, argv)
    except app.UsageError as e:  # absl would print the whole usage text and exit 1
      if show_tracebacks():
        raise
      message = str(e)
      fail(program, message if '--help' in message else f'{message} (see --help)', 2)

  app.run(start, flags_parser=parser)


def os_error_line(e: OSError) -> str | None:
  """'PATH: No space left on device' for an OSError of the system where it writes or reads
  (OS_ERRNOS), else None."""
  if e.errno not in OS_ERRNOS:
    return None
  text = e.strerror or os.strerror(e.errno)
  if e.filename is None:
    return f'{text} (errno {errno.errorcode.get(e.errno, e.errno)})'
  where = os.fsdecode(e.filename) if isinstance(e.filename, bytes) else str(e.filename)
  if e.filename2 is not None:
    where = f'{where} -> {e.filename2}'
  return f'{where}: {text}'


def user_message(e: BaseException) -> str | None:
  """The one line that reports `e` to the user, or None for a bug (a traceback)."""
  if isinstance(e, OSError) and (line := os_error_line(e)) is not None:
    return line
  return str(e) if isinstance(e, USER_ERRORS) else None


def call(program: str, fn: Callable, *args):
  """`fn(*args)`, a USER_ERRORS exception or an OSError of OS_ERRNOS (a full disk, a read-only
  folder) reported as one line (exit status 1)."""
  try:
    return fn(*args)
  except Exception as e:  # pylint: disable=broad-except  # a bug is raised again below
    message = user_message(e)
    if message is None or show_tracebacks():
      raise
    logging.debug('%s failed', program, exc_info=True)
    fail(program, message, 1)
