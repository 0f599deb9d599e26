"""A pretraining config small enough for tests: `tiny_pretrain.py:DATA_DIR[,options]`.

Options: `nan` (a learning rate that blows up), `long` (more steps, for kill/resume tests).
"""

from configs import pretrain


def get_config(arg: str):
  data_dir, *flags = arg.split(',')
  c = pretrain.get_config('tiny')
  c.model.update(dim_feat=16, dim_rep=16, depth=1, num_heads=2, mlp_ratio=2, maxlen=9)
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
  if 'long' in flags:
    c.total_steps = 40
  if 'nan' in flags:
    c.lr = 1e12
    c.checkpoint.every_steps = 1
  return c
