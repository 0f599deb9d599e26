"""H36M-17 pixel tracks -> model input -> 3D, every track and window in fixed-size batches.

Normalisation (official `dataset_wild.read_input`), per track over all its frames:
- 'crop' (default, official scale_range [1, 1]): `transforms.crop_scale_2d`: the square box of
  the track's joints with confidence != 0, centred, side = its longer side; x, y -> [-1, 1], then
  everything (confidence too) clipped to [-1, 1].
- 'pixel' (official `--pixel`): `wild.normalize_wild_pixels`: x, y -> (p - (w, h) / 2) /
  (min(w, h) / 2), confidence untouched; the 3D output goes back to pixels as official:
  p * min(w, h) / 2 + (w, h) / 2 (x, y), z * min(w, h) / 2.
Both are p_norm = (p_px - offset) / scale (before the clip), so `Normalisation.to_pixels` maps
the 3D of either mode back to pixels (for 'crop': scale = side / 2, offset = the box centre).

Differences from the official `infer_wild.py`: without `--focus` it lifts each track on its own
(official: all detections of the file, whoever they are, as one sequence); missing frames and
joints are filled (mbjax/data/person_tracks.py; official: missing frames are dropped, shortening
the video).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from mbjax.data import transforms, wild
from mbjax.evaluate import h36m
from mbjax.infer import windows as windows_lib

MODES = ('crop', 'pixel')


@dataclasses.dataclass(frozen=True)
class Normalisation:
  """p_norm = (p_px - offset) / scale for x, y; z_norm = z_px / scale."""

  mode: str
  scale: float
  offset: tuple[float, float]

  def to_pixels(self, joints3d: np.ndarray) -> np.ndarray:
    """(..., 3) model-unit poses -> pixels (x, y in the image, z at the same scale)."""
    out = np.array(joints3d, np.float64) * self.scale
    out[..., :2] += np.asarray(self.offset)
    return out.astype(np.float32)


def crop_box(keypoints: np.ndarray) -> Normalisation:
  """The `transforms.crop_scale_2d` box (scale_range [1, 1]) of (T, 17, 3) pixel keypoints."""
  valid = keypoints[keypoints[..., 2] != 0][:, :2]
  low, high = valid.min(axis=0), valid.max(axis=0)
  side = float(max(high - low))
  centre = (low + high) / 2
  return Normalisation('crop', side / 2, (float(centre[0]), float(centre[1])))


def normalise(keypoints: np.ndarray, mode: str = 'crop', size=None
              ) -> tuple[np.ndarray, Normalisation]:
  """(T, 17, 3) pixel keypoints -> ((T, 17, 3) float32 model input, its `Normalisation`)."""
  if mode == 'crop':
    norm = crop_box(keypoints)
    if norm.scale == 0:
      raise ValueError('normalise: the detected joints of the track are all at one point')
    return transforms.crop_scale_2d(keypoints).astype(np.float32), norm
  if mode != 'pixel':
    raise ValueError(f'normalise: mode {mode!r}, expected one of {MODES}')
  if size is None:
    raise ValueError('--pixel needs the frame size: pass --size WxH (or a file that holds it)')
  w, h = size
  x = wild.normalize_wild_pixels(keypoints, w, h).astype(np.float32)
  return x, Normalisation('pixel', min(w, h) / 2, (w / 2, h / 2))


@dataclasses.dataclass(frozen=True)
class Options:
  """How to run the model (official test-time options) and cut sequences."""

  clip_len: int
  stride: int
  flip: bool = True
  rootrel: bool = False
  gt_2d: bool = False
  no_conf: bool = False
  batch_size: int = 32
  pad: bool = False  # short windows padded with NaN frames (`padded_lengths`: a few compiled
                     # shapes for many track lengths); `predict` must mask them: masked_apply


PAD_RATIO = 1.5  # a window is padded to at most 1.5x its frames


def padded_lengths(lengths) -> dict[int, int]:
  """{window length: the length it runs at}: the longest length runs as it is, and so does every
  length too short to be padded to a longer one within PAD_RATIO, the rest are padded to those.
  One length (one track) is never padded; tracks of many lengths compile a few shapes (each
  within PAD_RATIO of the next) instead of one per length."""
  out, anchor = {}, None
  for n in sorted(set(lengths), reverse=True):
    if anchor is None or n * PAD_RATIO < anchor:
      anchor = n
    out[n] = anchor
  return out


def _padded(clip: np.ndarray, length: int) -> np.ndarray:
  fill = np.full((length - len(clip),) + clip.shape[1:], np.nan, clip.dtype)
  return np.concatenate([clip, fill])


def lift(predict: Callable[[np.ndarray], np.ndarray], inputs: dict[int, np.ndarray],
         options: Options, *, mirrored: Callable | None = None,
         extras: dict | None = None) -> dict[int, np.ndarray]:
  """3D poses of every track.

  Args:
    predict: the model, (B, t, 17, C) -> (B, t, 17, 3), t <= clip_len; or -> {'pose': ...,
      other heads' outputs} (mbjax/infer/shared.py).
    inputs: track id -> (T, 17, 3) normalised input.
    options: test-time options and windows.
    mirrored: the model for the mirrored input of the flip test (default `predict`).
    extras: receives, per track id, the other outputs of each of its windows (a list of
      {name: array} in window order), where `predict` returns a dict.

  Returns:
    track id -> (T, 17, 3) float32 poses in model units (windows.assemble).
  """
  bounds = {k: windows_lib.windows(len(x), options.clip_len, options.stride)
            for k, x in inputs.items()}
  clips = [(k, i, inputs[k][s:e]) for k, b in bounds.items() for i, (s, e) in enumerate(b)]
  lengths = [len(c) for _, _, c in clips]
  run_length = padded_lengths(lengths) if options.pad else {n: n for n in lengths}
  outputs, window_extras = {}, {}
  for length in sorted(set(run_length.values())):  # one compiled shape each
    group = [(k, i, c) for k, i, c in clips if run_length[len(c)] == length]
    batch = np.stack([_padded(c, length) for _, _, c in group])
    if options.no_conf:
      batch = batch[..., :2]
    got = {}
    pred = h36m.predict_clips(predict, batch, flip=options.flip, rootrel=options.rootrel,
                              gt_2d=options.gt_2d, batch_size=options.batch_size,
                              mirrored=mirrored, extras=got)
    outputs.update({(k, i): p[:len(c)] for (k, i, c), p in zip(group, pred)})
    window_extras.update({(k, i): {name: v[j] for name, v in got.items()}
                          for j, (k, i, _) in enumerate(group)})
  if extras is not None:
    extras.update({k: [window_extras.get((k, i), {}) for i in range(len(b))]
                   for k, b in bounds.items()})
  return {k: windows_lib.assemble([outputs[k, i] for i in range(len(b))], b,
                                  rootrel=options.rootrel)
          for k, b in bounds.items()}
