"""configs/action_custom.py small enough for tests: `tiny_action_custom.py:DATA_DIR[,mode]`.

The tiny model at 9 frames, batch 4 on two fake CPUs, 2 epochs, a quarter of `train` held out for
validation; mode is one of configs/action_ntu60.py's MODES (default scratch: no init_from).
"""

from configs import action_custom, action_ntu60, common
from mbjax.models.dstformer import TINY


def get_config(arg: str):
  data_dir, switches = common.parse_arg(arg, config_file=__file__, variants=None,
                                        options=action_ntu60.MODES)
  modes = [m for m in action_ntu60.MODES if switches.pop(m, False)] or ['scratch']
  c = action_custom.get_config(modes[0])
  c.model.update(dict(TINY, maxlen=9))
  c.clip_len = 9
  c.epochs = 2
  c.batch_size = 4
  c.mesh_devices = 2
  c.data.data_dir = data_dir
  c.data.val_fraction = 0.25
  c.evals.val.update(every_steps=2, batch_size=4)
  c.evals.test.update(every_steps=0, batch_size=4)
  c.checkpoint.update(every_steps=2, async_save=False)
  c.log_every_steps = 1
  common.apply_switches(c, switches)
  return c
