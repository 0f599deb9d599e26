"""MotionBERT 3D pose finetuning on Human3.6M (official `train.py` with MB_ft_h36m / MB_train_h36m).

A task module for `mbjax.train` (`mbjax/tasks/base.py`): the DSTformer of `config.model` lifts
detected 2D clips (B, 243, 17, 3: normalised x, y, confidence) to 3D (B, 243, 17, 3). Training
batches come from `mbjax.data.finetune.make_h36m_curriculum` on the `h36m` train split; the loss
is the official finetuning objective (the same weighted sum as the 3D pretraining loss); the
`h36m` evaluator (`mbjax/evaluate/h36m.py`) reports MPJPE / P-MPJPE on the test split, and an
`h36m_val` evaluator (`mbjax/evaluate/h36m_val.py`) on held-out training subjects can pick the best
checkpoint.
"""

from __future__ import annotations

from mbjax.data import finetune, pipelines, records
from mbjax.evaluate import registry
from mbjax.tasks import base, pretrain

# The model, batch layout, FLOPs and weights are those of pretraining.
make_model = pretrain.make_model
example_batch = pretrain.example_batch
flops_per_step = pretrain.flops_per_step
load_pretrained = pretrain.load_pretrained
TRAIN_SPEC = dict(name='h36m', split='train')  # when the config has no `data.train`


def train_spec(config) -> dict:
  """The training records: `config.data.train` (e.g. with `exclude_subjects`), else TRAIN_SPEC."""
  return dict(config.data.get('train') or TRAIN_SPEC)


def make_curriculum(config) -> pipelines.Curriculum:
  """One '3d' phase over the h36m train split (`train_spec`) for `config.epochs` epochs; a
  finetuning config (`finetune`) needs --config.init_from."""
  base.check_init_from(config)
  return _curriculum(config)


def _curriculum(config) -> pipelines.Curriculum:
  """`make_curriculum` without the init_from check (the epoch length of an evaluation)."""
  train = records.load_spec(train_spec(config), config.data.data_dir)
  return finetune.make_h36m_curriculum(train, epochs=config.epochs, global_batch=config.batch_size,
                                       flip=config.flip, rootrel=config.rootrel,
                                       gt_2d=config.get('gt_2d', False),
                                       no_conf=config.get('no_conf', False))


def loss_fn(model, variables, batch, rng, kind: str, config):
  """(total loss, (metrics, model state)) of one batch: `input` (B, T, 17, 3) -> 3D vs `target`."""
  if kind != pipelines.KIND_3D:
    raise ValueError(f'pose3d.loss_fn: batch kind {kind!r}, expected {pipelines.KIND_3D!r} '
                     '(Human3.6M finetuning has 3D targets only)')
  return pretrain.loss_fn(model, variables, batch, rng, kind, config)


def make_evaluators(config, model) -> base.Evaluators:
  """`config.evals` through the evaluator registry; `every_epochs` counts epochs of `train_spec`."""
  return registry.make_evaluators(config, model, train_specs=[train_spec(config)],
                                  steps_per_epoch=lambda: _curriculum(config).epoch_steps(0))
