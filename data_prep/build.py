"""Builds one dataset from its published files into ArrayRecord (TFDS layout), without TensorFlow.

  python -m data_prep.build h36m --source data/motion3d/h36m_sh_conf_cam_source_final.pkl \
      --data_dir ~/mbjax_data
  python -m data_prep.build amass --source data/AMASS/amass_joints_h36m_60.pkl \
      --data_dir ~/mbjax_data --opt seed=1

`--opt key=value` (repeatable) passes options to the dataset's `generate`; values are Python
literals when they parse as one (1, 0.5, True, 'a', (1, 2)), else strings. ntu60 / ntu120 build
`data_prep.ntu` with option version=60 / 120. Prints progress (records/s) and the build report.
Exit status: 0 built, 1 bad data, 2 bad arguments.
"""

from __future__ import annotations

import ast
import pathlib
import sys
import time
from typing import Sequence

from absl import app, flags

from data_prep import builder
from mbjax import cli
from mbjax.data import build_options, records

PROG = 'python -m data_prep.build'
_SOURCE = flags.DEFINE_string('source', None, 'the published file or folder to read')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'TFDS data directory to write NAME/VERSION/ into')
_OPT = flags.DEFINE_multi_string('opt', [], 'KEY=VALUE option for the dataset module (repeatable)')


def parse_options(pairs: list[str] | None) -> dict:
  """['seed=1', 'name=abc'] -> {'seed': 1, 'name': 'abc'}."""
  options = {}
  for pair in pairs or []:
    key, sep, value = pair.partition('=')
    if not sep or not key.isidentifier():
      raise ValueError(f'--opt {pair!r}: expected key=value with a Python identifier as key')
    try:
      options[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      options[key] = value
  return options


class ProgressPrinter:
  """Prints `name split: N records, R records/s` lines as a build goes."""

  def __init__(self, name: str, stream=None):
    self.name = name
    self.stream = stream

  def __call__(self, split: str, count: int, seconds: float, done: bool) -> None:
    rate = count / max(seconds, 1e-9)
    state = 'done' if done else '...'
    print(f'{self.name} {split}: {count} records, {rate:.0f} records/s, {seconds:.1f} s {state}',
          file=self.stream or sys.stdout, flush=True)


def _usage_error(message: str) -> app.UsageError:
  return app.UsageError(message, exitcode=2)


def _arguments(argv: Sequence[str]) -> tuple[str, str, pathlib.Path, pathlib.Path, dict]:
  """(name as given, builder name, source, data_dir, options) from the parsed flags."""
  if len(argv) != 2:
    raise _usage_error(f'expected one dataset name (e.g. h36m, amass, ntu60), got {argv[1:]}')
  missing = [f'--{f.name}' for f in (_SOURCE, _DATA_DIR) if not f.value]
  if missing:
    raise _usage_error(f'{" and ".join(missing)} required')
  try:
    options = parse_options(_OPT.value)
    _, name, _ = builder.resolve(argv[1])
  except ValueError as e:
    raise _usage_error(str(e)) from e
  source = pathlib.Path(_SOURCE.value)
  if not source.exists():
    raise _usage_error(f'{name}: source {source} does not exist')
  return argv[1], name, source, pathlib.Path(_DATA_DIR.value), options


def main(argv: Sequence[str]) -> int:
  """Builds the dataset named in `argv` (after absl parsed the flags); returns the exit status."""
  requested, name, source, data_dir, options = _arguments(argv)
  start = time.perf_counter()
  try:
    report = builder.build(requested, source=source, data_dir=data_dir, options=options,
                           progress=ProgressPrinter(name))
  except build_options.OptionError as e:  # a bad --opt: a usage error
    print(f'{PROG}: error: {e}', file=sys.stderr)
    return 2
  except (ValueError, OSError) as e:
    print(f'error: {name}: {e}', file=sys.stderr)
    return 1
  print(f'{name}: built in {time.perf_counter() - start:.1f} s under '
        f'{records.dataset_dir(name, data_dir=data_dir)}')
  print(report)
  return 0


def run(args: Sequence[str]) -> int:
  """The command line without a process: `args` as after `python -m data_prep.build`.

  Returns the exit status of a build; bad arguments print the error and raise SystemExit(2).
  """
  flags.FLAGS.unparse_flags()  # a previous call's flags do not carry over
  try:
    argv = flags.FLAGS([PROG, *args])
    return main(argv)
  except (flags.Error, app.UsageError) as e:
    print(f'{PROG}: error: {e}', file=sys.stderr)
    raise SystemExit(getattr(e, 'exitcode', 2)) from e


if __name__ == '__main__':
  cli.run(main, program=PROG)
