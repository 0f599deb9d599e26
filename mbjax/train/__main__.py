"""Train from a config: python -m mbjax.train --config=configs/pretrain.py:lite --workdir=DIR.

(`python -m mbjax.main`, the older name, runs the same program.)

Overrides: --config.key=value (e.g. --config.batch_size=32 --config.model.dtype=bfloat16).
Multi-host: JAX's distributed runtime is initialised first (auto-detected on TPU VMs and SLURM;
explicit with --coordinator, --num_processes, --process_id).

Ctrl-C saves at the next step and exits 130 (a second Ctrl-C exits at once); SIGTERM saves and
exits 0. A workdir in use by another trainer, a non-finite loss and a full disk are one line on
stderr and status 1 (MBJAX_TRACEBACK=1 shows the traceback).
"""

import sys

from absl import flags, logging
from ml_collections import config_flags


FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines this program's flags: called when it runs, so that importing the module
  defines none."""
  config_flags.DEFINE_config_file('config', None, 'Config file (path:variant).',
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, 'Run folder: checkpoints, metrics, summary.')
  flags.DEFINE_string('coordinator', None, 'host:port of process 0 (multi-host).')
  flags.DEFINE_integer('num_processes', None, 'Number of processes.')
  flags.DEFINE_integer('process_id', None, 'This process (0..num_processes-1).')
  flags.mark_flags_as_required(['config', 'workdir'])


def initialize_distributed() -> None:
  import jax
  if FLAGS.coordinator:
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator,
                               num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  else:
    try:  # TPU VM pods and SLURM are detected by JAX itself
      jax.distributed.initialize()
    except (ValueError, RuntimeError) as e:
      logging.info('single process (%s)', e)


def main(argv, program: str = 'mbjax.train'):
  del argv
  from mbjax import cli
  from mbjax.logs import log_filter
  log_filter.quiet_libraries()
  initialize_distributed()
  from mbjax import train
  try:
    summary = train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except (train.NonFiniteLossError, train.WorkdirWriteError) as e:  # clear on their own
    if cli.show_tracebacks():
      raise
    cli.fail(program, str(e), 1)
  if summary.get('stopped_by') == 'SIGINT':
    print(f'{program}: interrupted at step {summary["step"]}: checkpoint saved in '
          f'{FLAGS.workdir}; run the same command to resume', file=sys.stderr, flush=True)
    return train.INTERRUPTED
  logging.info('done: %s', {k: v for k, v in summary.items() if k not in ('state', 'model')})
  return 0


def start(program: str = 'mbjax.train') -> None:
  """Defines the flags and runs the program (one-line mistakes, see mbjax.cli); Ctrl-C before
  the training loop (which saves first) exits 130 in one line."""
  from mbjax import cli
  define_flags()
  try:
    cli.run(lambda argv: main(argv, program), program=program)
  except KeyboardInterrupt:
    if cli.show_tracebacks():
      raise
    print(f'{program}: interrupted before training started; nothing saved', file=sys.stderr,
          flush=True)
    sys.exit(130)


if __name__ == '__main__':
  start()
