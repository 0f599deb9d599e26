"""A Human3.6M pose finetuning config small enough for tests: `tiny_pose3d.py:DATA_DIR[,options]`.

Options: `global` (official rootrel=False), `noflip` (no train or test-time flip).
"""

from configs import pose3d_h36m

# maxlen stays 243: the h36m builder always cuts 243-frame clips.
TINY = dict(dim_feat=8, dim_rep=8, depth=1, num_heads=2, mlp_ratio=2, maxlen=243)


def get_config(arg: str):
  data_dir, *flags = arg.split(',')
  c = pose3d_h36m.get_config('global' if 'global' in flags else 'ft')
  c.model.update(TINY)
  c.epochs = 2
  c.batch_size = 4
  c.lr = 1e-3
  c.mesh_devices = 2  # two of the fake CPUs: batch sharding is exercised, compiling stays cheap
  c.data.data_dir = data_dir
  c.evals.h36m.update(every_steps=2, batch_size=4)  # before training and at the last step (2)
  c.checkpoint.update(every_steps=1, async_save=False)
  c.log_every_steps = 1
  if 'noflip' in flags:
    c.flip = False
    c.flip_test = False
  return c
