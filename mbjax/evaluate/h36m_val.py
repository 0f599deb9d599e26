"""Human3.6M validation on held-out training subjects (e.g. S8), for choosing the best checkpoint.

The official code evaluates on the test set every epoch and keeps the best test epoch
(`best_epoch.bin`), which selects the model on the data it reports. H36M has no official
validation split, so mbjax carves one from the training subjects: the configs' `val=S8` word drops
S8's clips from training (`exclude_subjects`) and adds this evaluator on S8's train-split clips,
whose `mpjpe_px` then picks `<workdir>/best/`. The test split is never used for that.

Steps:
1. Inputs: each clip's detected `joint_2d` (normalised x, y, confidence), or with `gt_2d` the x, y
   of `joint_3d` with confidence 1; x, y only with `no_conf`.
2. `h36m.predict_clips`: flip test and the predicted root set to 0 as the `h36m` evaluator does.
3. `evaluate`: root-relative MPJPE and Procrustes-aligned P-MPJPE of the prediction against
   `joint_3d`, per (clip, frame), averaged over all of them. Train clips overlap (stride 81), so a
   frame in three clips counts three times; every clip weighs the same.

Units: pixels, not millimetres. `joint_3d` is normalised by the camera width (x, y and depth alike:
x / res_w * 2 - 1, ...), so a distance d is d * res_w / 2 pixels. Millimetres need the per-frame
2.5D factor (mm per pixel; it depends on the subject's depth), which the official data stores for
test clips only: train clips carry zeros there. At H36M's camera distances a pixel is roughly
4-5 mm, so `mpjpe_px` ranks checkpoints but is not comparable with the paper's numbers.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from mbjax.data import records as records_lib
from mbjax.evaluate import h36m
from mbjax.metrics import pose as metrics

_CHUNK = 64  # clips per error computation (float64 Procrustes on all clips at once is large)


def validation_clips(source, *, gt_2d: bool = False
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(inputs (N, T, 17, 3), normalised ground truth (N, T, 17, 3), res_w (N,)) of a split.

  Inputs are the detected `joint_2d`, or with `gt_2d` the x, y of `joint_3d` and confidence 1.
  """
  inputs, gt, res_w = [], [], []
  for index in range(len(source)):
    record = source[index]
    missing = [k for k in ('joint_2d', 'joint_3d', 'res_w') if k not in record]
    if missing:
      raise ValueError(f'{source!r}: record {index} lacks {", ".join(missing)} (keys: '
                       f'{", ".join(sorted(record))}); expected h36m clips')
    joint_3d = np.asarray(record['joint_3d'], np.float32)
    if gt_2d:
      xy = joint_3d[..., :2]
      inputs.append(np.concatenate([xy, np.ones_like(xy[..., :1])], axis=-1))
    else:
      inputs.append(np.asarray(record['joint_2d'], np.float32))
    gt.append(joint_3d)
    res_w.append(int(record['res_w']))
  if not inputs:
    raise ValueError(f'{source!r}: no clip to validate on')
  return np.stack(inputs), np.stack(gt), np.asarray(res_w, np.float64)


def evaluate(predictions: np.ndarray, gt: np.ndarray, res_w: np.ndarray) -> dict[str, Any]:
  """Root-relative MPJPE and P-MPJPE in pixels, mean over every (clip, frame).

  Args:
    predictions: (N, T, 17, 3) normalised predictions.
    gt: (N, T, 17, 3) normalised ground truth (`joint_3d`).
    res_w: (N,) camera width of each clip: a normalised distance d is d * res_w / 2 pixels.

  Returns:
    mpjpe_px, p_mpjpe_px; clips and frames (clip-frames) evaluated.
  """
  predictions, gt = np.asarray(predictions), np.asarray(gt)
  res_w = np.asarray(res_w, np.float64)
  if predictions.shape != gt.shape or gt.ndim != 4 or gt.shape[2:] != (h36m.NUM_JOINTS, 3):
    raise ValueError(f'h36m_val.evaluate: predictions {predictions.shape} and ground truth '
                     f'{gt.shape} must both be (N, T, {h36m.NUM_JOINTS}, 3)')
  if res_w.shape != gt.shape[:1]:
    raise ValueError(f'h36m_val.evaluate: res_w has shape {res_w.shape}, expected ({len(gt)},)')
  e1, e2 = [], []
  for start in range(0, len(gt), _CHUNK):
    scale = (res_w[start:start + _CHUNK] / 2)[:, None, None, None]  # pixels per unit
    pred = predictions[start:start + _CHUNK].astype(np.float64) * scale
    true = gt[start:start + _CHUNK].astype(np.float64) * scale
    pred = (pred - pred[:, :, :1]).reshape(-1, h36m.NUM_JOINTS, 3)
    true = (true - true[:, :, :1]).reshape(-1, h36m.NUM_JOINTS, 3)
    e1.append(metrics.mpjpe(pred, true))
    e2.append(metrics.p_mpjpe(pred, true))
  e1, e2 = np.concatenate(e1), np.concatenate(e2)
  return {'mpjpe_px': float(e1.mean()), 'p_mpjpe_px': float(e2.mean()), 'clips': int(len(gt)),
          'frames': int(len(e1))}


def make_evaluator(config, model, spec, inputs=None):
  """fn(variables) -> `evaluate` metrics on the train-split clips of `spec.subjects`.

  spec: `subjects` (required, e.g. ('S8',)), `name` (default 'h36m'), `split` (default 'train';
  never 'test'), `data_dir`, `batch_size`; test-time options as the `h36m` evaluator: `flip`
  (else `config.flip_test`), `rootrel` (else `config.rootrel`), `gt_2d` (else `config.gt_2d`),
  x, y only with `config.no_conf`.
  """
  del inputs  # these evaluators read their data from the config alone
  if not spec.get('subjects'):
    raise ValueError("h36m_val evaluator: give the held-out training subjects, e.g. "
                     "subjects=('S8',)")
  split = spec.get('split', 'train')
  if split == 'test':
    raise ValueError('h36m_val evaluator: split=test; validation clips come from the training '
                     'subjects (the `h36m` evaluator reports the test split)')
  source = records_lib.load_spec(dict(name=spec.get('name', 'h36m'), split=split,
                                      data_dir=spec.get('data_dir'),
                                      subjects=tuple(spec['subjects'])), config.data.data_dir)
  gt_2d = bool(spec.get('gt_2d', config.get('gt_2d', False)))
  flip = bool(spec.get('flip', config.get('flip_test', True)))
  rootrel = bool(spec.get('rootrel', config.get('rootrel', True)))
  inputs, gt, res_w = validation_clips(source, gt_2d=gt_2d)
  if config.get('no_conf'):
    inputs = inputs[..., :2]
  apply = jax.jit(model.apply)
  batch_size = spec.get('batch_size', 32)

  def run(variables):
    pred = h36m.predict_clips(lambda x: apply(variables, x), inputs, flip=flip, rootrel=rootrel,
                              gt_2d=gt_2d, batch_size=batch_size)
    return dict(evaluate(pred, gt, res_w), flip=flip, rootrel=rootrel, gt_2d=gt_2d)

  return run
