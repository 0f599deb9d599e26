"""MotionBERT pretraining (official MB_pretrain settings).

  python -m mbjax.train --config=configs/pretrain.py:lite --workdir=runs/pretrain_lite
  python -m mbjax.train --config=configs/pretrain.py:release --workdir=runs/pretrain_release
  python -m mbjax.train --config=configs/pretrain.py:tiny,runlocal --workdir=/tmp/pretrain_tiny
  python -m mbjax.train --config=configs/pretrain.py:release,bf16,fsdp=4 --workdir=runs/pretrain_fsdp

Variants: `release` (42.5M parameters, the paper's model), `lite` (16.0M), `tiny`
(`dstformer.TINY`, the one small model of tests, the demo and runlocal). Switches after the
variant: `runlocal` (a few steps on CPU), `bf16`, `scan`, `fsdp=N`, `tp=N`, `no_conf`
(configs/common.py), and `val=S8` (configs/validation.py): S8 held out of the H36M training
clips and evaluated every epoch (`h36m_val/mpjpe_px`, in pixels) to keep the best checkpoint,
with the H36M test split reported at the start and the end (the official code evaluates the test
split every epoch and selects on it).
An unknown word is an error. Datasets are built first with
`python -m data_prep.build NAME --source ... --data_dir data/tfds` for amass, h36m, posetrack and
instavariety.
"""

import ml_collections

from configs import common, validation
from mbjax.models.dstformer import LITE, RELEASE, TINY

MODELS = {'release': RELEASE, 'lite': LITE, 'tiny': TINY}


def get_config(arg: str = 'lite') -> ml_collections.ConfigDict:
  variant, switches = common.parse_arg(arg, config_file=__file__, variants=list(MODELS),
                                      options=common.INPUT_OPTIONS,
                                      valued=validation.VALUED)
  held_out = validation.held_out(switches, config_file=__file__)
  c = ml_collections.ConfigDict()
  c.task = 'pretrain'
  c.seed = 0  # parameter init
  c.data_seed = 0  # order and augmentation of clips

  c.model = common.model(MODELS[variant])

  # Official schedule: 90 epochs, batch 64, AdamW lr 5e-4 wd 0.01, lr x0.99 per epoch, 3D only
  # for the first 30 epochs. The paper says 80 epochs; MB_pretrain.yaml runs 90, and so do we.
  common.add_optimizer(c, epochs=90, batch_size=64, lr=5e-4, lr_decay=0.99)
  c.curriculum_3d_epochs = 30
  c.loss = common.loss_3d()
  # Official `rootrel`: 3D and 2D targets minus their root joint in every frame; False keeps
  # x, y as stored and moves the 3D depth so the first frame's root is at 0 (train.py).
  c.rootrel = True
  common.add_input_switches(c)
  # Official `synthetic`: the 2D input of the 3D sources is their own x, y (confidence 1), then
  # noised and masked; False takes each source's stored 2D (`key_2d`, e.g. H36M's detected
  # `joint_2d`; AMASS has none). `gt_2d` (common.add_input_switches) also forces synthetic 2D.
  c.synthetic = True
  # Masks only when both ratios are > 0 (official). `scale_range_3d` (official
  # `scale_range_pretrain`, set by no official config): () feeds 3D clips as stored (H36M in
  # camera-normalised units, AMASS in metres x 0.298); e.g. (1, 1) crop-scales each to [-1, 1].
  c.augment = dict(flip=True, noise=True, noise_path='', mask_ratio=0.05, mask_t_ratio=0.1,
                   scale_range_2d=(0.25, 1.0), scale_range_3d=())
  c.data = dict(
      data_dir='data/tfds',
      # One shuffled phase over all 3D sources (official ConcatDataset); `key` is each source's
      # 3D field, `key_2d` its stored 2D (read only with synthetic=False).
      sources_3d=[dict(name='amass', split='train', key='joints3d'),
                  dict(name='h36m', split='train', key='joint_3d', key_2d='joint_2d')],
      sources_2d=[dict(name='posetrack', split='train', key='joint_2d', noise=True),
                  dict(name='instavariety', split='train', key='joint_2d', noise=False)],
      # Keep the first `fraction` of every training source's clips (scaling sweeps' data axis).
      fraction=1.0, num_workers=0, prefetch=2)
  c.evals = ml_collections.ConfigDict()

  common.add_runtime(c)
  if held_out:  # `val=S8`: the official per-epoch H36M evaluation, on held-out training subjects
    h36m = next(s for s in c.data.sources_3d if s['name'] == 'h36m')
    validation.add_h36m_validation(c, held_out, train_spec=h36m,
                                   runlocal=switches.get('runlocal', False))
    c.evals.h36m = dict(split='test', every_steps=0, batch_size=32)  # reported, never selects
  common.apply_switches(c, switches)
  return c
