"""The embedded action demo: classify which shipped mocap recording a 2D clip comes from.

  python -m mbjax.demo --task action --workdir runs/demo_action
  python -m mbjax.demo --task action --workdir /tmp/demo_action --config.total_steps=5

Labels: the six real recordings of data_prep/assets/mocap (CMU walk, hop, jumping jacks, soccer
kick; FAIR dab, jumping), cut into 1 s clips and projected to 2D from camera yaws; training sees 8
yaws, the test split 4 others that training never sees (mbjax/demo/action_job.py). The model is
configs/action_custom.py's recipe (the `actions` dataset, the class head, crop-scale and
random_move augmentation) with the tiny DSTformer trained from scratch, shortened for the CPU
budget; written out here because the library never imports configs/.
"""

import ml_collections

from mbjax.models.dstformer import TINY

CLIP_LEN = 30  # frames per clip at FPS: one second
FPS = 30
TRAIN_YAWS = tuple(range(0, 360, 45))
TEST_YAWS = (22.5, 112.5, 202.5, 292.5)


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """The action demo config; it has no variants."""
  if arg:
    raise ValueError(f'mbjax/demo/action_config.py has no variants, got {arg!r}')
  c = ml_collections.ConfigDict()
  c.task = 'action'
  c.seed = 0
  c.data_seed = 0
  c.finetune = False  # from scratch: the demo has no pretrained backbone
  c.model = dict(TINY, maxlen=CLIP_LEN, dim_in=3, dim_out=3, num_joints=17, drop_rate=0.0,
                 attn_drop_rate=0.0, drop_path_rate=0.0, att_fuse=True, dtype='float32',
                 param_dtype='float32', attention_impl='xla', remat_policy='none',
                 scan_layers=False, init_scheme='fan_in',  # as the pose demo, for a short run
                 parameterization='standard', mup_base_width=64,
                 # dropout 0.1 instead of the official 0.5: with the tiny backbone and 336 steps,
                 # 0.5 ends at 54 % top-1 on the unseen yaws, 0.1 at 71 % (README, "Actions").
                 head=dict(version='class', num_classes=0, dropout_ratio=0.1, hidden_dim=2048))
  c.clip_len = CLIP_LEN
  c.label_names = ()  # from the dataset (num_classes=0)
  # AdamW wd 0.01, lr x0.99 per epoch as the official action recipe; a higher rate and fewer
  # epochs for the CPU budget.
  c.epochs = 12
  c.batch_size = 32
  c.lr = 1e-3
  c.lr_head = None
  c.weight_decay = 0.01
  c.lr_decay = 0.99
  c.warmup_steps = 0
  c.grad_clip = 0.0
  c.head_patterns = ()
  c.partial_train = None
  c.freeze_patterns = ()
  c.total_steps = -1
  c.grad_accum_steps = 1
  c.augment = dict(random_move=True, scale_range_train=(1, 3), scale_range_test=(2, 2))
  c.data = dict(data_dir='', dataset='actions', train_split='train', test_split='test',
                val_fraction=0.0, val_seed=0, num_workers=0, prefetch=2)
  c.evals = ml_collections.ConfigDict()
  c.evals.test = dict(type='action', split='test', every_steps=0, batch_size=32, num_clips=1)
  c.build = dict(clip_len=CLIP_LEN, stride=10, fps=FPS, train_yaws=TRAIN_YAWS,
                 test_yaws=TEST_YAWS)
  c.mesh = dict(data=-1, fsdp=1, tensor=1)
  c.fsdp = False
  c.tensor_parallel = False
  c.checkpoint = dict(every_steps=100, keep=2, async_save=True, snapshot_every_epochs=0)
  c.best_metric = ''
  c.log_every_steps = 10
  c.init_from = ''
  c.allow_config_change = False
  return c
