"""Human3.6M 3D pose evaluation, the protocol MotionBERT reports (official `evaluate` of train.py).

  python -m mbjax.evaluate.h36m --data_dir DIR --checkpoint MB_ft_h36m.bin [--variant release]
      [--no-flip] [--gt_2d] [--out eval.json]

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

import argparse
import json
import os
import re
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from data_prep import h36m as h36m_data
from mbjax.data import transforms
from mbjax.evaluate import pose_metrics as metrics

NUM_JOINTS = 17
# Takes the official evaluation leaves out (source names without the `_ca_XX` camera suffix).
BLOCKLIST = ('s_09_act_05_subact_02', 's_09_act_10_subact_02', 's_09_act_13_subact_01')
_CAMERA_SUFFIX = re.compile(r'_ca_\d+$')


# ----------------------------------------------------------------------------------------------
# Prediction.


def _call(predict: Callable, batch: np.ndarray) -> np.ndarray:
  out = np.array(predict(batch), np.float32)  # a writable copy (jax arrays are read-only)
  want = batch.shape[:3] + (3,)
  if out.shape != want:
    raise ValueError(f'predict returned shape {out.shape} for input {batch.shape}, expected {want}')
  return out


def predict_clips(predict: Callable[[np.ndarray], Any], inputs: np.ndarray, *, flip: bool = True,
                  rootrel: bool = True, gt_2d: bool = False, batch_size: int = 32,
                  progress: bool = False) -> np.ndarray:
  """3D poses of test clips with the official test-time options.

  Args:
    predict: the model, (B, T, 17, C) -> (B, T, 17, 3). Every call gets `min(batch_size, N)` clips
      (the last batch is padded with zeros), so a jitted model compiles once.
    inputs: (N, T, 17, C) model inputs, normalised x, y (and confidence).
    flip: average the prediction with the mirrored prediction of the mirrored input,
      (f(x) + flip_pose(f(flip_pose(x)))) / 2 (official `args.flip`).
    rootrel: set the root joint (index 0) of the prediction to 0 (official `args.rootrel`).
    gt_2d: replace the predicted x, y by the input's, for ground-truth 2D inputs (official
      `args.gt_2d`); done after `rootrel`, as officially.
    batch_size: clips per call.
    progress: show a tqdm bar with clips/s.

  Returns:
    (N, T, 17, 3) float32 predictions.
  """
  inputs = np.asarray(inputs, np.float32)
  if inputs.ndim != 4 or inputs.shape[2] != NUM_JOINTS:
    raise ValueError(f'predict_clips: expected inputs (N, T, {NUM_JOINTS}, C), got {inputs.shape}')
  if batch_size < 1:
    raise ValueError(f'predict_clips: batch_size must be >= 1, got {batch_size}')
  n = len(inputs)
  out = np.zeros(inputs.shape[:3] + (3,), np.float32)
  if n == 0:
    return out
  size = min(batch_size, n)
  bar = None
  if progress:
    import tqdm
    bar = tqdm.tqdm(total=n, unit='clip', desc='h36m test', dynamic_ncols=True)
  for start in range(0, n, size):
    batch = inputs[start:start + size]
    count = len(batch)
    if count < size:
      pad = np.zeros((size - count,) + batch.shape[1:], batch.dtype)
      batch = np.concatenate([batch, pad])
    pred = _call(predict, batch)
    if flip:
      mirrored = _call(predict, transforms.flip_pose(batch))
      pred = (pred + transforms.flip_pose(mirrored)) / 2
    if rootrel:
      pred[:, :, 0, :] = 0
    if gt_2d:
      pred[..., :2] = batch[..., :2]
    out[start:start + count] = pred[:count]
    if bar is not None:
      bar.update(count)
  if bar is not None:
    bar.close()
  return out


# ----------------------------------------------------------------------------------------------
# Evaluation.


def _text(value) -> str:
  """A text feature as str: records from `builder.load` hold bytes, hand-made ones str."""
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
                     f"builder.load('h36m', 'test'))")
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
    clips: the N records of `builder.load('h36m', 'test')` (or dicts with their features
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
# Command line.


def load_pose_model(checkpoint: str, *, variant: str = 'release',
                    config: Mapping[str, Any] | None = None):
  """(DSTformer, variables) from an official `.bin`, an mbjax.convert directory or a trainer workdir.

  Args:
    checkpoint: official pose checkpoint (`model_pos` entry) or an mbjax convert directory.
    variant: DSTformer size of an official checkpoint ('release' or 'lite').
    config: DSTformer keyword arguments instead of `variant` (other sizes, e.g. tests).
  """
  from mbjax import convert
  from mbjax.models import DSTformer, dstformer_from_variant
  if os.path.isdir(os.path.join(checkpoint, 'checkpoints')):  # a trainer workdir (finetuning run)
    import jax
    from mbjax import train
    module = DSTformer(**config) if config is not None else dstformer_from_variant(variant)
    abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), np.zeros((1, 1, 17, 3))))
    return module, {'params': train._init_params_from(checkpoint, abstract['params'])}
  if os.path.isdir(checkpoint):
    module, variables = convert.restore(checkpoint)
    if not isinstance(module, DSTformer):
      raise ValueError(f'{checkpoint}: holds a {type(module).__name__}, expected a pose DSTformer')
    return module, variables
  state_dict = convert.load_official(checkpoint)
  variables = convert.official_to_variables(state_dict, 'pose')
  if config is not None:
    return DSTformer(**config), variables
  convert.config_from_state_dict(state_dict, 'pose', variant)  # raises if the sizes differ
  return dstformer_from_variant(variant), variables


def _test_inputs(source, *, gt_2d: bool) -> tuple[np.ndarray, list[dict]]:
  """(N, 243, 17, 3) model inputs and the records without their pose arrays (kept small)."""
  inputs, records = [], []
  for index in range(len(source)):
    record = source[index]
    if gt_2d:  # ground-truth 2D: x, y of the normalised 3D pose, confidence 1
      xy = np.asarray(record['joint_3d'])[..., :2]
      inputs.append(np.concatenate([xy, np.ones_like(xy[..., :1])], axis=-1))
    else:
      inputs.append(np.asarray(record['joint_2d']))
    records.append({k: v for k, v in record.items() if k not in ('joint_2d', 'joint_3d')})
  return np.stack(inputs).astype(np.float32), records


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m mbjax.evaluate.h36m',
      description='Human3.6M MPJPE / P-MPJPE of a pose checkpoint, as MotionBERT reports them.')
  parser.add_argument('--data_dir', required=True, help='TFDS data dir holding the built h36m')
  parser.add_argument('--checkpoint', required=True,
                      help='official pose .bin, or a directory written by python -m mbjax.convert')
  parser.add_argument('--variant', choices=('release', 'lite'), default='release',
                      help='DSTformer size of an official .bin')
  parser.add_argument('--no-flip', dest='flip', action='store_false', help='no flip test')
  parser.add_argument('--gt_2d', action='store_true',
                      help='ground-truth 2D input (x, y of joint_3d, confidence 1)')
  parser.add_argument('--batch_size', type=int, default=32)
  parser.add_argument('--out', default='eval.json', help='where to write the results (JSON)')
  parser.add_argument('--config_json', default=None, help=argparse.SUPPRESS)  # other model sizes
  args = parser.parse_args(argv)

  import jax
  from data_prep import builder

  source = builder.load('h36m', 'test', data_dir=args.data_dir)
  config = json.loads(args.config_json) if args.config_json else None
  module, variables = load_pose_model(args.checkpoint, variant=args.variant, config=config)
  variables = jax.device_put(variables)
  apply = jax.jit(lambda v, x: module.apply(v, x))
  inputs, records = _test_inputs(source, gt_2d=args.gt_2d)
  print(f'{source}: {len(inputs)} clips, flip={args.flip}, gt_2d={args.gt_2d}', flush=True)
  start = time.perf_counter()
  predictions = predict_clips(lambda x: apply(variables, x), inputs, flip=args.flip,
                              gt_2d=args.gt_2d, batch_size=args.batch_size, progress=True)
  seconds = time.perf_counter() - start
  result = evaluate(predictions, records)
  print(format_table(result))
  print(f'Protocol #1 (MPJPE): {result["mpjpe"]:.2f} mm   Protocol #2 (P-MPJPE): '
        f'{result["p_mpjpe"]:.2f} mm')
  result.update(checkpoint=os.path.abspath(args.checkpoint), flip=args.flip, gt_2d=args.gt_2d,
                predict_seconds=round(seconds, 2))
  out_dir = os.path.dirname(os.path.abspath(args.out))
  os.makedirs(out_dir, exist_ok=True)
  with open(args.out, 'w') as f:
    json.dump(result, f, indent=2)
  print(f'wrote {args.out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
