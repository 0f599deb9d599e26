"""Builds one dataset from its published files into ArrayRecord (TFDS layout), without TensorFlow.

  python -m data_prep.build h36m --source data/motion3d/h36m_sh_conf_cam_source_final.pkl \
      --data_dir ~/mbjax_data
  python -m data_prep.build amass --source data/AMASS/amass_joints_h36m_60.pkl \
      --data_dir ~/mbjax_data --opt seed=1

`--opt key=value` (repeatable) passes options to the dataset's `generate`; values are Python
literals when they parse as one (1, 0.5, True, 'a', (1, 2)), else strings. ntu60 / ntu120 build
`data_prep.ntu` with option version=60 / 120. Prints progress (records/s) and the build report.
"""

from __future__ import annotations

import argparse
import ast
import pathlib
import sys
import time

from data_prep import builder
from mbjax.data import records


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

  def __call__(self, split: str, records: int, seconds: float, done: bool) -> None:
    rate = records / max(seconds, 1e-9)
    state = 'done' if done else '...'
    print(f'{self.name} {split}: {records} records, {rate:.0f} records/s, {seconds:.1f} s {state}',
          file=self.stream or sys.stdout, flush=True)


def main(argv: list[str] | None = None) -> int:
  """Runs the CLI; returns the exit status (0 ok, 1 bad data, 2 bad arguments)."""
  parser = argparse.ArgumentParser(
      prog='python -m data_prep.build',
      description='Build one dataset (published raw files -> ArrayRecord via TFDS).')
  parser.add_argument('name', help='dataset name, e.g. h36m, amass, ntu60')
  parser.add_argument('--source', required=True, type=pathlib.Path,
                      help='the published file or folder to read')
  parser.add_argument('--data_dir', required=True, type=pathlib.Path,
                      help='TFDS data directory to write NAME/VERSION/ into')
  parser.add_argument('--opt', action='append', metavar='KEY=VALUE', default=[],
                      help='option for the dataset module (repeatable)')
  args = parser.parse_args(argv)

  try:
    options = parse_options(args.opt)
  except ValueError as e:
    parser.error(str(e))
  try:
    _, name, _ = builder.resolve(args.name)
  except ValueError as e:
    parser.error(str(e))
  if not args.source.exists():
    parser.error(f'{name}: source {args.source} does not exist')

  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tfds.disable_progress_bar()  # our own progress lines instead of tqdm bars
  start = time.perf_counter()
  try:
    report = builder.build(args.name, source=args.source, data_dir=args.data_dir,
                           options=options, progress=ProgressPrinter(name))
  except (ValueError, FileNotFoundError) as e:
    print(f'error: {name}: {e}', file=sys.stderr)
    return 1
  print(f'{name}: built in {time.perf_counter() - start:.1f} s under '
        f'{records.dataset_dir(name, data_dir=args.data_dir)}')
  print(report)
  return 0


if __name__ == '__main__':
  sys.exit(main())
