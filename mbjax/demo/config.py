"""The embedded demo: pretrain a small DSTformer on the real mocap clips shipped in the repo.

  python -m mbjax.demo --workdir runs/demo
  python -m mbjax.demo --workdir /tmp/demo --config.total_steps=5   # a quick end-to-end check

3D source: CMU and FAIR recordings (data_prep/assets/mocap) seen from 8 camera yaws, with the full
MotionBERT corruption (noise, masks, flip). 2D source (after the 3D-only curriculum): the real
in-the-wild AlphaPose sequence (data_prep/assets/wild). Evaluation: 2D-to-3D lifting on the held-out
recording (131_03_hop) from 4 other yaws, against the mean-pose and zero-depth baselines.

It is `configs/pretrain.py:tiny` with the demo's changes, written out here because the library
never imports configs/; tests/test_demo.py checks that the two differ only in those changes.
"""

import ml_collections

from mbjax.models.dstformer import TINY

CLIP_LEN = 27  # short clips: more optimiser steps in the CPU time budget


def _model() -> dict:
  """DSTformer TINY on 27-frame clips, the official constructor defaults otherwise."""
  return dict(TINY, maxlen=CLIP_LEN, dim_in=3, dim_out=3, num_joints=17, drop_rate=0.0,
              attn_drop_rate=0.0, drop_path_rate=0.0, att_fuse=True, dtype='float32',
              param_dtype='float32', remat_policy='none', scan_layers=False,
              attention_impl='xla',
              # Two departures from the official recipe, each needed in this CPU budget
              # (README, "Demo", measures all four combinations): fan-in init instead of std
              # .02, whose near-uniform attention a 630-step run never leaves at dim 64 ...
              init_scheme='fan_in', parameterization='standard', mup_base_width=64)


def _add_schedule(c: ml_collections.ConfigDict) -> None:
  """AdamW as the official recipe (wd 0.01, lr decay per epoch), shortened for the CPU budget."""
  c.epochs = 14
  c.curriculum_3d_epochs = 7  # 3D only first, then 3D + 2D, as the official 30 of 90 epochs
  c.batch_size = 32
  c.lr = 2e-3  # a small model and few steps: a higher rate than the official 5e-4
  c.lr_head = None
  c.weight_decay = 0.01
  c.lr_decay = 0.97
  c.warmup_steps = 0
  c.grad_clip = 0.0
  c.head_patterns = ()
  c.partial_train = None
  c.freeze_patterns = ()
  c.total_steps = -1  # > 0 stops early
  c.grad_accum_steps = 1


def _add_data(c: ml_collections.ConfigDict) -> None:
  """Datasets the demo builds from the shipped recordings (the data_dirs are set at run time)."""
  # Unlike the official configs, 3D clips are crop-scaled to [-1, 1] (`scale_range_3d`): the
  # lifting evaluator and the demo's plots read the held-out clips normalised that way, and the
  # wild 2D clips are crop-scaled too; stored mocap clips are metres x 0.298 (a body ~0.5 units).
  c.augment = dict(flip=True, noise=True, noise_path='', mask_ratio=0.05, mask_t_ratio=0.1,
                   scale_range_2d=(0.25, 1.0), scale_range_3d=(1.0, 1.0))
  c.data = dict(
      data_dir='',  # set by the demo: <workdir>/tfds
      sources_3d=[dict(name='mocap', split='train', key='joints3d')],
      sources_2d=[dict(name='wild', split='train', key='joint_2d', noise=True)],
      fraction=1.0, num_workers=0, prefetch=2)
  # Held-out recording from 4 yaws the training views never use; built into its own data_dir.
  c.evals = ml_collections.ConfigDict()
  c.evals.lifting = dict(type='lifting', name='mocap', split='test', key='joints3d',
                         data_dir='', every_steps=0)
  c.build = dict(
      mocap=dict(clip_len=CLIP_LEN, stride=9, yaws=tuple(range(0, 360, 45)),
                 test_files=('131_03_hop',)),
      mocap_eval=dict(clip_len=CLIP_LEN, stride=CLIP_LEN, yaws=(22.5, 112.5, 202.5, 292.5),
                      test_files=('131_03_hop',)),
      wild=dict(clip_len=CLIP_LEN, stride=3),  # 74 overlapping windows of the one sequence
  )


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """The demo config; it has no variants."""
  if arg:
    raise ValueError(f'mbjax/demo/config.py has no variants, got {arg!r}')
  c = ml_collections.ConfigDict()
  c.task = 'pretrain'
  c.seed = 0  # parameter init
  c.data_seed = 0  # order and augmentation of clips
  c.model = _model()
  _add_schedule(c)
  # ... and no velocity term (official weight 20): with it, 630 steps end worse than zero depth
  # under either init. The corruption, curriculum and other loss terms are the official ones.
  c.loss = dict(lambda_scale=0.5, lambda_3d_velocity=0.0, lambda_lv=0.0, lambda_lg=0.0,
                lambda_a=0.0, lambda_av=0.0)
  c.rootrel = True  # official: targets (3D and 2D) root-relative
  c.no_conf = False  # official `no_conf` (configs/common.py add_input_switches): off
  c.gt_2d = False  # official `gt_2d`: off
  c.synthetic = True  # official `synthetic`: the mocap clips have no 2D of their own
  _add_data(c)
  c.mesh = dict(data=-1, fsdp=1, tensor=1)
  c.fsdp = False
  c.tensor_parallel = False
  c.checkpoint = dict(every_steps=100, keep=3, async_save=True, snapshot_every_epochs=0)
  c.best_metric = ''
  c.log_every_steps = 10
  c.init_from = ''
  c.allow_config_change = False  # resuming with a run-changing config stops (mbjax/train/config_diff.py)
  return c
