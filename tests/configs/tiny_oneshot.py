"""An NTU-120 one-shot config small enough for tests: `tiny_oneshot.py:DATA_DIR[,scratch]`.

configs/action_ntu120_oneshot.py with the tiny model at 9 frames, batch 4 (2 classes x 2 clips) on
two fake CPUs, one epoch, then the switches of every config (configs/common.py).
"""

from configs import action_ntu120_oneshot, common
from mbjax.models.dstformer import TINY

OPTIONS = ('scratch',)


def get_config(arg: str):
  data_dir, switches = common.parse_arg(arg, config_file=__file__, variants=None,
                                        options=OPTIONS)
  c = action_ntu120_oneshot.get_config('scratch' if switches.pop('scratch', False) else 'ft')
  c.model.update(dict(TINY, maxlen=9))
  c.clip_len = 9
  c.epochs = 1
  c.batch_size = 4
  c.mesh_devices = 2  # batch sharding exercised, compiling stays cheap
  c.data.data_dir = data_dir
  c.evals.test.update(every_steps=3, batch_size=4)
  c.checkpoint.update(every_steps=3, async_save=False)
  c.log_every_steps = 1
  common.apply_switches(c, switches)
  return c
