"""Sequences of any length through a model of at most `clip_len` frames: windows and blending.

Two ways to cut a T-frame sequence:
- `stride == clip_len` (official `WildDetDataset`): consecutive non-overlapping windows
  [0, L), [L, 2L), ..., the last one shorter; predictions are concatenated. Each window's 3D is
  predicted without seeing its neighbours, so the motion jumps at every seam.
- `stride < clip_len` (default): windows of exactly clip_len frames starting every `stride` frames,
  the last one ending at frame T; predictions are blended per frame with `blend_weights` (a Hann
  taper that trusts a window's middle, where the model sees context on both sides, more than its
  ends), weights normalised over the windows covering the frame.

A sequence of at most clip_len frames is one window of its own length in both (official: the
model's temporal embedding is sliced to the clip length).

Depth of models trained with rootrel=False: their z is relative to the root depth in the first
frame of each window (official training subtracts it), and official inference sets exactly that
one value, `pred[0, 0, 2]`, to 0 in every window. We do the same with `stride == clip_len`. With
overlap, window 0 is shifted in z so that its first root depth is 0, and every later window is
shifted so that its mean root depth over the frames it shares with the windows before it equals
theirs: one depth reference for the whole sequence (official: a new reference every clip_len
frames).
"""

from __future__ import annotations

import numpy as np


def _check(length: int, clip_len: int, stride: int) -> None:
  if length < 1 or clip_len < 1:
    raise ValueError(f'windows: need length >= 1 and clip_len >= 1, got {length}, {clip_len}')
  if not 1 <= stride <= clip_len:
    raise ValueError(f'--stride={stride}: must be between 1 and clip_len={clip_len} (a larger '
                     'stride would leave frames without a prediction)')


def official_windows(length: int, clip_len: int) -> list[tuple[int, int]]:
  """[start, end) of the official consecutive windows: clip k is [kL, min((k+1)L, T))."""
  _check(length, clip_len, clip_len)
  return [(s, min(s + clip_len, length)) for s in range(0, length, clip_len)]


def windows(length: int, clip_len: int, stride: int) -> list[tuple[int, int]]:
  """[start, end) of the windows covering `length` frames (module docstring)."""
  _check(length, clip_len, stride)
  if stride == clip_len or length <= clip_len:
    return official_windows(length, clip_len)
  starts = list(range(0, length - clip_len + 1, stride))
  if starts[-1] != length - clip_len:
    starts.append(length - clip_len)
  return [(s, s + clip_len) for s in starts]


def blend_weights(n: int) -> np.ndarray:
  """(n,) float64 Hann taper, positive everywhere: 0.5 - 0.5 cos(2 pi (t + 0.5) / n)."""
  t = np.arange(n, dtype=np.float64)
  return 0.5 - 0.5 * np.cos(2 * np.pi * (t + 0.5) / n)


def _non_overlapping(bounds) -> bool:
  return all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


def assemble(predictions: list[np.ndarray], bounds: list[tuple[int, int]], *,
             rootrel: bool) -> np.ndarray:
  """One (T, 17, 3) float32 sequence from the window predictions.

  Args:
    predictions: per window, (end - start, 17, 3) model outputs (flip-averaged, root zeroed when
      rootrel, as `mbjax.evaluate.h36m.predict_clips` gives them).
    bounds: the windows, from `windows`, in order.
    rootrel: whether the model predicts root-relative poses; if not, depths are referenced as
      described in the module docstring.
  """
  if len(predictions) != len(bounds) or not bounds:
    raise ValueError(f'assemble: {len(predictions)} predictions for {len(bounds)} windows')
  preds = [np.array(p, np.float64) for p in predictions]
  if _non_overlapping(bounds):
    if not rootrel:
      for p in preds:
        p[0, 0, 2] = 0.0  # official: predicted_3d_pos[:, 0, 0, 2] = 0
    return np.concatenate(preds).astype(np.float32)
  return _blend(preds, bounds, align_depth=not rootrel).astype(np.float32)


def _blend(preds: list[np.ndarray], bounds, *, align_depth: bool) -> np.ndarray:
  length = bounds[-1][1]
  total = np.zeros((length,) + preds[0].shape[1:], np.float64)
  weight = np.zeros(length, np.float64)
  for k, ((start, end), pred) in enumerate(zip(bounds, preds)):
    if align_depth:
      pred = pred.copy()
      if k == 0:
        pred[..., 2] -= pred[0, 0, 2]
      else:
        shared = slice(start, min(end, bounds[k - 1][1]))
        blended_root = total[shared, 0, 2] / weight[shared]
        pred[..., 2] += np.mean(blended_root - pred[:shared.stop - start, 0, 2])
    w = blend_weights(end - start)
    total[start:end] += w[:, None, None] * pred
    weight[start:end] += w
  return total / weight[:, None, None]


def seam_jitter(joints3d: np.ndarray, seams, *, radius: int = 1) -> dict:
  """Mean acceleration magnitude at window seams and elsewhere.

  Acceleration at frame t: |x[t+1] - 2 x[t] + x[t-1]| per joint (the Euclidean norm of the second
  difference), averaged over joints. A seam s (the first frame of a window) is measured at frames
  s-radius .. s+radius-1 (the frames whose second difference spans the seam, for radius 1: s-1 and
  s); every other frame is 'elsewhere'.

  Args:
    joints3d: (T, 17, 3) poses.
    seams: frames where a new window starts (for overlapping windows, where a window begins or
      ends contributing).
    radius: frames on each side of a seam counted as the seam.

  Returns:
    {seam, elsewhere, ratio, seam_frames}.
  """
  x = np.asarray(joints3d, np.float64)
  acc = np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1).mean(axis=-1)  # frames 1 .. T-2
  at_seam = np.zeros(len(acc), bool)
  for s in seams:
    for t in range(s - radius, s + radius):
      if 1 <= t <= len(x) - 2:
        at_seam[t - 1] = True
  seam = float(acc[at_seam].mean()) if at_seam.any() else float('nan')
  rest = float(acc[~at_seam].mean()) if (~at_seam).any() else float('nan')
  return dict(seam=seam, elsewhere=rest, ratio=seam / rest if rest else float('nan'),
              seam_frames=int(at_seam.sum()))
