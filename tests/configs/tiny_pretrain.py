"""A pretraining config small enough for tests: `tiny_pretrain.py:DATA_DIR[,switch...]`.

Switches: `nan` (a learning rate that blows up), `long` (more steps, for kill/resume tests), and
those of every config (`runlocal`, `bf16`, `scan`, `fsdp=N`, `tp=N`; see configs/common.py).
"""

from configs import common, pretrain

OPTIONS = ('nan', 'long')


def get_config(arg: str):
  data_dir, switches = common.parse_arg(arg, config_file=__file__, variants=None, options=OPTIONS)
  c = pretrain.get_config('tiny')  # dstformer.TINY
  c.model.maxlen = 9  # the clips of the session datasets (tests/conftest.py)
  c.epochs = 4
  c.curriculum_3d_epochs = 1
  c.batch_size = 8
  c.lr = 1e-3
  c.data.data_dir = data_dir
  c.data.sources_3d = [dict(name='mocap', split='train', key='joints3d')]
  c.data.sources_2d = [dict(name='wild', split='train', key='joint_2d', noise=True)]
  c.evals.lifting = dict(type='lifting', name='mocap', split='test', key='joints3d',
                         every_steps=0, batch_size=64)
  c.checkpoint.every_steps = 2
  c.log_every_steps = 1
  c.total_steps = 10
  if switches.get('long'):
    c.total_steps = 40
  if switches.get('nan'):
    c.lr = 1e12
    c.checkpoint.every_steps = 1
  common.apply_switches(c, switches)
  return c
