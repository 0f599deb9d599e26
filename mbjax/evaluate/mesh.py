"""Mesh recovery evaluation: MPVE, MPJPE and PA-MPJPE as the official `evaluate_mesh`.

  python -m mbjax.evaluate --config=configs/mesh.py:pw3d --checkpoint=PATH [--save_smpl]

As the official `validate` of train_mesh.py: every clip of the split (`mesh_example` without
flip), the model in eval mode, with `flip` (default True, official `flip`) the flip test of
`mbjax.models.mesh_head.mesh_flip_test`; the ground truth through SMPL from the stored theta
(the task's `ground_truth`). Metrics (`mbjax.metrics.mesh.evaluate_mesh`, mm):
`mpve` (vertices, each mesh centred on its own regressed pelvis), `mpjpe`, `pa_mpjpe` (14 joints,
per-frame Umeyama alignment), `mpjpe_17j`, `pa_mpjpe_17j`; all are means over frames, so they
are accumulated batch by batch (the official code keeps every vertex of the split in memory).
`save_smpl` (a path; the evaluate CLI's --save_smpl sets it) also writes the predictions per clip.
`part='val'` evaluates the seeded validation slice of the training split of `data.val_dataset`
(`data.val_fraction`, whole sequences: `mbjax.data.holdout`), which training leaves out; the best
checkpoint is kept on it.
"""

from __future__ import annotations

import functools
import os

import jax
import numpy as np

from mbjax.data import finetune, holdout, mesh_clips, records
from mbjax.metrics import mesh as mesh_metrics

METRICS = ('mpve', 'mpjpe', 'pa_mpjpe', 'mpjpe_17j', 'pa_mpjpe_17j')


def split_source(config, spec):
  """The records an evaluator spec names: `dataset` (default `data.val_dataset`), `split`
  ('test'), `part` ('all' or 'val': the validation slice of that dataset's train split)."""
  data = config.data
  dataset = spec.get('dataset') or data.get('val_dataset')
  part = spec.get('part', 'all')
  split = spec.get('split') or ('train' if part == 'val' else 'test')
  source = records.load(dataset, split, data_dir=spec.get('data_dir') or data.data_dir)
  if part == 'all':
    return source
  _, held = holdout.split(source, float(data.get('val_fraction', 0.0)),
                          int(data.get('val_seed', 0)))
  return held


def save_predictions(path: str, kept: list[dict], source) -> str:
  """Writes `path` (.npz): per clip of the split, in record order, `theta` (N, T, 82) axis-angles
  and betas, `betas` (N, T, 10), `kp_3d` (N, T, 17, 3) mm, and `source` (N,) sequence ids."""
  theta = np.concatenate([k['theta'] for k in kept]).astype(np.float32)
  kp_3d = np.concatenate([k['kp_3d'] for k in kept]).astype(np.float32)
  text = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731 (records: bytes)
  names = np.array([text(source[i]['source']) for i in range(len(source))])
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  np.savez(path, theta=theta, betas=theta[..., 72:], kp_3d=kp_3d, source=names)
  return path


def make_evaluator(config, model, spec, inputs):
  """fn(variables) -> {metric: mm} plus `frames`, over every clip of `split_source`."""
  from mbjax.models import mesh_head
  ground_truth = inputs.need('ground_truth', 'mesh')
  source = split_source(config, spec)
  if len(source) == 0:
    raise ValueError(f'mesh evaluator: {source!r} has no records')
  make = functools.partial(mesh_clips.mesh_example, flip=False)
  batches = finetune.eval_batches(source, make, int(spec.get('batch_size', 32)))
  flip = bool(spec.get('flip', True))
  channels = 2 if config.get('no_conf') else 3

  @jax.jit
  def predict(variables, x, theta):
    x = x[..., :channels]
    pred = (mesh_head.mesh_flip_test(model, variables, x) if flip
            else model.apply(variables, x))
    return pred, ground_truth(model.smpl, theta)

  save = spec.get('save_smpl')

  def run(variables):
    totals, frames, kept = dict.fromkeys(METRICS, 0.0), 0, []
    for batch in batches:
      pred, gt = jax.device_get(predict(variables, batch['input'], batch['theta']))
      valid = batch['valid']
      if save:
        kept.append({k: pred[k][valid] for k in ('theta', 'kp_3d')})
      flat = lambda x: x[valid].reshape((-1,) + x.shape[2:])  # noqa: E731 (frames)
      result = mesh_metrics.evaluate_mesh(
          {'kp_3d': flat(pred['kp_3d']), 'kp_3d_gt': flat(gt['kp_3d']),
           'verts': flat(pred['verts']), 'verts_gt': flat(gt['verts'])}, num_verts=None)
      n = int(valid.sum()) * pred['kp_3d'].shape[1]
      for k in METRICS:
        totals[k] += float(result[k]) * n
      frames += n
    result = dict({k: v / frames for k, v in totals.items()}, frames=frames)
    if save:
      result['smpl_file'] = save_predictions(save, kept, source)
    return result

  return run
