"""python -m mbjax.scaling DIR: scaling laws of a sweep directory (one trainer workdir per run).

  python -m mbjax.scaling runs/sweep
  python -m mbjax.scaling runs/sweep --budget 1e20 --bootstrap 200 --out runs/sweep_fit --seed 0

Reads DIR/<run>/config.json and summary.json (mbjax/scaling/collect.py), writes runs.csv (every
run, finished or not), fits L(N, D) = E + A / N^alpha + B / D^beta (approach 3, with bootstrap
intervals), IsoFLOP profiles (approach 2) and leave-one-size-out errors, and prints them with the
compute-optimal N and D for --budget. scaling_fit.json holds all the numbers; the PNGs show loss vs
compute, the IsoFLOP profiles and fitted vs measured loss. Outputs go to --out (default DIR).
A mistake (no DIR, no finished runs, too few runs to fit) is one line and exit status 2.
"""

from __future__ import annotations

import json
import os

# Before numpy loads: L-BFGS-B on five parameters makes many tiny LAPACK calls, which threaded
# OpenBLAS runs about three times slower than one thread does.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

from absl import flags  # noqa: E402

from mbjax import cli  # noqa: E402


FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines this program's flags: called when it runs, so that importing the module
  defines none."""
  flags.DEFINE_float('budget', 1e20, 'compute budget C (FLOPs) for the compute-optimal '
                     'N and D')
  flags.DEFINE_integer('bootstrap', 200, 'bootstrap refits for the 5-95% intervals '
                       '(0: none)')
  flags.DEFINE_string('out', None, 'folder for runs.csv, scaling_fit.json and the PNGs '
                      '(default: DIR)')
  flags.DEFINE_integer('seed', 0, 'seed of the bootstrap resampling')
  flags.DEFINE_string('title_suffix', '', 'added to the plot titles, e.g. "toy"')


PROGRAM = 'mbjax.scaling'
USAGE = 'usage: python -m mbjax.scaling DIR [--budget 1e20] [--bootstrap 200] [--out DIR]'


def _check_flags(argv) -> str:
  """The sweep directory of the command line; ScalingError on a mistake."""
  from mbjax.scaling.collect import ScalingError
  if len(argv) != 2:
    raise ScalingError(f'expected one sweep directory, got {len(argv) - 1} arguments ({USAGE})')
  if not FLAGS.budget > 0:
    raise ScalingError(f'--budget should be a positive number of FLOPs, got {FLAGS.budget}')
  if FLAGS.bootstrap < 0:
    raise ScalingError(f'--bootstrap should be >= 0, got {FLAGS.bootstrap}')
  return argv[1]


def analyse_sweep(sweep_dir: str, out_dir: str):
  """Writes runs.csv, scaling_fit.json and the PNGs to `out_dir`; yields the lines to print as
  they are known (the table's summary before a fit that may fail)."""
  from mbjax.scaling import collect, plots, report
  rows = collect.collect(sweep_dir)
  os.makedirs(out_dir, exist_ok=True)
  csv_path = os.path.join(out_dir, 'runs.csv')
  collect.write_csv(rows, csv_path)
  yield collect.summary_line(rows)
  yield f'wrote {csv_path}'
  result = report.analyse(rows, budget=FLAGS.budget, num_boot=FLAGS.bootstrap,
                          seed=FLAGS.seed)
  paths = plots.write_all(report.arrays(rows), result, out_dir, FLAGS.title_suffix)
  json_path = os.path.join(out_dir, 'scaling_fit.json')
  result['paths'] = dict(runs_csv=csv_path, scaling_fit_json=json_path, **paths)
  with open(json_path, 'w') as f:
    json.dump(report.json_ready(result), f, indent=1)
  yield from report.lines(result)
  yield from (f'wrote {p}' for p in (json_path, *paths.values()))


def main(argv) -> int:
  from mbjax.scaling.collect import ScalingError
  try:
    sweep_dir = _check_flags(argv)
    for line in analyse_sweep(sweep_dir, FLAGS.out or sweep_dir):
      print(line, flush=True)
  except ScalingError as e:  # a user's mistake: one line, status 2
    if cli.show_tracebacks():
      raise
    cli.fail(PROGRAM, str(e), 2)
  return 0


if __name__ == '__main__':
  define_flags()
  cli.run(main, program=PROGRAM)
