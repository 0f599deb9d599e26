"""Train from a config: python -m mbjax.main --config=configs/pretrain.py:lite --workdir=DIR.

Overrides: --config.key=value (e.g. --config.batch_size=32 --config.model.dtype=bfloat16).
Multi-host: JAX's distributed runtime is initialised first (auto-detected on TPU VMs and SLURM;
explicit with --coordinator, --num_processes, --process_id).
"""

from absl import flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file (path:variant).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder: checkpoints, metrics, summary.')
_COORDINATOR = flags.DEFINE_string('coordinator', None, 'host:port of process 0 (multi-host).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process (0..num_processes-1).')
flags.mark_flags_as_required(['config', 'workdir'])


def initialize_distributed() -> None:
  import jax
  if _COORDINATOR.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  else:
    try:  # TPU VM pods and SLURM are detected by JAX itself
      jax.distributed.initialize()
    except (ValueError, RuntimeError) as e:
      logging.info('single process (%s)', e)


def main(argv):
  del argv
  from mbjax import log_filter
  log_filter.quiet_libraries()
  initialize_distributed()
  from mbjax import train
  summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  logging.info('done: %s', {k: v for k, v in summary.items() if k not in ('state', 'model')})


if __name__ == '__main__':
  from mbjax import cli
  cli.run(main, program='mbjax.main')
