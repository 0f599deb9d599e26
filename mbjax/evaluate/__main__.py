"""python -m mbjax.evaluate --config=configs/pose3d_h36m.py:ft --checkpoint=PATH [--out=eval.json]

Human3.6M evaluation with the settings of a pose3d config (data_dir, model size, flip test).
PATH: an official `.bin` (e.g. FT_MB_release_MB_ft_h36m/best_epoch.bin), an mbjax.convert
directory, or a finetuning run's workdir. Same protocol as `python -m mbjax.evaluate.h36m`.
"""

import json
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'pose3d config (path:variant).')
_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'official .bin, convert dir or workdir')
_OUT = flags.DEFINE_string('out', 'eval.json', 'where to write the results')
_GT_2D = flags.DEFINE_bool('gt_2d', False, 'ground-truth 2D input instead of detections')
flags.mark_flags_as_required(['config', 'checkpoint'])


def main(argv):
  del argv
  from mbjax.evaluate import h36m
  config = _CONFIG.value
  model = {k: v for k, v in config.model.items() if k not in ('dtype', 'param_dtype')}
  args = ['--data_dir', config.data.data_dir, '--checkpoint', _CHECKPOINT.value,
          '--out', _OUT.value, '--config_json', json.dumps(model)]
  if not config.get('flip_test', True):
    args.append('--no-flip')
  if _GT_2D.value:
    args.append('--gt_2d')
  return h36m.main(args)


if __name__ == '__main__':
  sys.exit(app.run(main))
