"""MotionBERT 3D pose finetuning on Human3.6M (official `train.py` with MB_ft_h36m / MB_train_h36m).

A task module for `mbjax.train`: the DSTformer of `config.model` lifts detected 2D clips
(B, 243, 17, 3: normalised x, y, confidence) to 3D (B, 243, 17, 3). Training batches come from
`mbjax.data.finetune.make_h36m_curriculum` on the `h36m` train split; the loss is the official
finetuning objective (the same weighted sum as the 3D pretraining loss); the 'h36m' evaluator
reports MPJPE / P-MPJPE on the `h36m` test split with the protocol of `mbjax.evaluate.h36m`.
"""

from __future__ import annotations

import jax
import numpy as np

from mbjax.data import finetune, pipelines
from mbjax.evaluate import h36m as h36m_eval
from mbjax.models import DSTformer
from mbjax.tasks import pretrain

EVAL_KEYS = ('mpjpe', 'p_mpjpe', 'mpjpe_per_frame', 'p_mpjpe_per_frame')


def make_model(config) -> DSTformer:
  """The DSTformer of `config.model` (dtype names as strings), as for pretraining."""
  return pretrain.make_model(config)


def _load(split: str, data_dir: str):
  from mbjax.data import records
  return records.load('h36m', split, data_dir=data_dir)


def make_curriculum(config) -> pipelines.Curriculum:
  """One '3d' phase over the h36m train split for `config.epochs` epochs."""
  return finetune.make_h36m_curriculum(
      _load('train', config.data.data_dir), epochs=config.epochs, global_batch=config.batch_size,
      flip=config.flip, rootrel=config.rootrel)


def loss_fn(model, params, batch, rng, kind: str, config):
  """(total loss, metrics) of one batch: `input` (B, T, 17, 3) -> 3D vs `target` (B, T, 17, 3)."""
  if kind != pipelines.KIND_3D:
    raise ValueError(f'pose3d.loss_fn: batch kind {kind!r}, expected {pipelines.KIND_3D!r} '
                     '(Human3.6M finetuning has 3D targets only)')
  return pretrain.loss_fn(model, params, batch, rng, kind, config)


def split_inputs(source) -> tuple[np.ndarray, list[dict]]:
  """(N, T, 17, 3) `joint_2d` inputs of a h36m split and its records without the pose arrays."""
  inputs, records = [], []
  for index in range(len(source)):
    record = source[index]
    if 'joint_2d' not in record:
      raise ValueError(f'{source}: record {index} has no joint_2d (keys: {sorted(record)})')
    inputs.append(np.asarray(record['joint_2d'], np.float32))
    records.append({k: v for k, v in record.items() if k not in ('joint_2d', 'joint_3d')})
  return np.stack(inputs), records


def make_h36m_evaluator(config, model):
  """fn(params) -> {mpjpe, p_mpjpe, mpjpe_per_frame, p_mpjpe_per_frame} (mm) on the test split.

  Test-time options follow the official evaluation: flip averaging (`config.flip_test`) and the
  predicted root set to 0 when training root-relative (`config.rootrel`); errors are always
  root-relative, as the official protocol computes them.
  """
  spec = config.evals.h36m
  inputs, records = split_inputs(_load(spec.get('split', 'test'), config.data.data_dir))
  apply = jax.jit(lambda p, x: model.apply({'params': p}, x))
  batch_size = spec.get('batch_size', 32)

  def evaluate(params):
    pred = h36m_eval.predict_clips(lambda x: apply(params, x), inputs, flip=config.flip_test,
                                   rootrel=config.rootrel, batch_size=batch_size)
    result = h36m_eval.evaluate(pred, records)
    return {k: float(result[k]) for k in EVAL_KEYS}

  return evaluate


def make_evaluators(config, model) -> dict:
  """{'h36m': (every_steps, fn(params) -> metrics)} when `config.evals` has an `h36m` entry."""
  evals = config.get('evals', {})
  unknown = sorted(set(evals) - {'h36m'})
  if unknown:
    raise ValueError(f'pose3d: unknown evaluators {unknown} in config.evals, expected only h36m')
  if 'h36m' not in evals:
    return {}
  return {'h36m': (evals['h36m'].get('every_steps', 0), make_h36m_evaluator(config, model))}
