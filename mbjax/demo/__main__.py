"""python -m mbjax.demo --workdir DIR: the embedded demo (see mbjax/demo/job.py).

  python -m mbjax.demo --workdir runs/demo
  python -m mbjax.demo --workdir /tmp/demo --config.epochs=3
  python -m mbjax.demo --workdir /tmp/demo --assets path/to/assets   # holding mocap/ and wild/

The config is mbjax/demo/config.py unless --config names another file; --config.key=value
overrides a field, as for python -m mbjax.main.
"""

import pathlib

from absl import app, flags
from mbjax import cli
from mbjax.data import shipped

_CONFIG = cli.define_config_file(
    'config', str(pathlib.Path(__file__).with_name('config.py')),
    'Demo config file (default: the shipped mbjax/demo/config.py).', program='mbjax.demo')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder: datasets, checkpoints, pictures.')
_ASSETS = flags.DEFINE_string(
    'assets', str(shipped.CHECKOUT_ASSETS),
    'Folder with the shipped recordings: mocap/ (BVH, ASF/AMC) and wild/ (AlphaPose json); '
    "default: the checkout's data_prep/assets.")
flags.mark_flags_as_required(['workdir'])


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  try:  # before anything is built: a clear message, not a traceback
    for kind in shipped.CONTENTS:
      shipped.assets_dir(kind, _ASSETS.value)
  except FileNotFoundError as e:
    raise app.UsageError(str(e)) from e
  from mbjax import log_filter
  from mbjax.demo import job
  log_filter.quiet_libraries()
  summary = job.run(_WORKDIR.value, config=_CONFIG.value, assets=_ASSETS.value)
  print(job.describe(summary, _WORKDIR.value))
  return 0


if __name__ == '__main__':
  cli.run(main, program='mbjax.demo')
