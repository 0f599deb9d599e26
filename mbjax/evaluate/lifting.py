"""2D-to-3D lifting on held-out 3D clips, in millimetres, beside two baselines.

Clips are in MotionBERT's camera-like units (metres x `units_per_metre`, official AMASS convention
0.298). When pretraining crop-scales its 3D clips (`augment.scale_range_3d` set), each clip is
normalised the same way (`crop_scale_3d`, ratio 1) so its scale s is known: a normalised distance
d is d * s / 2 / units_per_metre metres; otherwise clips stay as stored, as the official
pretraining feeds them. The input is the clean 2D (x, y, confidence 1) of the (normalised) clip;
errors are on root-relative poses.

Baselines on the same frames: the mean root-relative training pose, and "zero depth" (the input
x, y with depth 0, root-relative), which is what a model that cannot infer depth would give.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from mbjax.data import pipelines, records, transforms
from mbjax.evaluate import batching
from mbjax.metrics import pose as metrics

AMASS_UNITS_PER_METRE = 0.298


def normalise_clips(clips: np.ndarray, crop_scale: bool = True
                    ) -> tuple[np.ndarray, np.ndarray]:
  """(N, T, 17, 3) clips -> (model-unit clips, per-clip mm per model unit (N,)).

  `crop_scale`: normalise each clip to [-1, 1] (`crop_scale_3d`, ratio 1); else keep it as stored.
  """
  if not crop_scale:
    return (np.asarray(clips, np.float32),
            np.full(len(clips), 1000.0 / AMASS_UNITS_PER_METRE, np.float64))
  out, mm_per_unit = [], []
  for clip in clips:
    xy = clip[..., :2]
    scale = max(float(np.ptp(xy[..., 0])), float(np.ptp(xy[..., 1])))
    out.append(transforms.crop_scale_3d(clip, (1, 1)))
    mm_per_unit.append(scale / 2.0 / AMASS_UNITS_PER_METRE * 1000.0)
  return np.stack(out).astype(np.float32), np.asarray(mm_per_unit, np.float64)


def mean_pose(train_clips: np.ndarray) -> np.ndarray:
  """Mean root-relative pose (17, 3) over all frames of normalised training clips."""
  rel = train_clips - train_clips[..., :1, :]
  return rel.reshape(-1, 17, 3).mean(axis=0)


def evaluate_lifting(predict: Callable[[np.ndarray], np.ndarray], clips: np.ndarray,
                     train_mean_pose: np.ndarray, crop_scale: bool = True) -> dict[str, float]:
  """MPJPE / P-MPJPE (mm) of `predict` ((N, T, 17, 3) input -> 3D) and of both baselines.

  `crop_scale`: as `normalise_clips`; give the mean pose in the same units.
  """
  norm, mm_per_unit = normalise_clips(clips, crop_scale)
  x = np.concatenate([norm[..., :2], np.ones_like(norm[..., :1])], axis=-1)
  pred = np.asarray(predict(x), np.float64)
  gt = norm - norm[..., :1, :]
  zero_depth = np.concatenate([norm[..., :2], np.zeros_like(norm[..., :1])], axis=-1)
  candidates = {
      '': pred - pred[..., :1, :],
      'baseline_': np.broadcast_to(train_mean_pose, gt.shape),
      'zero_depth_': zero_depth - zero_depth[..., :1, :],
  }
  result = {}
  for prefix, p in candidates.items():
    scale = mm_per_unit[:, None, None, None]
    p_mm = (p * scale).reshape(-1, 17, 3)
    gt_mm = (gt * scale).reshape(-1, 17, 3)
    result[f'{prefix}mpjpe_mm'] = float(metrics.mpjpe(p_mm, gt_mm).mean())
    result[f'{prefix}p_mpjpe_mm'] = float(metrics.p_mpjpe(p_mm, gt_mm).mean())
  result['frames'] = int(gt.shape[0] * gt.shape[1])
  return result


def _stack(source, key: str) -> np.ndarray:
  return np.stack([source[i][key] for i in range(len(source))]).astype(np.float32)


def make_evaluator(config, model, spec, inputs=None):
  """The registry's `lifting` evaluator: fn(variables) -> `evaluate_lifting` metrics.

  spec: `name`, `split` (default 'train'), `key` (default 'joints3d') and optional `data_dir` of
  the held-out 3D clips, `batch_size`. The mean-pose baseline is taken over the clips of
  `config.data.sources_3d` with the same key. Clips are crop-scaled when training's are
  (`config.augment.scale_range_3d` set).
  """
  del inputs  # these evaluators read their data from the config alone
  crop_scale = bool((config.get('augment') or {}).get('scale_range_3d'))
  channels = 2 if config.get('no_conf') else 3  # no_conf: the model takes x, y only
  key = spec.get('key', 'joints3d')
  data_dir = config.data.data_dir
  clips = _stack(records.load_spec(spec, data_dir), key)
  train = pipelines.ConcatSource([records.load_spec(s, data_dir) for s in config.data.sources_3d
                                  if s['key'] == key])
  train_mean_pose = mean_pose(normalise_clips(_stack(train, key), crop_scale)[0])
  apply = jax.jit(model.apply)
  batch_size = spec.get('batch_size', 16)

  def evaluate(variables):
    predict = lambda x: batching.predict_batched(lambda b: apply(variables, b[..., :channels]),
                                                 x, batch_size)
    return evaluate_lifting(predict, clips, train_mean_pose, crop_scale)

  return evaluate
