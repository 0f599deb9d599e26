"""MotionBERT action recognition on NTU RGB+D 60 (official `train_action.py` with
configs/action/MB_ft_NTU60_x{sub,view}.yaml and MB_train_NTU60_x{sub,view}.yaml).

A task module for `mbjax.train` (`mbjax/tasks/base.py`): `ActionNet` (the DSTformer of
`config.model` + the `class` head of `config.model.head`) on batches of `input` (B, M=2, T, 17, 3)
(x, y, score of two persons, from `mbjax.data.finetune.action_example`: random resampling,
`random_move` and crop-scale [1, 3] for training) and `label` (B,); the loss is cross-entropy.
The backbone sees B x M sequences. Evaluators (`mbjax/evaluate/action.py`) report top-1 / top-5 on
the test split with the official test transform, and on a seeded validation slice of the training
split (`config.data.val_fraction`, whole performances: `mbjax.data.holdout`) that training never
sees and the best checkpoint is kept on.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mbjax import checkpoint, models
from mbjax.models import flops
from mbjax.losses import pose as losses
from mbjax.data import finetune, holdout, pipelines, records
from mbjax.evaluate import registry
from mbjax.evaluate.inputs import TaskInputs
from mbjax.models.heads import CLASS_HIDDEN
from mbjax.tasks import base

KIND = finetune.KIND_ACTION
PERSONS = finetune.NUM_PERSONS
# A new head starts from its init; everything else must come from the pretrained file.
FRESH = (r'^params/head/', r'^batch_stats/head/')


def configure(config) -> None:
  """`model.head.num_classes` 0 means 'from the dataset': the class count and `label_names` come
  from the `label_names` of `config.data.dataset`'s metadata (a `data_prep.build actions` build).
  Given label names must number num_classes."""
  head = config.model.head
  names = tuple(config.get('label_names') or ())
  if not head.get('num_classes'):
    data = config.data
    names = tuple(records.metadata(data.dataset, data_dir=data.data_dir).get('label_names') or ())
    if not names:
      raise ValueError(f'config.model.head.num_classes=0 takes the classes from the dataset, but '
                       f'{data.dataset} under {data.data_dir} lists no label_names in its '
                       'metadata.json (build it with python -m data_prep.build actions), or set '
                       'config.model.head.num_classes')
    head.num_classes = len(names)
    config.label_names = names
  if names and len(names) != head.num_classes:
    raise ValueError(f'config.label_names has {len(names)} names for '
                     f'config.model.head.num_classes={head.num_classes}')


def make_model(config):
  """ActionNet with a `class` head on the DSTformer of `config.model`."""
  head = config.model.get('head') or {}
  if head.get('version', 'class') != 'class':
    raise ValueError(f'task action classifies: config.model.head.version must be \'class\', got '
                     f'{head.get("version")!r}')
  if not head:
    raise ValueError('task action needs config.model.head (e.g. dict(version=\'class\', '
                     'num_classes=60, dropout_ratio=0.5))')
  return models.from_config(config.model)


def clip_len(config) -> int:
  """Frames per clip after resampling (official `clip_len`); at most `model.maxlen`."""
  T = int(config.get('clip_len') or config.model.maxlen)
  if T > config.model.maxlen:
    raise ValueError(f'config.clip_len={T} exceeds config.model.maxlen={config.model.maxlen}')
  return T


def example_batch(config) -> dict:
  """`input` (B, 2, clip_len, 17, 3) float32 and `label` (B,) int32."""
  B, J = config.batch_size, config.model.get('num_joints', 17)
  return {'input': jax.ShapeDtypeStruct((B, PERSONS, clip_len(config), J, 3), jnp.float32),
          'label': jax.ShapeDtypeStruct((B,), jnp.int32)}


def split_source(config, split: str, *, part: str = 'all'):
  """Records of `config.data.dataset` / `split`: 'all', or the 'train' / 'val' part of the
  seeded `config.data.val_fraction` holdout."""
  data = config.data
  source = records.load(data.dataset, split, data_dir=data.data_dir)
  if part == 'all':
    return source
  rest, held = holdout.split(source, float(data.get('val_fraction', 0.0)),
                             int(data.get('val_seed', 0)))
  return {'train': rest, 'val': held}[part]


def make_curriculum(config) -> pipelines.Curriculum:
  """One 'action' phase over `config.data.train_split` without its validation slice."""
  base.check_init_from(config)
  source = split_source(config, config.data.train_split, part='train')
  return finetune.make_action_curriculum(source, epochs=config.epochs,
                                         global_batch=config.batch_size, **augmentation(config))


def augmentation(config) -> dict:
  """The training transform's options of `config` (`finetune.action_phase`): `augment.random_move`
  and `scale_range_train`; `augment.resample_once` (official: frame positions drawn once per
  clip) and `augment.official_compounding` (official: random_move compounding in place over the
  visits of each of `augment.official_workers` DataLoader workers); both off by default."""
  aug = config.augment
  workers = int(aug.get('official_workers', 8)) if aug.get('official_compounding') else 0
  return dict(n_frames=clip_len(config), random_move=aug.random_move,
              scale_range=tuple(aug.scale_range_train),
              resample_once=bool(aug.get('resample_once', False)), compounding_workers=workers)


def loss_fn(model, variables, batch, rng, kind: str, config):
  """(cross-entropy, (metrics, BatchNorm state)) of one batch; top-1 / top-5 in %."""
  if kind != KIND:
    raise ValueError(f'action.loss_fn: batch kind {kind!r}, expected {KIND!r}')
  logits, model_state = base.apply_train(model, variables, batch['input'], rng)
  labels = batch['label']
  loss = losses.cross_entropy(logits, labels)
  metrics = {'loss': loss,
             'top1': 100 * jnp.mean(losses.top_k_correct(logits, labels, 1)),
             'top5': 100 * jnp.mean(losses.top_k_correct(logits, labels, 5))}
  return loss, ({f'{kind}/{k}': v for k, v in metrics.items()}, model_state)


def make_evaluators(config, model) -> base.Evaluators:
  """`config.evals` through the registry (`action` evaluators): without a validation slice
  (`data.val_fraction` 0) the `part='val'` ones are left out, and the best checkpoint is never
  selected on a whole split while a slice is configured."""
  return registry.make_evaluators(config, model, inputs=evaluator_inputs(config))


def evaluator_inputs(config) -> TaskInputs:
  """What the action evaluators need of this task: the records of a split (and part) of
  `config.data.dataset`, and the clip length."""
  return TaskInputs(split_source=lambda split, part: split_source(config, split, part=part),
                    clip_len=clip_len(config))


def load_pretrained(variables, path):
  """A pretrained DSTformer onto `backbone/` (head fresh), or a whole action checkpoint."""
  return checkpoint.load_pretrained(variables, path, fresh=FRESH)


def flops_per_step(config) -> float:
  """3x the analytic forward FLOPs: the backbone on B x M sequences plus the head's matmuls."""
  m = config.model
  fields = {k: v for k, v in m.items() if k not in ('head', 'maxlen')}
  B = config.batch_size
  backbone = flops.dstformer_forward_flops(batch=B * PERSONS, frames=clip_len(config),
                                           with_head=False, **fields)
  J, rep = m.get('num_joints', 17), m.get('dim_rep', 512)
  head = 2 * B * (J * rep * CLASS_HIDDEN
                  + CLASS_HIDDEN * m.head.get('num_classes', 60))
  return 3 * (backbone + head)
