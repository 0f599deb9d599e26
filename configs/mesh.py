"""MotionBERT mesh recovery (official train_mesh.py, configs/mesh/MB_{ft,train}_{pw3d,h36m}.yaml).

  python -m data_prep.build mesh_h36m --source data/mesh/mesh_det_h36m.pkl --data_dir data/tfds
  python -m data_prep.build mesh_coco --source data/mesh/mesh_det_coco.pkl --data_dir data/tfds
  python -m data_prep.build mesh_pw3d --source data/mesh/mesh_det_pw3d.pkl --data_dir data/tfds
  python -m mbjax.train --config=configs/mesh.py:pw3d --workdir=runs/mesh_pw3d \\
      --config.init_from=checkpoint/pretrain/MB_release/latest_epoch.bin
  python -m mbjax.evaluate --config=configs/mesh.py:pw3d --evals=test \\
      --checkpoint=runs/mesh_pw3d/best

`model.head.smpl_dir` (default data/mesh, the official data_root) holds SMPL_NEUTRAL.pkl with
J_regressor_h36m_correct.npy, J_regressor_extra.npy and smpl_mean_params.npz (README, "Mesh").

Variants: `pw3d` (MB_{ft,train}_pw3d.yaml: H36M + COCO + 3DPW, evaluate 3DPW) or `h36m`
(MB_{ft,train}_h36m.yaml: H36M only, every epoch; evaluate H36M), then at most one of `ft`
(default, MB_ft_*: finetune --config.init_from, lr 5e-5 backbone / 5e-4 head, 60 epochs),
`scratch` (MB_train_*: random init, lr 1e-4 everywhere, 60 epochs for pw3d and 100 for h36m),
`frozen` (no official file: `ft` with the pretrained backbone frozen, head only), and the
switches of every config (configs/common.py).

Every value with an mbjax counterpart equals the official file's (tests/test_config_parity.py
checks them against the official yaml). Differences from the official script: the best
checkpoint is kept on `val/mpve`, a seeded 5 % of the evaluated dataset's training split, whole
sequences (H36M: whole takes, all cameras) so that no validation frame is in a training clip
(mbjax/data/holdout.py; official: the best test MPJPE); COCO uses the same global batch as the
video datasets (official: batch_size_img).
"""

import ml_collections

from configs import common
from mbjax.models.dstformer import RELEASE

VARIANTS = ('pw3d', 'h36m')
MODES = ('ft', 'scratch', 'frozen')
# Variant -> what its official files (MB_ft_<variant>.yaml, MB_train_<variant>.yaml) set apart:
# the training datasets ('' for none: the h36m files have no dt_file_coco), the warmups (the
# epochs below which H36M / COCO train) and the epochs of MB_train_<variant>.
OFFICIAL = {
    'pw3d': dict(coco='mesh_coco', pw3d='mesh_pw3d', warmup_h36m=20, warmup_coco=100,
                 scratch_epochs=60),
    'h36m': dict(coco='', pw3d='', warmup_h36m=100, scratch_epochs=100),
}
LOSS = dict(loss_type='L1', lambda_3d=0.5, lambda_scale=0.0, lambda_3dv=10.0, lambda_lv=0.0,
            lambda_lg=0.0, lambda_a=0.0, lambda_av=0.0, lambda_pose=1000.0, lambda_shape=1.0,
            lambda_norm=20.0)


def get_config(arg: str = 'pw3d') -> ml_collections.ConfigDict:
  variant, switches = common.parse_arg(arg, config_file=__file__, variants=VARIANTS,
                                       options=MODES)
  modes = [m for m in MODES if switches.pop(m, False)]
  if len(modes) > 1:
    raise ValueError(f'configs/mesh.py: in {arg!r}: choose one of {", ".join(MODES)}, got '
                     f'{", ".join(modes)}')
  mode = modes[0] if modes else 'ft'
  c = ml_collections.ConfigDict()
  c.task = 'mesh'
  c.seed = 0
  c.data_seed = 0
  c.finetune = mode != 'scratch'
  c.model = dict(common.model(RELEASE),
                 head=dict(version='mesh', hidden_dim=1024, dropout_ratio=0.1,
                           smpl_dir='data/mesh'))
  c.clip_len = 16
  c.smpl_vertices = 6890  # for the FLOP count
  official = OFFICIAL[variant]
  if mode == 'scratch':  # MB_train_*: lr_backbone = lr_head = 1e-4 (one group)
    common.add_optimizer(c, epochs=official['scratch_epochs'], batch_size=128, lr=1e-4,
                         lr_decay=0.98)
  else:  # MB_ft_* (and `frozen`, which trains only the head)
    common.add_optimizer(c, epochs=60, batch_size=128, lr=5e-5, lr_decay=0.98)
  if mode != 'scratch':
    c.lr_head = 5e-4
    c.head_patterns = (r'^head/',)
  if mode == 'frozen':
    c.freeze_patterns = (r'^backbone/',)
  c.flip = True
  c.no_conf = False
  c.warmup_h36m = official['warmup_h36m']  # H36M trains in epochs below this
  if official['coco']:
    c.warmup_coco = official['warmup_coco']  # COCO likewise
  c.loss = dict(LOSS)
  val_dataset = f'mesh_{variant}'
  c.data = dict(data_dir='data/tfds', h36m='mesh_h36m', coco=official['coco'],
                pw3d=official['pw3d'], val_dataset=val_dataset,
                val_fraction=0.05, val_seed=0, num_workers=0, prefetch=2)
  c.evals = ml_collections.ConfigDict()
  c.evals.val = dict(type='mesh', dataset=val_dataset, part='val', every_steps=1000,
                     batch_size=32, flip=True)
  c.evals.test = dict(type='mesh', dataset=val_dataset, split='test', every_steps=0,
                      batch_size=32, flip=True)
  common.add_runtime(c)
  c.checkpoint.every_steps = 1000
  c.best_metric = 'val/mpve'
  common.apply_switches(c, switches)
  return c
