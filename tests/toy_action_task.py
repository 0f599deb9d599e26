"""A task that exists only to prove the task protocol (`mbjax/tasks/base.py`) is enough: ActionNet
(DSTformer + BatchNorm classification head) on 5-D input (N, M, T, J, C), trained, resumed and
sharded by the unchanged trainer. Its data are synthetic in-memory clips whose class shifts the
joints, so the loss can fall. Not shipped: `config.task = 'tests.toy_action_task'`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mbjax import checkpoint, models
from mbjax.data import pipelines
from mbjax.tasks import base

KIND = 'action'
PERSONS = 2


def make_model(config):
  return models.from_config(config.model)


def example_batch(config) -> dict:
  m = config.model
  return {'input': jax.ShapeDtypeStruct((config.batch_size, PERSONS, m.maxlen, 17, 3),
                                        jnp.float32),
          'label': jax.ShapeDtypeStruct((config.batch_size,), jnp.int32)}


def clips(config, count: int, seed: int) -> list[dict]:
  """Synthetic records: noise plus a per-class offset of every joint."""
  rng = np.random.default_rng(seed)
  classes = config.model.head.num_classes
  labels = rng.integers(0, classes, count)
  shape = (PERSONS, config.model.maxlen, 17, 3)
  return [{'motion': (rng.normal(0, 0.3, shape) + 0.2 * label).astype(np.float32),
           'label': np.int32(label)} for label in labels]


def _example(record, rng):
  jitter = rng.normal(0, 0.05, record['motion'].shape).astype(np.float32)
  return {'input': record['motion'] + jitter, 'label': record['label']}


def make_curriculum(config) -> pipelines.Curriculum:
  phase = pipelines.Phase('toy', KIND, clips(config, config.data.clips, config.data_seed),
                          _example)
  return pipelines.Curriculum([phase], [], epochs=config.epochs, curriculum_3d_epochs=0,
                              global_batch=config.batch_size)


def loss_fn(model, variables, batch, rng, kind, config):
  logits, model_state = base.apply_train(model, variables, batch['input'], rng)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
  accuracy = (logits.argmax(-1) == batch['label']).mean()
  return loss, ({f'{kind}/loss': loss, f'{kind}/accuracy': accuracy}, model_state)


def make_evaluators(config, model) -> base.Evaluators:
  held_out = clips(config, 16, seed=1234)
  x = np.stack([r['motion'] for r in held_out])
  labels = np.stack([r['label'] for r in held_out])
  apply = jax.jit(model.apply)

  def evaluate(variables):  # eval mode: BatchNorm normalises with the running statistics
    logits = np.asarray(apply(variables, x))
    bn = variables['batch_stats']['head']['bn']
    return {'accuracy': float((logits.argmax(-1) == labels).mean()),
            'bn_batches_tracked': int(bn['num_batches_tracked']),
            'bn_mean_abs': float(np.abs(bn['mean']).mean())}

  return {'toy': (config.evals_every, evaluate)}


def load_pretrained(variables, path):
  """A pretrained DSTformer onto `backbone/`; the classification head starts fresh."""
  return checkpoint.load_pretrained(variables, path, fresh=(r'^params/head/', r'^batch_stats/'))


def flops_per_step(config):
  return None
