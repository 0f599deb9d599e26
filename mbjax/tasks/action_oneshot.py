"""MotionBERT one-shot action recognition on NTU RGB+D 120 (official `train_action_1shot.py` with
configs/action/MB_ft_NTU120_oneshot.yaml).

A task module for `mbjax.train` (`mbjax/tasks/base.py`): `ActionNet` (the DSTformer of
`config.model` + the `embed` head: dropout, one linear layer to `hidden_dim`, L2 norm) trained on
the 100 auxiliary classes (`ntu120` split `oneshot_aux`, relabelled 0..99 by the builder) with the
supervised contrastive loss. Each batch holds `config.n_views` clips of each of
`batch_size / n_views` classes (the official `MPerClassSampler`, `mbjax.data.per_class`); the clips
go through the training transform of `mbjax.data.finetune.action_example`.

The loss is `losses.supcon_loss` on features (B, 1, D), labels (B,): as the official script, which
reshapes the (B, D) embeddings to one view per sample, so the positives of a clip are the other
clips of its class in the batch (the second view of the pair), found through the labels.

The `oneshot` evaluator (`mbjax/evaluate/oneshot.py`) classifies every `oneshot_eval` clip by the
cosine nearest of the 20 `oneshot_exemplar` clips.
"""

from __future__ import annotations

import jax.numpy as jnp

from mbjax import models
from mbjax.models import flops
from mbjax.losses import pose as losses
from mbjax.data import finetune, per_class, pipelines
from mbjax.evaluate import registry
from mbjax.tasks import action, base

KIND = finetune.KIND_ACTION
TRAIN_SPLIT = 'oneshot_aux'
# The task API's functions that are the action task's own.
example_batch = action.example_batch
load_pretrained = action.load_pretrained  # a pretrained DSTformer onto backbone/, head fresh


def make_model(config):
  """ActionNet with an `embed` head on the DSTformer of `config.model`."""
  head = config.model.get('head') or {}
  if head.get('version') != 'embed':
    raise ValueError('task action_oneshot embeds: config.model.head.version must be \'embed\', '
                     f'got {head.get("version")!r}')
  return models.from_config(config.model)


def make_curriculum(config) -> pipelines.Curriculum:
  """One 'action' phase over `oneshot_aux` whose epochs are class-paired batch orders."""
  base.check_init_from(config)
  source = action.split_source(config, config.data.get('train_split', TRAIN_SPLIT))
  order = per_class.ClassBatchOrder(source, n_views=int(config.n_views),
                                    global_batch=config.batch_size)
  phase = finetune.action_phase('action_oneshot', source, order=order,
                                **action.augmentation(config))
  return pipelines.Curriculum([phase], [], epochs=config.epochs, curriculum_3d_epochs=0,
                              global_batch=config.batch_size)


def loss_fn(model, variables, batch, rng, kind: str, config):
  """(SupCon loss, (metrics, model state)) of one class-paired batch."""
  if kind != KIND:
    raise ValueError(f'action_oneshot.loss_fn: batch kind {kind!r}, expected {KIND!r}')
  embeddings, model_state = base.apply_train(model, variables, batch['input'], rng)
  labels = batch['label']
  loss = losses.supcon_loss(embeddings[:, None], labels, temperature=config.temperature,
                            base_temperature=config.base_temperature)
  other = ~jnp.eye(labels.shape[0], dtype=bool)
  same = (labels[:, None] == labels[None, :]) & other
  different = (labels[:, None] != labels[None, :])
  cosine = embeddings @ embeddings.T  # the embeddings are L2-normalised
  metrics = {'loss': loss, 'positive_cosine': _masked_mean(cosine, same),
             'negative_cosine': _masked_mean(cosine, different)}
  return loss, ({f'{kind}/{k}': v for k, v in metrics.items()}, model_state)


def _masked_mean(x, mask):
  return jnp.sum(jnp.where(mask, x, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def make_evaluators(config, model) -> base.Evaluators:
  """`config.evals` through the registry (`oneshot` evaluators)."""
  return registry.make_evaluators(config, model, inputs=action.evaluator_inputs(config))


def flops_per_step(config) -> float:
  """3x the analytic forward FLOPs: the backbone on B x M sequences plus the embedding layer."""
  m = config.model
  fields = {k: v for k, v in m.items() if k not in ('head', 'maxlen')}
  B = config.batch_size
  backbone = flops.dstformer_forward_flops(batch=B * action.PERSONS,
                                           frames=action.clip_len(config), with_head=False,
                                           **fields)
  J, rep = m.get('num_joints', 17), m.get('dim_rep', 512)
  head = 2 * B * J * rep * m.head.get('hidden_dim', 2048)
  return 3 * (backbone + head)
