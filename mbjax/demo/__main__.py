"""python -m mbjax.demo --workdir DIR: the embedded demos (mbjax/demo/job.py, action_job.py).

  python -m mbjax.demo --workdir runs/demo                        # pretraining + 3D lifting
  python -m mbjax.demo --task action --workdir runs/demo_action   # action recognition
  python -m mbjax.demo --workdir /tmp/demo --config.epochs=3
  python -m mbjax.demo --workdir /tmp/demo --assets path/to/assets   # holding mocap/ and wild/

The config is the task's (mbjax/demo/config.py, mbjax/demo/action_config.py) unless --config
names another file; --config.key=value overrides a field, as for python -m mbjax.train.
"""

import pathlib
import sys

from absl import app, flags
from mbjax import cli
from mbjax.data import shipped

TASKS = {'pose': 'config.py', 'action': 'action_config.py'}  # --task -> its default config


def task_in(argv) -> str:
  """The --task of a command line, read before absl parses it: the default config is loaded (with
  the --config. overrides) when its flag is defined, and it depends on the task."""
  for i, arg in enumerate(argv):
    if arg.startswith('--task='):
      return arg.split('=', 1)[1]
    if arg == '--task' and i + 1 < len(argv):
      return argv[i + 1]
  return 'pose'


FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines this program's flags: called when it runs, so that importing the module
  defines none."""
  flags.DEFINE_enum('task', 'pose', list(TASKS), 'pose: pretraining and 3D lifting; '
                    'action: action recognition on the shipped recordings')
  cli.define_config_file(
      'config', str(pathlib.Path(__file__).with_name(TASKS.get(task_in(sys.argv), 'config.py'))),
      "Demo config file (default: the task's, mbjax/demo/config.py or action_config.py).",
      program='mbjax.demo')
  flags.DEFINE_string('workdir', None, 'Run folder: datasets, checkpoints, pictures.')
  flags.DEFINE_string(
      'assets', str(shipped.CHECKOUT_ASSETS),
      'Folder with the shipped recordings: mocap/ (BVH, ASF/AMC) and wild/ (AlphaPose json); '
      "default: the checkout's data_prep/assets.")
  flags.mark_flags_as_required(['workdir'])


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  for kind in shipped.CONTENTS:  # before anything is built: missing assets are bad input (exit 1)
    shipped.assets_dir(kind, FLAGS.assets)
  from mbjax.logs import log_filter
  from mbjax.demo import action_job, job
  log_filter.quiet_libraries(also=('mbjax/data',))  # per-file reader lines: the reports say it
  chosen = action_job if FLAGS.task == 'action' else job
  if FLAGS.config.task != ('action' if FLAGS.task == 'action' else 'pretrain'):
    raise app.UsageError(f'--task={FLAGS.task} with a config of task {FLAGS.config.task!r}')
  summary = chosen.run(FLAGS.workdir, config=FLAGS.config, assets=FLAGS.assets)
  print(chosen.describe(summary, FLAGS.workdir))
  return 0


if __name__ == '__main__':
  define_flags()
  cli.run(main, program='mbjax.demo')
