"""A Human3.6M pose finetuning config small enough for tests: `tiny_pose3d.py:DATA_DIR[,switch...]`.

Switches: `global` (official rootrel=False), `noflip` (no train or test-time flip), `val=S8`
(configs/validation.py), and those of every config (`runlocal`, `bf16`, `scan`, `fsdp=N`, `tp=N`;
see configs/common.py).
"""

from configs import common, pose3d_h36m, validation
from mbjax.models.dstformer import TINY

OPTIONS = ('global', 'noflip')


def get_config(arg: str):
  data_dir, switches = common.parse_arg(arg, config_file=__file__, variants=None, options=OPTIONS,
                                        valued=validation.VALUED)
  held_out = validation.held_out(switches, config_file=__file__)
  variant = 'global' if switches.get('global') else 'ft'
  c = pose3d_h36m.get_config(f'{variant},val={"+".join(held_out)}' if held_out else variant)
  c.finetune = False  # tests train from random init unless they give init_from
  c.model.update(TINY)  # maxlen 243: the h36m builder always cuts 243-frame clips
  c.epochs = 2
  c.batch_size = 4
  c.lr = 1e-3
  c.mesh_devices = 2  # two of the fake CPUs: batch sharding is exercised, compiling stays cheap
  c.data.data_dir = data_dir
  c.evals.h36m.update(every_steps=2, batch_size=4)  # before training and at the last step (2)
  if held_out:
    c.evals.h36m_val.batch_size = 4
  c.checkpoint.update(every_steps=1, async_save=False)
  c.log_every_steps = 1
  if switches.get('noflip'):
    c.flip = False
    c.flip_test = False
  common.apply_switches(c, switches)
  return c
