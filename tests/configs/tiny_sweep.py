"""A sweep small enough for tests: `tiny_sweep.py:DATA_DIR` (tests/configs/tiny_pretrain.py).

Two runs (`a`: 4 steps, `b`: 12 steps with checkpoints every 2) of the tiny pretraining config.
"""

import importlib.util
import os

from mbjax.sweep.spec import Run


def get_config(arg: str):
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'tiny_pretrain.py')
  spec = importlib.util.spec_from_file_location('tiny_pretrain', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config(arg)
  c.scaling = dict(name='', size='', budget=0.0, steps=0, data_fraction=1.0,
                   metric='lifting/mpjpe_mm')
  return c


def sweep(arg: str):
  del arg
  return [Run('a', {'total_steps': 4, 'scaling.name': 'a', 'model.dim_feat': 32}),
          Run('b', {'total_steps': 12, 'scaling.name': 'b', 'data.fraction': 0.5})]
