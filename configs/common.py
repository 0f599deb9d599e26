"""Config blocks every task shares: model fields, optimiser, loss weights, mesh/checkpoint/logging.

Task configs (pretrain.py, pose3d_h36m.py) call these and then set what is theirs.
"""

import ml_collections


def model(size: dict) -> dict:
  """DSTformer fields: the official constructor arguments at `size`, plus the scale-out knobs."""
  return dict(size, dim_in=3, dim_out=3, num_joints=17, drop_rate=0.0, attn_drop_rate=0.0,
              drop_path_rate=0.0, att_fuse=True, dtype='float32', param_dtype='float32',
              attention_impl='einsum', remat_policy='none', scan_layers=False,
              init_scheme='official')


def add_optimizer(c: ml_collections.ConfigDict, *, epochs: int, batch_size: int, lr: float,
                  lr_decay: float) -> None:
  """AdamW with wd 0.01 and lr x`lr_decay` per epoch (official); warmup and clipping off."""
  c.epochs = epochs
  c.batch_size = batch_size
  c.lr = lr
  c.lr_head = None
  c.weight_decay = 0.01
  c.lr_decay = lr_decay
  c.warmup_steps = 0
  c.grad_clip = 0.0
  c.head_patterns = ()
  c.partial_train = None
  c.freeze_patterns = ()
  c.total_steps = -1  # > 0 stops early
  c.grad_accum_steps = 1  # > 1: the batch is split into that many scanned micro-batches


def loss_3d() -> dict:
  """Official 3D loss weights: MPJPE + 0.5 N-MPJPE + 20 velocity; limb/angle terms off."""
  return dict(lambda_scale=0.5, lambda_3d_velocity=20.0, lambda_lv=0.0, lambda_lg=0.0,
              lambda_a=0.0, lambda_av=0.0)


def add_runtime(c: ml_collections.ConfigDict) -> None:
  """Mesh, checkpointing, logging and initialisation defaults."""
  c.mesh = dict(data=-1, fsdp=1, tensor=1)
  c.fsdp = False
  c.tensor_parallel = False
  c.checkpoint = dict(every_steps=1000, keep=3, async_save=True)
  c.best_metric = ''
  c.log_every_steps = 50
  c.init_from = ''


def shrink_for_runlocal(c: ml_collections.ConfigDict) -> None:
  """A few steps on CPU, logged and checkpointed often."""
  c.batch_size = 8
  c.total_steps = 20
  c.log_every_steps = 1
  c.checkpoint.every_steps = 10
