"""Scaling-law sweeps of motion pretraining: model size x compute (IsoFLOP) or x data.

  python -m mbjax.sweep --config=configs/scaling.py:demo --workdir=runs/scaling_demo
  python -m mbjax.scaling runs/scaling_demo --title_suffix='toy: shipped mocap, CPU'
  python -m mbjax.sweep --config=configs/scaling.py:pretrain --workdir=/shared/sweep \\
      --config.data.data_dir=/shared/tfds --launcher=slurm --sbatch_args='--gpus-per-node=1'

Variants (then the common switches of configs/common.py, e.g. `pretrain,bf16,fsdp=4`):
  demo      3 sizes x 3 compute budgets on the shipped mocap (built by `prepare` into the sweep
            folder), 3D-only pretraining with the full corruption; about 11 minutes on 2 CPU
            cores. A toy: its numbers say nothing about real pretraining.
  pretrain  5 sizes (MB-Lite to beyond the release model's width) x 4 budgets (1e17-1e19 FLOPs)
            on AMASS + H36M, the official recipe otherwise (configs/pretrain.py).
  data      the pretrain sizes x 3 data fractions (the first 25/50/100% of the clips) at a fixed
            step count: the data axis at equal steps.

Each run is `get_config(variant)` with its model size, step count (IsoFLOP: the steps that spend
the budget at that size, `mbjax.sweep.spec.isoflop_steps`), data fraction and the `scaling` dict
(name, size, budget, steps, data_fraction, metric) that `python -m mbjax.scaling` reads. The
learning rate follows a cosine to 10% over each run's own steps (`lr_schedule='cosine'`).
"""

from __future__ import annotations

import copy
import glob
import itertools
import os

import ml_collections

from configs import common, pretrain
from mbjax.sweep.spec import Run, isoflop_steps

# name -> (dim_feat, depth, num_heads, mlp_ratio); dim_rep follows dim_feat.
DEMO_SIZES = {'d32_l1': (32, 1, 2, 2), 'd48_l1': (48, 1, 4, 2), 'd64_l2': (64, 2, 4, 2)}
DEMO_BUDGETS = (1e12, 2e12, 4e12)
PRETRAIN_SIZES = {'d256_l5': (256, 5, 8, 4), 'd384_l5': (384, 5, 8, 2), 'd512_l5': (512, 5, 8, 2),
                  'd640_l6': (640, 6, 8, 2), 'd768_l8': (768, 8, 12, 2)}
PRETRAIN_BUDGETS = (1e17, 3e17, 1e18, 1e19)
DATA_FRACTIONS = (0.25, 0.5, 1.0)
DATA_STEPS = 20_000
VARIANTS = ('demo', 'pretrain', 'data')


def _parse(arg: str) -> tuple[str, dict]:
  """(variant, switches) of `VARIANT[,switch...]`: the common switches (bf16, fsdp=N, ...)."""
  return common.parse_arg(arg, config_file=__file__, variants=VARIANTS)


def _demo_config() -> ml_collections.ConfigDict:
  """The embedded demo's pretraining (mbjax/demo/config.py), 3D only, long enough for any run."""
  from mbjax.demo import config as demo_config
  c = demo_config.get_config()
  c.data.sources_2d = []
  c.batch_size = 8  # more updates per FLOP: at these budgets the step count decides the loss
  c.epochs = 1000  # runs stop at their own total_steps
  c.curriculum_3d_epochs = c.epochs
  c.checkpoint.every_steps = 200
  c.log_every_steps = 20
  return c


def get_config(arg: str = 'demo') -> ml_collections.ConfigDict:
  """The config every run of the variant starts from (an ordinary trainer config)."""
  variant, switches = _parse(arg)
  c = _demo_config() if variant == 'demo' else pretrain.get_config('lite')
  with c.unlocked():
    if variant != 'demo':
      c.evals.lifting = dict(type='lifting', name='h36m', split='test', key='joint_3d',
                             every_steps=0, batch_size=64)
      c.epochs = 1000
      c.curriculum_3d_epochs = 30
    c.total_steps = DATA_STEPS if variant == 'data' else c.get('total_steps', -1)
    # Each run's learning rate follows a cosine to 10% over its own steps (Hoffmann et al. 2022:
    # a schedule longer than the run overstates the loss of short runs).
    c.lr_schedule = 'cosine'
    c.lr_final_ratio = 0.1
    c.scaling = dict(name='', size='', budget=0.0, steps=0, data_fraction=1.0,
                     metric='lifting/mpjpe_mm')
  common.apply_switches(c, switches)
  return c


def _size_overrides(size: tuple) -> dict:
  dim, depth, heads, ratio = size
  return {'model.dim_feat': dim, 'model.dim_rep': dim, 'model.depth': depth,
          'model.num_heads': heads, 'model.mlp_ratio': ratio}


def flops_per_step(config, size: tuple) -> float:
  """The pretrain task's FLOPs of one step of `config` at `size`."""
  from mbjax.tasks import pretrain as pretrain_task
  c = copy.deepcopy(config)
  with c.unlocked():
    for key, value in _size_overrides(size).items():
      setattr(c.model, key.split('.')[1], value)
  return pretrain_task.flops_per_step(c)


def _run(name: str, size_name: str, size: tuple, *, steps: int, budget: float = 0.0,
         fraction: float = 1.0) -> Run:
  return Run(name, {**_size_overrides(size), 'total_steps': steps, 'data.fraction': fraction,
                    'scaling.name': name, 'scaling.size': size_name,
                    'scaling.budget': float(budget), 'scaling.steps': steps,
                    'scaling.data_fraction': fraction})


def sweep(arg: str = 'demo') -> list[Run]:
  """The runs of the variant (see the module docstring)."""
  base, variant = get_config(arg), _parse(arg)[0]
  if variant == 'data':
    return [_run(f'{n}_f{f:g}', n, s, steps=DATA_STEPS, fraction=f)
            for (n, s), f in itertools.product(PRETRAIN_SIZES.items(), DATA_FRACTIONS)]
  sizes, budgets = ((DEMO_SIZES, DEMO_BUDGETS) if variant == 'demo'
                    else (PRETRAIN_SIZES, PRETRAIN_BUDGETS))
  runs = []
  for (name, size), budget in itertools.product(sizes.items(), budgets):
    steps = isoflop_steps(budget, flops_per_step(base, size))
    runs.append(_run(f'{name}_c{budget:.0e}'.replace('+', ''), name, size, steps=steps,
                     budget=budget))
  return runs


def prepare(arg: str, sweep_dir: str) -> dict:
  """Before the runs: the demo builds the shipped mocap into <sweep_dir>/data (once) and points
  every run at it; the other variants read datasets built with data_prep."""
  if _parse(arg)[0] != 'demo':
    return {}
  from mbjax.demo import job
  data = os.path.join(sweep_dir, 'data')
  if not glob.glob(os.path.join(data, 'tfds_eval', 'mocap', '*', 'dataset_info.json')):
    job.build_datasets(data, get_config(arg))  # the last of its builds is tfds_eval
  return {'data.data_dir': os.path.join(data, 'tfds'),
          'evals.lifting.data_dir': os.path.join(data, 'tfds_eval')}
