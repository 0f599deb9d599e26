"""MotionBERT pretraining (official MB_pretrain settings).

  python -m mbjax.main --config=configs/pretrain.py:lite --workdir=runs/pretrain_lite
  python -m mbjax.main --config=configs/pretrain.py:release --workdir=runs/pretrain_release
  python -m mbjax.main --config=configs/pretrain.py:tiny,runlocal --workdir=/tmp/pretrain_tiny

Variants: `release` (42.5M parameters, the paper's model), `lite` (16.0M), `tiny` (a few hundred
thousand, for tests and the demo). `runlocal` shrinks the run to a few steps on CPU. Datasets are
built first with `python -m data_prep.build NAME --source ... --data_dir data/tfds` for amass,
h36m, posetrack and instavariety.
"""

import ml_collections

from mbjax.models.dstformer import LITE, RELEASE

TINY = dict(dim_feat=32, mlp_ratio=2, depth=2, dim_rep=32, num_heads=4, maxlen=243)
MODELS = {'release': RELEASE, 'lite': LITE, 'tiny': TINY}


def get_config(arg: str = 'lite') -> ml_collections.ConfigDict:
  variant, *flags = arg.split(',')
  if variant not in MODELS:
    raise ValueError(f'configs/pretrain.py: unknown variant {variant!r}, expected one of '
                     f'{sorted(MODELS)} (optionally followed by ",runlocal")')
  c = ml_collections.ConfigDict()
  c.task = 'pretrain'
  c.seed = 0  # parameter init
  c.data_seed = 0  # order and augmentation of clips

  c.model = dict(MODELS[variant], dim_in=3, dim_out=3, num_joints=17, drop_rate=0.0,
                 attn_drop_rate=0.0, drop_path_rate=0.0, att_fuse=True, dtype='float32',
                 param_dtype='float32', attention_impl='einsum', remat_policy='none',
                 scan_layers=False, init_scheme='official')

  # Official schedule: 90 epochs, batch 64, AdamW lr 5e-4 wd 0.01, lr x0.99 per epoch, 3D only
  # for the first 30 epochs.
  c.epochs = 90
  c.curriculum_3d_epochs = 30
  c.batch_size = 64
  c.lr = 5e-4
  c.lr_head = None
  c.weight_decay = 0.01
  c.lr_decay = 0.99
  c.warmup_steps = 0
  c.grad_clip = 0.0
  c.head_patterns = ()
  c.partial_train = None
  c.freeze_patterns = ()
  c.total_steps = -1  # > 0 stops early
  c.grad_accum_steps = 1  # > 1: the batch is split into that many scanned micro-batches

  c.loss = dict(lambda_scale=0.5, lambda_3d_velocity=20.0, lambda_lv=0.0, lambda_lg=0.0,
                lambda_a=0.0, lambda_av=0.0)
  c.augment = dict(flip=True, noise=True, noise_path='', mask_ratio=0.05, mask_t_ratio=0.1,
                   scale_range_2d=(0.25, 1.0))
  c.data = dict(
      data_dir='data/tfds',
      sources_3d=[dict(name='amass', split='train', key='joints3d'),
                  dict(name='h36m', split='train', key='joint_3d')],
      sources_2d=[dict(name='posetrack', split='train', key='joint_2d', noise=True),
                  dict(name='instavariety', split='train', key='joint_2d', noise=False)],
      num_workers=0, prefetch=2)
  c.evals = ml_collections.ConfigDict()

  c.mesh = dict(data=-1, fsdp=1, tensor=1)
  c.fsdp = False
  c.tensor_parallel = False
  c.checkpoint = dict(every_steps=1000, keep=3, async_save=True)
  c.best_metric = ''
  c.log_every_steps = 50
  c.init_from = ''

  if 'runlocal' in flags:
    c.batch_size = 8
    c.total_steps = 20
    c.log_every_steps = 1
    c.checkpoint.every_steps = 10
  return c
