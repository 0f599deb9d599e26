"""python -m mbjax.checkpoint check PATH [PATH ...]: what a checkpoint holds and what takes it.

  python -m mbjax.checkpoint check checkpoint/pretrain/MB_release/latest_epoch.bin
  python -m mbjax.checkpoint check ckpt/mb_release        # an mbjax.convert directory
  python -m mbjax.checkpoint check runs/demo              # a trainer or demo workdir
  python -m mbjax.checkpoint check runs/demo --json       # the same as one JSON object per path

For each PATH: the container (official .bin, convert directory, workdir), the model kind (pose,
action-class, action-embed, mesh), the DSTformer size and variant, the clip length (maxlen), the
joints, the number of parameters, for a workdir its task and training step, and the command lines
that accept it (mbjax/checkpoint/describe.py). Nothing is built or compiled.
"""

import json

from absl import app, flags

FLAGS = flags.FLAGS
ACTIONS = ('check',)


def define_flags() -> None:
  """Defines this program's flags: called when it runs, so that importing the module
  defines none."""
  flags.DEFINE_bool('json', False, 'print one JSON object per path instead of the report')


def main(argv) -> int:
  if len(argv) < 3 or argv[1] not in ACTIONS:
    raise app.UsageError('usage: python -m mbjax.checkpoint check PATH [PATH ...]')
  from mbjax.checkpoint import describe
  for path in argv[2:]:
    info = describe.describe(path)
    if FLAGS.json:
      print(json.dumps(dict(info, commands=describe.commands(info))))
    else:
      print(describe.report(info))
  return 0


if __name__ == '__main__':
  define_flags()
  from mbjax import cli
  cli.run(main, program='mbjax.checkpoint')
