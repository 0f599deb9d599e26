"""MotionBERT pretraining: recover 3D motion (or clean 2D) from corrupted 2D clips.

A task module gives the trainer: `make_model(config)`, `make_curriculum(config)` (the data) and
`loss_fn(model, params, batch, rng, kind, config)`; batches carry `input` (B, T, 17, 3),
`target` (B, T, 17, 3) and `conf` (B, T, 17, 1).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp

from mbjax import losses
from mbjax.data import pipelines, transforms
from mbjax.models import DSTformer

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def make_model(config) -> DSTformer:
  m = dict(config.model)
  m['dtype'] = DTYPES[m.pop('dtype', 'float32')]
  m['param_dtype'] = DTYPES[m.pop('param_dtype', 'float32')]
  return DSTformer(**m)


def _load_source(spec, data_dir):
  from mbjax.data import records
  return records.load(spec['name'], spec.get('split', 'train'), data_dir=spec.get('data_dir')
                      or data_dir)


def make_curriculum(config) -> pipelines.Curriculum:
  """3D sources (synthetic 2D from 3D) and 2D-only sources, in the official order and schedule."""
  aug = config.augment
  noise = transforms.SyntheticNoise.load(aug.get('noise_path') or None) if aug.noise else None
  data = config.data
  phases_3d, phases_2d = [], []
  # All 3D sources train together (official: one ConcatDataset of AMASS and H36M).
  by_key = {}
  for spec in data.sources_3d:
    by_key.setdefault(spec['key'], []).append(_load_source(spec, data.data_dir))
  for key, sources in by_key.items():
    make = functools.partial(pipelines.pretrain_3d_example, key=key, flip=aug.flip, noise=noise,
                             mask_ratio=aug.mask_ratio, mask_t_ratio=aug.mask_t_ratio)
    names = '+'.join(s['name'] for s in data.sources_3d if s['key'] == key)
    phases_3d.append(pipelines.Phase(names, pipelines.KIND_3D,
                                     pipelines.ConcatSource(sources), make))
  for spec in data.get('sources_2d', ()):
    make = functools.partial(pipelines.pretrain_2d_example, key=spec.get('key', 'joint_2d'),
                             flip=aug.flip, noise=noise if spec.get('noise', False) else None,
                             mask_ratio=aug.mask_ratio, mask_t_ratio=aug.mask_t_ratio,
                             scale_range=tuple(aug.scale_range_2d))
    phases_2d.append(pipelines.Phase(spec['name'], pipelines.KIND_2D,
                                     _load_source(spec, data.data_dir), make))
  return pipelines.Curriculum(phases_3d, phases_2d, epochs=config.epochs,
                              curriculum_3d_epochs=config.curriculum_3d_epochs,
                              global_batch=config.batch_size)


def loss_fn(model, params, batch, rng, kind: str, config):
  """(total loss, metrics) for one batch of the given kind."""
  pred = model.apply({'params': params}, batch['input'], train=True, rngs={'dropout': rng})
  pred = pred.astype(jnp.float32)
  if kind == pipelines.KIND_3D:
    loss = config.loss
    total, parts = losses.pretrain_loss_3d(
        pred, batch['target'], lambda_scale=loss.lambda_scale,
        lambda_3d_velocity=loss.lambda_3d_velocity, lambda_lv=loss.lambda_lv,
        lambda_lg=loss.lambda_lg, lambda_a=loss.lambda_a, lambda_av=loss.lambda_av)
    parts = {**parts, 'mpjpe_3d': parts['loss_3d_pos']}
  else:
    total, parts = losses.pretrain_loss_2d(pred, batch['target'], batch['conf'])
  return total, {f'{kind}/{k}': v for k, v in parts.items()}


def make_evaluators(config, model) -> dict:
  """name -> (every_steps, fn(params) -> metrics) from `config.evals`."""
  import jax
  import numpy as np
  from mbjax.evaluate import lifting

  evaluators = {}
  for name, spec in config.get('evals', {}).items():
    if spec['type'] != 'lifting':
      raise ValueError(f'evals.{name}: unknown evaluator type {spec["type"]!r} for pretraining')
    source = _load_source(spec, config.data.data_dir)
    key = spec.get('key', 'joints3d')
    clips = np.stack([source[i][key] for i in range(len(source))]).astype(np.float32)
    train = pipelines.ConcatSource([_load_source(s, config.data.data_dir)
                                    for s in config.data.sources_3d if s['key'] == key])
    train_norm, _ = lifting.normalise_clips(
        np.stack([train[i][key] for i in range(len(train))]).astype(np.float32))
    mean_pose = lifting.mean_pose(train_norm)
    apply = jax.jit(lambda p, x: model.apply({'params': p}, x))
    batch = spec.get('batch_size', 16)

    def evaluate(params, clips=clips, mean_pose=mean_pose, apply=apply, batch=batch):
      def predict(x):
        return np.concatenate([np.asarray(apply(params, x[i:i + batch]))
                               for i in range(0, len(x), batch)])
      return lifting.evaluate_lifting(predict, clips, mean_pose)

    evaluators[name] = (spec.get('every_steps', 0), evaluate)
  return evaluators
