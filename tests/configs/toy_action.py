"""The test-only task of tests/toy_action_task.py: `toy_action.py:short` or `:long`, then the
switches of every config (configs/common.py)."""

import ml_collections

from configs import common
from mbjax.models.dstformer import TINY


def get_config(arg: str = 'short'):
  variant, switches = common.parse_arg(arg, config_file=__file__, variants=('short', 'long'))
  c = ml_collections.ConfigDict()
  c.task = 'tests.toy_action_task'
  c.seed = 0
  c.data_seed = 0
  c.model = dict(common.model(dict(TINY, maxlen=8)),
                 head=dict(version='class', num_classes=4, dropout_ratio=0.1))
  common.add_optimizer(c, epochs=2, batch_size=8, lr=1e-3, lr_decay=0.99)
  # fc1's bias feeds BatchNorm, which removes it: its true gradient is 0, and Adam would turn
  # rounding noise (which differs between 1 and 8 devices) into full-size steps of it and of the
  # running mean. Frozen, the 1-vs-8-device comparison compares what is learnt.
  c.freeze_patterns = (r'^head/fc1/bias$',)
  c.data = dict(clips=32, num_workers=0, prefetch=2)
  c.evals_every = 4
  common.add_runtime(c)
  c.checkpoint.update(every_steps=2, async_save=False)
  c.log_every_steps = 1
  c.total_steps = 6
  if variant == 'long':
    c.data.clips = 64
    c.epochs = 5
    c.total_steps = 40
  common.apply_switches(c, switches)
  return c
