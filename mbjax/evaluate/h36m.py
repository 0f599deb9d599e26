"""Human3.6M 3D pose evaluation, the protocol MotionBERT reports (official `evaluate` of train.py).

  python -m mbjax.evaluate --config=configs/pose3d_h36m.py:ft --checkpoint=MB_ft_h36m.bin

Steps, as the official code does them:
1. `predict_clips`: the model on each 243-frame test clip of the `h36m` dataset (input `joint_2d`,
   normalised 2D + confidence), averaged with its mirror image (flip test), root joint set to 0.
2. `evaluate`: each clip is denormalised with its camera resolution (xy = (xy + [1, h/w]) * w/2,
   z = z * w/2, in pixels), multiplied by the per-frame 2.5D factor (pixels -> millimetres) and
   compared with `joints_2_5d_mm`, both made root-relative: MPJPE (protocol #1) and
   Procrustes-aligned P-MPJPE (protocol #2) per frame. Three takes with bad ground truth are
   skipped (any camera).
3. Frame errors are pooled per action, and the reported number is the mean over actions of the
   per-action mean ('action-wise', as in the paper). The mean over all frames (what MMPose reports)
   is given next to it.

Frames: each (clip, frame index) counts once. A short sequence resampled to 243 frames repeats frame
indices inside its clip; the official `e1_all[frame_list] += err1` then keeps the error of the last
position of each repeated index, and so do we. A frame covered by several clips (only with a test
stride below 243) gets the mean over those clips, as the official `oc` counter gives. Tails of
sequences that fill no clip are in no clip and are not evaluated.

Where we differ from the official code (same numbers for a real model whose test-set `action`
strings are the 15 action names):
- a frame counts when an evaluated clip covers it; the official code takes frames with error > 0,
  so an exact prediction would leave its frames out (and give NaN);
- actions are grouped by the text before the first space of `action` (see `action_name`), the
  official code by the whole string; the average runs over actions that have evaluated frames;
- arithmetic in float64 after denormalising (official: float32 predictions scaled in place).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from mbjax.data import h36m as h36m_data
from mbjax.data import records as records_lib
from mbjax.data import transforms
from mbjax.evaluate import batching
from mbjax.metrics import pose as metrics

NUM_JOINTS = 17
# Takes the official evaluation leaves out (source names without the `_ca_XX` camera suffix).
BLOCKLIST = ('s_09_act_05_subact_02', 's_09_act_10_subact_02', 's_09_act_13_subact_01')
_CAMERA_SUFFIX = re.compile(r'_ca_\d+$')


# ----------------------------------------------------------------------------------------------
# Prediction.


def _call(predict: Callable, batch: np.ndarray, extras: list | None = None) -> np.ndarray:
  out = predict(batch)
  if isinstance(out, dict):  # {'pose': ..., other heads' outputs}: mbjax/infer/shared.py
    if extras is not None:
      extras.append({k: np.asarray(v) for k, v in out.items() if k != 'pose'})
    out = out['pose']
  out = np.array(out, np.float32)  # a writable copy (jax arrays are read-only)
  want = batch.shape[:3] + (3,)
  if out.shape != want:
    raise ValueError(f'predict returned shape {out.shape} for input {batch.shape}, expected {want}')
  return out


def predict_clips(predict: Callable[[np.ndarray], Any], inputs: np.ndarray, *, flip: bool = True,
                  rootrel: bool = True, gt_2d: bool = False, batch_size: int = 32,
                  progress: bool = False, mirrored: Callable | None = None,
                  extras: dict | None = None) -> np.ndarray:
  """3D poses of test clips with the official test-time options.

  Args:
    predict: the model, (B, T, 17, C) -> (B, T, 17, 3). Every call gets `min(batch_size, N)` clips
      (the last batch is padded with zeros: `mbjax.evaluate.batching`), so a jitted model compiles
      once.
    inputs: (N, T, 17, C) model inputs, normalised x, y (and confidence).
    flip: average the prediction with the mirrored prediction of the mirrored input,
      (f(x) + flip_pose(f(flip_pose(x)))) / 2 (official `args.flip`).
    rootrel: set the root joint (index 0) of the prediction to 0 (official `args.rootrel`).
    gt_2d: replace the predicted x, y by the input's, for ground-truth 2D inputs (official
      `args.gt_2d`); done after `rootrel`, as officially.
    batch_size: clips per call.
    progress: show a tqdm bar with clips/s.
    mirrored: the model for the mirrored input (default `predict`).
    extras: where `predict` returns a dict, `{'pose': (B, T, 17, 3), other outputs}` (several
      heads on one backbone pass: mbjax/infer/shared.py), receives the other outputs of the
      unmirrored input: name -> (N, ...) numpy array.

  Returns:
    (N, T, 17, 3) float32 predictions.
  """
  inputs = np.asarray(inputs, np.float32)
  if inputs.ndim != 4 or inputs.shape[2] != NUM_JOINTS:
    raise ValueError(f'predict_clips: expected inputs (N, T, {NUM_JOINTS}, C), got {inputs.shape}')
  if len(inputs) == 0:
    return np.zeros(inputs.shape[:3] + (3,), np.float32)

  collected = []

  def one_batch(batch):
    pred = _call(predict, batch, collected)
    if flip:
      other = _call(mirrored or predict, transforms.flip_pose(batch))
      pred = (pred + transforms.flip_pose(other)) / 2
    if rootrel:
      pred[:, :, 0, :] = 0
    if gt_2d:
      pred[..., :2] = batch[..., :2]
    return pred

  out = batching.predict_batched(one_batch, inputs, batch_size,
                                 progress='h36m test' if progress else None)
  if extras is not None and collected:  # the last batch's padding rows are at the end
    extras.update({k: np.concatenate([c[k] for c in collected])[:len(inputs)]
                   for k in collected[0]})
  return out


# ----------------------------------------------------------------------------------------------
# Evaluation.


def _text(value) -> str:
  """A text feature as str: records from `records.load` hold bytes, hand-made ones str."""
  value = value.item() if isinstance(value, np.ndarray) else value
  return value.decode('utf-8') if isinstance(value, (bytes, np.bytes_)) else str(value)


def take_name(source: str) -> str:
  """'s_09_act_05_subact_02_ca_01' -> 's_09_act_05_subact_02' (the take, any camera)."""
  return _CAMERA_SUFFIX.sub('', source)


def action_name(action: str) -> str:
  """The H36M action of a test-set `action` string: the text before the first space.

  'Directions 1' -> 'Directions'; 'WalkDog' and 'WalkTogether' stay distinct; no other renaming
  ('TakingPhoto' stays 'TakingPhoto'). The official code groups by the whole string.
  """
  return action.strip().split(' ', 1)[0]


def _field(clip: Mapping[str, Any], key: str, index: int, shape: tuple) -> np.ndarray:
  if key not in clip:
    raise ValueError(f'h36m test clip {index}: missing feature {key!r} (expected a record of '
                     f"records.load('h36m', 'test'))")
  value = np.asarray(clip[key])
  if value.shape != shape:
    raise ValueError(f'h36m test clip {index} ({_text(clip.get("source", "?"))}): {key} has shape '
                     f'{value.shape}, expected {shape}')
  return value


def evaluate(predictions: np.ndarray, clips: Sequence[Mapping[str, Any]], *,
             rootrel: bool = True) -> dict[str, Any]:
  """MPJPE and P-MPJPE (mm) of Human3.6M test predictions, as MotionBERT reports them.

  Args:
    predictions: (N, T, 17, 3) normalised predictions, one per clip (e.g. from `predict_clips`).
    clips: the N records of `records.load('h36m', 'test')` (or dicts with their features
      frame_index (T,), source, action, res_w, res_h, factor_2_5d (T,), joints_2_5d_mm (T, 17, 3)).
    rootrel: root-relative errors (the official protocol, always on there). False compares absolute
      positions in the 2.5D frame instead, e.g. for models that predict the root.

  Returns:
    mpjpe, p_mpjpe: mean over actions of the per-action mean frame error (paper numbers).
    mpjpe_per_frame, p_mpjpe_per_frame: mean over all evaluated frames.
    per_action: {action: {'mpjpe', 'p_mpjpe', 'frames'}}, actions sorted by name.
    frames: evaluated frames; clips: evaluated clips; skipped_clips: clips of blocklisted takes.
  """
  predictions = np.asarray(predictions)
  n = len(clips)
  if predictions.ndim != 4 or predictions.shape[0] != n or predictions.shape[2:] != (NUM_JOINTS, 3):
    raise ValueError(f'evaluate: predictions have shape {predictions.shape}, expected '
                     f'({n}, T, {NUM_JOINTS}, 3) for {n} clips')
  t = predictions.shape[1]
  frame_ids, errors_1, errors_2, action_ids = [], [], [], []
  actions: list[str] = []
  skipped = 0
  for index in range(n):
    clip = clips[index]
    source = _text(_field(clip, 'source', index, ()))
    if take_name(source) in BLOCKLIST:
      skipped += 1
      continue
    frames = _field(clip, 'frame_index', index, (t,)).astype(np.int64)
    factor = _field(clip, 'factor_2_5d', index, (t,)).astype(np.float64)
    gt = _field(clip, 'joints_2_5d_mm', index, (t, NUM_JOINTS, 3)).astype(np.float64)
    res_w = _field(clip, 'res_w', index, ())
    res_h = _field(clip, 'res_h', index, ())
    pixels = h36m_data.denormalize_3d(predictions[index][None], res_w[None], res_h[None])[0]
    pred = pixels.astype(np.float64) * factor[:, None, None]  # official: float32, in place
    if rootrel:
      pred = pred - pred[:, :1]
      gt = gt - gt[:, :1]
    e1 = metrics.mpjpe(pred, gt)
    e2 = metrics.p_mpjpe(pred, gt)
    # One error per frame index of the clip: its last position, as official `a[idx] += err` keeps.
    unique, reverse_pos = np.unique(frames[::-1], return_index=True)
    last = t - 1 - reverse_pos
    action = action_name(_text(_field(clip, 'action', index, ())))  # official: whole string
    if action not in actions:
      actions.append(action)
    frame_ids.append(unique)
    errors_1.append(e1[last])
    errors_2.append(e2[last])
    action_ids.append(np.full(len(unique), actions.index(action)))
  if not frame_ids:
    raise ValueError(f'evaluate: no clip left to evaluate ({n} clips, {skipped} of blocklisted '
                     f'takes {", ".join(BLOCKLIST)})')

  frame_ids = np.concatenate(frame_ids)
  action_ids = np.concatenate(action_ids)
  frames, inverse = np.unique(frame_ids, return_inverse=True)
  # Coverage, not `error > 0` as officially: exact predictions must count (and give 0, not NaN).
  covers = np.bincount(inverse, minlength=len(frames))
  # A frame in several clips: the mean over them (official e1_all / oc).
  frame_e1 = np.bincount(inverse, np.concatenate(errors_1), len(frames)) / covers
  frame_e2 = np.bincount(inverse, np.concatenate(errors_2), len(frames)) / covers
  frame_action = np.zeros(len(frames), np.int64)
  frame_action[inverse] = action_ids
  if np.any(frame_action[inverse] != action_ids):
    bad = int(frame_ids[np.argmax(frame_action[inverse] != action_ids)])
    raise ValueError(f'evaluate: frame {bad} of the test split is in clips of different actions')

  per_action = {}
  for code, action in sorted(enumerate(actions), key=lambda item: item[1]):
    mask = frame_action == code
    per_action[action] = {'mpjpe': float(frame_e1[mask].mean()),
                          'p_mpjpe': float(frame_e2[mask].mean()), 'frames': int(mask.sum())}
  return {
      'mpjpe': float(np.mean([v['mpjpe'] for v in per_action.values()])),
      'p_mpjpe': float(np.mean([v['p_mpjpe'] for v in per_action.values()])),
      'mpjpe_per_frame': float(frame_e1.mean()),
      'p_mpjpe_per_frame': float(frame_e2.mean()),
      'per_action': per_action,
      'frames': int(len(frames)),
      'clips': n - skipped,
      'skipped_clips': skipped,
  }


def format_table(result: Mapping[str, Any]) -> str:
  """The per-action table of `evaluate` plus both averages, for the console."""
  rows = [(action, v['mpjpe'], v['p_mpjpe'], v['frames'])
          for action, v in result['per_action'].items()]
  rows.append(('Average (action-wise)', result['mpjpe'], result['p_mpjpe'], result['frames']))
  rows.append(('Average (per frame)', result['mpjpe_per_frame'], result['p_mpjpe_per_frame'],
               result['frames']))
  width = max(len(r[0]) for r in rows)
  header = f'{"action":<{width}}  {"MPJPE":>8}  {"P-MPJPE":>8}  {"frames":>8}'
  lines = [header, '-' * len(header)]
  for i, (name, e1, e2, count) in enumerate(rows):
    if i == len(rows) - 2:
      lines.append('-' * len(header))
    lines.append(f'{name:<{width}}  {e1:8.2f}  {e2:8.2f}  {count:8d}')
  lines.append('errors in mm; the paper reports the action-wise averages (protocols #1 and #2)')
  return '\n'.join(lines)


# ----------------------------------------------------------------------------------------------
# The `h36m` evaluator (mbjax.evaluate.registry), as the trainer and `python -m mbjax.evaluate`
# run it.


def test_inputs(source, *, gt_2d: bool = False) -> tuple[np.ndarray, list[dict]]:
  """(N, 243, 17, 3) model inputs of a split and its records without their pose arrays (small).

  Detected 2D (`joint_2d`), or with `gt_2d` the x, y of the normalised 3D pose and confidence 1.
  """
  inputs, records = [], []
  for index in range(len(source)):
    record = source[index]
    key = 'joint_3d' if gt_2d else 'joint_2d'
    if key not in record:
      raise ValueError(f'{source}: record {index} has no {key} (keys: {sorted(record)})')
    if gt_2d:
      xy = np.asarray(record['joint_3d'])[..., :2]
      inputs.append(np.concatenate([xy, np.ones_like(xy[..., :1])], axis=-1))
    else:
      inputs.append(np.asarray(record['joint_2d']))
    records.append({k: v for k, v in record.items() if k not in ('joint_2d', 'joint_3d')})
  return np.stack(inputs).astype(np.float32), records


def make_evaluator(config, model, spec, inputs=None):
  """fn(variables) -> the `evaluate` result (mm) on the `h36m` split `spec.split` (test).

  Test-time options follow the official evaluation, from the spec or else the task config: flip
  averaging (`flip`, else `config.flip_test`), the predicted root set to 0 when training
  root-relative (`rootrel`, else `config.rootrel`), ground-truth 2D input (`gt_2d`, else
  `config.gt_2d`); x, y only with `config.no_conf`. Errors are always root-relative, as the
  official protocol computes them.
  """
  del inputs  # these evaluators read their data from the config alone
  source = records_lib.load('h36m', spec.get('split', 'test'),
                            data_dir=spec.get('data_dir') or config.data.data_dir)
  gt_2d = bool(spec.get('gt_2d', config.get('gt_2d', False)))
  flip = bool(spec.get('flip', config.get('flip_test', True)))
  rootrel = bool(spec.get('rootrel', config.get('rootrel', True)))
  inputs, records = test_inputs(source, gt_2d=gt_2d)
  if config.get('no_conf'):
    inputs = inputs[..., :2]
  apply = jax.jit(model.apply)
  batch_size = spec.get('batch_size', 32)

  def run(variables):
    pred = predict_clips(lambda x: apply(variables, x), inputs, flip=flip, rootrel=rootrel,
                         gt_2d=gt_2d, batch_size=batch_size)
    return dict(evaluate(pred, records), flip=flip, rootrel=rootrel, gt_2d=gt_2d)

  return run
