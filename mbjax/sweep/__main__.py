"""python -m mbjax.sweep --config=FILE:ARG --workdir=DIR [--launcher=local|slurm|print]: every run
of a sweep file (mbjax/sweep/spec.py, e.g. configs/scaling.py) as an ordinary trainer workdir
DIR/<run>.

  python -m mbjax.sweep --config=configs/scaling.py:demo --workdir=runs/scaling_demo
  python -m mbjax.sweep --config=configs/scaling.py:amass --workdir=/shared/sweep \\
      --launcher=slurm --parallel=16 --sbatch_args='--gpus-per-node=1 --time=8:00:00'
  python -m mbjax.sweep --config=configs/scaling.py:demo --workdir=DIR --launcher=print

`local` runs them here, `--parallel` at a time, each logging to DIR/<run>/sweep.log; `slurm`
writes DIR/sweep_commands.txt and submits one job array (launch/slurm_sweep.sh, one task per
run; `--dry_run` only writes it and prints the sbatch command); `print` prints one command per
run for any other scheduler. Finished runs are skipped, interrupted ones resume from their latest
checkpoint, so rerunning the same command completes a sweep. `--config.key=value` overrides
apply to every run. Then: python -m mbjax.scaling DIR.
"""

from __future__ import annotations

import os

from absl import flags
from ml_collections import config_flags

from mbjax import cli


FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines this program's flags: called when it runs, so that importing the module
  defines none."""
  config_flags.DEFINE_config_file('config', None, 'Sweep file (path:arg).',
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, 'Sweep folder: one trainer workdir per run.')
  flags.DEFINE_enum('launcher', 'local', ['local', 'slurm', 'print'],
                    'where the runs go')
  flags.DEFINE_integer('parallel', None, 'runs at a time: here (local; default 1), or '
                       'the job array\'s limit of running tasks (slurm; default none)')
  flags.DEFINE_string('sbatch_args', '', 'extra sbatch arguments (slurm)')
  flags.DEFINE_bool('dry_run', False, 'slurm: write the job array, do not submit')
  flags.mark_flags_as_required(['config', 'workdir'])


PROGRAM = 'mbjax.sweep'


def _plan(sweep_dir: str):
  """(config 'FILE:ARG', runs, overrides common to every run) of the command line."""
  from mbjax.sweep import spec
  config = config_flags.get_config_filename(flags.FLAGS['config'])
  path, _, arg = config.partition(':')
  module = spec.load_module(path)
  runs = spec.runs_of(module, arg)
  common = dict(config_flags.get_override_values(flags.FLAGS['config']))
  prepare = getattr(module, 'prepare', None)
  if callable(prepare) and FLAGS.launcher != 'print':
    common.update(prepare(arg, sweep_dir) or {})
  return config, runs, common


def main(argv) -> int:
  del argv
  from mbjax.logs import log_filter
  from mbjax.sweep import launchers, spec
  log_filter.quiet_libraries()
  sweep_dir = os.path.abspath(FLAGS.workdir)
  config, runs, common = _plan(sweep_dir)
  todo = launchers.pending(runs, sweep_dir)
  commands = [spec.train_command(config, run, sweep_dir, common) for run, _ in todo]
  if FLAGS.launcher == 'print':
    launchers.print_commands(commands)
    return 0
  finished = len(runs) - len(todo)
  interrupted = sum(state == 'interrupted' for _, state in todo)
  print(f'{PROGRAM}: {len(runs)} runs in {sweep_dir}: {finished} finished (skipped), '
        f'{interrupted} interrupted (resumed), {len(todo) - interrupted} new', flush=True)
  if not todo:
    return 0
  if FLAGS.launcher == 'slurm':
    path, sbatch = launchers.slurm_files(commands, sweep_dir, max_parallel=FLAGS.parallel or 0,
                                         sbatch_args=FLAGS.sbatch_args)
    print(f'wrote {path}')
    if FLAGS.dry_run:
      print(spec.shell_line(sbatch))
    else:
      print(launchers.submit(sbatch))
    return 0
  failed = launchers.run_local([(run, argv) for (run, _), argv in zip(todo, commands)],
                               sweep_dir, parallel=FLAGS.parallel or 1, total=len(runs),
                               env=launchers.local_env(sweep_dir))
  if failed:
    cli.fail(PROGRAM, f'{len(failed)} runs failed: {", ".join(failed)} (see each run\'s '
             'sweep.log); rerun the same command to retry them', 1)
  print(f'{PROGRAM}: all {len(runs)} runs finished; next: python -m mbjax.scaling {sweep_dir}')
  return 0


if __name__ == '__main__':
  define_flags()
  cli.run(main, program=PROGRAM)
