"""MotionBERT pretraining: recover 3D motion (or clean 2D) from corrupted 2D clips.

The task (`mbjax/tasks/base.py`): a DSTformer of `config.model`; batches carry `input`
(B, T, 17, 3: corrupted x, y, confidence; x, y only with `no_conf`), `target` (B, T, 17, 3) and
`conf` (B, T, 17, 1), with T up to `config.model.maxlen`; 3D phases train the official 3D loss,
2D phases the confidence-weighted 2D loss; evaluators from `config.evals` (e.g. `lifting`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from mbjax import checkpoint, models
from mbjax.models import flops
from mbjax.losses import pose as losses
from mbjax.data import pipelines, records, transforms
from mbjax.evaluate import registry
from mbjax.tasks import base


def make_model(config):
  """The DSTformer of `config.model`, whose `dim_in` must match the input channels."""
  check_input_channels(config)
  return models.from_config(config.model)


def check_input_channels(config) -> None:
  """`config.model.dim_in` is 2 with `no_conf` (x, y only), else 3 (x, y, confidence)."""
  want = 2 if config.get('no_conf') else 3
  have = config.model.get('dim_in', 3)
  if have != want:
    raise ValueError(f'no_conf={bool(config.get("no_conf"))} feeds the model {want} input channels '
                     f'but model.dim_in is {have}; set --config.model.dim_in={want} (the no_conf '
                     'config switch sets both)')


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
  """3D sources (synthetic or stored 2D) and 2D-only sources, in the official order and schedule.

  All 3D sources are one phase, shuffled together whatever their field names (official: one
  ConcatDataset of AMASS and H36M); each 2D source is a phase of its own.
  """
  base.check_init_from(config)  # pretraining configs have no `finetune`: a no-op unless set
  return _curriculum(config)


def _curriculum(config) -> pipelines.Curriculum:
  """`make_curriculum` without the init_from check (the epoch length of an evaluation)."""
  aug = config.augment
  noise = transforms.SyntheticNoise.load(aug.get('noise_path') or None) if aug.noise else None
  rootrel = config.get('rootrel', True)
  corruption = dict(flip=aug.flip, mask_ratio=aug.mask_ratio, mask_t_ratio=aug.mask_t_ratio,
                    rootrel=rootrel)
  phases_3d = [_phase_3d(config, noise, corruption)] if config.data.sources_3d else []
  phases_2d = []
  for spec in config.data.get('sources_2d', ()):
    make = functools.partial(pipelines.pretrain_2d_example, key=spec.get('key', 'joint_2d'),
                             noise=noise if spec.get('noise', False) else None,
                             scale_range=tuple(aug.scale_range_2d), **corruption)
    phases_2d.append(pipelines.Phase(spec['name'], pipelines.KIND_2D,
                                     records.load_spec(_scaled(spec, config),
                                                       config.data.data_dir),
                                     _inputs(config, make)))
  return pipelines.Curriculum(phases_3d, phases_2d, epochs=config.epochs,
                              curriculum_3d_epochs=config.curriculum_3d_epochs,
                              global_batch=config.batch_size)


def _scaled(spec, config) -> dict:
  """`spec` keeping `config.data.fraction` (default 1) of its records: the data axis of scaling
  sweeps (`records.first_fraction`), on top of the spec's own `fraction`."""
  return dict(spec, fraction=spec.get('fraction', 1.0) * config.data.get('fraction', 1.0))


def _phase_3d(config, noise, corruption: dict) -> pipelines.Phase:
  """One phase over every `config.data.sources_3d`, each record mapped to `joint_3d` (and, with
  stored 2D, `joint_2d`) so that one example function serves them all."""
  data, aug = config.data, config.augment
  stored_2d = not config.get('synthetic', True) and not config.get('gt_2d', False)
  scale_range = tuple(aug.get('scale_range_3d') or ()) or None  # () or None: as stored
  if stored_2d and scale_range is not None:
    raise ValueError('augment.scale_range_3d crop-scales synthetic 2D only (official '
                     '`scale_range_pretrain`); with synthetic=False leave it empty')
  sources = []
  for spec in data.sources_3d:
    fields = {'joint_3d': spec['key']}
    if stored_2d:
      if not spec.get('key_2d'):
        raise ValueError(f'synthetic=False takes the stored 2D of every 3D source, but source '
                         f'{spec["name"]!r} names none (give it key_2d, e.g. \'joint_2d\')')
      fields['joint_2d'] = spec['key_2d']
    sources.append(pipelines.FieldSource(records.load_spec(_scaled(spec, config),
                                                           data.data_dir), fields))
  _check_one_clip_length(data.sources_3d, sources)
  make = functools.partial(pipelines.pretrain_3d_example, key='joint_3d',
                           key_2d='joint_2d' if stored_2d else None, noise=noise,
                           scale_range=scale_range,
                           **corruption)
  name = '+'.join(spec['name'] for spec in data.sources_3d)
  return pipelines.Phase(name, pipelines.KIND_3D, pipelines.ConcatSource(sources),
                         _inputs(config, make))


def _check_one_clip_length(specs, sources) -> None:
  lengths = {spec['name']: len(source[0]['joint_3d']) for spec, source in zip(specs, sources)
             if len(source)}
  if len(set(lengths.values())) > 1:
    raise ValueError(f'the 3D sources train as one phase, so their clips need one length; got '
                     f'{lengths} frames')


def _inputs(config, make):
  """`make` with the input's confidence channel dropped when `config.no_conf`."""
  return functools.partial(pipelines.input_xy_only, make) if config.get('no_conf') else make


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
  """`config.evals` through the evaluator registry (`lifting`, `h36m`, `h36m_val`).

  `every_epochs` counts the first epoch's steps (3D only while `curriculum_3d_epochs`; the later
  epochs with the 2D phases are longer, so evaluation then runs more than once an epoch).
  """
  return registry.make_evaluators(config, model, train_specs=config.data.sources_3d,
                                  steps_per_epoch=lambda: _curriculum(config).epoch_steps(0))
