"""MotionBERT pretraining: recover 3D motion (or clean 2D) from corrupted 2D clips.

The task (`mbjax/tasks/base.py`): a DSTformer of `config.model`; batches carry `input`
(B, T, 17, 3: corrupted x, y, confidence), `target` (B, T, 17, 3) and `conf` (B, T, 17, 1), with
T up to `config.model.maxlen`; 3D phases train the official 3D loss, 2D phases the
confidence-weighted 2D loss; evaluators from `config.evals` (e.g. `lifting`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from mbjax import checkpoint, flops, losses, models
from mbjax.data import pipelines, records, transforms
from mbjax.evaluate import registry
from mbjax.tasks import base


def make_model(config):
  return models.from_config(config.model)


def example_batch(config) -> dict:
  """`input`, `target` (B, maxlen, J, 3) and `conf` (B, maxlen, J, 1), float32."""
  m = config.model
  B, T, J = config.batch_size, m.maxlen, m.get('num_joints', 17)
  return {'input': jax.ShapeDtypeStruct((B, T, J, m.get('dim_in', 3)), jnp.float32),
          'target': jax.ShapeDtypeStruct((B, T, J, 3), jnp.float32),
          'conf': jax.ShapeDtypeStruct((B, T, J, 1), jnp.float32)}


def flops_per_step(config) -> float:
  """3x the analytic forward FLOPs of the global batch at `maxlen` frames."""
  fields = {k: v for k, v in config.model.items() if k != 'head'}
  fields.pop('maxlen', None)
  return 3 * flops.dstformer_forward_flops(batch=config.batch_size, frames=config.model.maxlen,
                                           **fields)


def load_pretrained(variables, path):
  """A DSTformer checkpoint: every variable must be there with its shape."""
  return checkpoint.load_pretrained(variables, path)


def make_curriculum(config) -> pipelines.Curriculum:
  """3D sources (synthetic 2D from 3D) and 2D-only sources, in the official order and schedule."""
  aug = config.augment
  noise = transforms.SyntheticNoise.load(aug.get('noise_path') or None) if aug.noise else None
  scale_range_3d = aug.get('scale_range_3d')  # None: 3D clips as stored (official default)
  rootrel = config.get('rootrel', True)  # 3D and 2D targets alike, as official train.py
  data = config.data
  phases_3d, phases_2d = [], []
  # All 3D sources train together (official: one ConcatDataset of AMASS and H36M).
  by_key = {}
  for spec in data.sources_3d:
    by_key.setdefault(spec['key'], []).append(records.load_spec(spec, data.data_dir))
  for key, sources in by_key.items():
    make = functools.partial(pipelines.pretrain_3d_example, key=key, flip=aug.flip, noise=noise,
                             mask_ratio=aug.mask_ratio, mask_t_ratio=aug.mask_t_ratio,
                             scale_range=None if scale_range_3d is None else tuple(scale_range_3d),
                             rootrel=rootrel)
    names = '+'.join(s['name'] for s in data.sources_3d if s['key'] == key)
    phases_3d.append(pipelines.Phase(names, pipelines.KIND_3D,
                                     pipelines.ConcatSource(sources), make))
  for spec in data.get('sources_2d', ()):
    make = functools.partial(pipelines.pretrain_2d_example, key=spec.get('key', 'joint_2d'),
                             flip=aug.flip, noise=noise if spec.get('noise', False) else None,
                             mask_ratio=aug.mask_ratio, mask_t_ratio=aug.mask_t_ratio,
                             scale_range=tuple(aug.scale_range_2d), rootrel=rootrel)
    phases_2d.append(pipelines.Phase(spec['name'], pipelines.KIND_2D,
                                     records.load_spec(spec, data.data_dir), make))
  return pipelines.Curriculum(phases_3d, phases_2d, epochs=config.epochs,
                              curriculum_3d_epochs=config.curriculum_3d_epochs,
                              global_batch=config.batch_size)


def loss_fn(model, variables, batch, rng, kind: str, config):
  """(total loss, (metrics, new model state)) for one batch of the given kind."""
  pred, model_state = base.apply_train(model, variables, batch['input'], rng)
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
  return total, ({f'{kind}/{k}': v for k, v in parts.items()}, model_state)


def make_evaluators(config, model) -> base.Evaluators:
  """`config.evals` through the evaluator registry (`lifting`, `h36m`)."""
  return registry.make_evaluators(config, model)
