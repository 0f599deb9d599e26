"""MotionBERT's per-clip transforms and augmentations, in numpy.

Each function computes what the official function named in its docstring computes (files under
`lib/utils/` and `lib/data/` of the official code), on one clip at a time so that it can run inside
a grain map. Every random operation takes an explicit `np.random.Generator` instead of drawing from
numpy's or torch's global state, so a pipeline is reproducible from its seed.

Joint order is H36M-17: 0 pelvis, 1 rhip, 2 rknee, 3 rankle, 4 lhip, 5 lknee, 6 lankle, 7 belly,
8 neck, 9 nose, 10 head, 11 lshoulder, 12 lelbow, 13 lwrist, 14 rshoulder, 15 relbow, 16 rwrist.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Hashable, Sequence

import numpy as np

NUM_JOINTS = 17
LEFT_JOINTS = (4, 5, 6, 11, 12, 13)
RIGHT_JOINTS = (1, 2, 3, 14, 15, 16)
# FLIP_PERM[j] is the joint whose coordinates joint j takes in the mirrored pose.
FLIP_PERM = np.arange(NUM_JOINTS)
FLIP_PERM[list(LEFT_JOINTS)] = RIGHT_JOINTS
FLIP_PERM[list(RIGHT_JOINTS)] = LEFT_JOINTS

DEFAULT_NOISE_PATH = pathlib.Path(__file__).resolve().parent / 'assets' / 'synthetic_noise.npz'


def _float_dtype(x: np.ndarray) -> np.dtype:
  return np.result_type(x.dtype, np.float32)


def _check_joints(x, fn: str, min_channels: int = 1, exact_channels: int | None = None) -> None:
  if x.ndim < 2 or x.shape[-2] != NUM_JOINTS:
    raise ValueError(f'{fn}: expected (..., {NUM_JOINTS}, C) joints, got shape {x.shape}')
  if exact_channels is not None and x.shape[-1] != exact_channels:
    raise ValueError(f'{fn}: expected {exact_channels} channels, got shape {x.shape}')
  if x.shape[-1] < min_channels:
    raise ValueError(f'{fn}: expected at least {min_channels} channels, got shape {x.shape}')


def _draw_ratio(scale_range: Sequence[float], rng: np.random.Generator | None, fn: str) -> float:
  low, high = float(scale_range[0]), float(scale_range[1])
  if rng is None:
    if low != high:
      raise ValueError(f'{fn}: scale_range {tuple(scale_range)} is random, so an rng is needed')
    return low
  return float(rng.uniform(low, high))


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------


def flip_pose(x):
  """Mirrors poses left-right (official `flip_data`).

  Negates x (channel 0) and swaps left and right joints. Works on numpy and jax arrays alike, so
  it also serves test-time flip augmentation inside a jitted model call.

  Args:
    x: (..., 17, C) poses, x in channel 0.

  Returns:
    (..., 17, C) mirrored poses, same array type and dtype.
  """
  _check_joints(x, 'flip_pose')
  sign = np.ones(x.shape[-1], dtype=x.dtype)
  sign[0] = -1
  return x[..., FLIP_PERM, :] * sign


def crop_scale_3d(motion: np.ndarray, scale_range: Sequence[float] = (1, 1),
                  rng: np.random.Generator | None = None) -> np.ndarray:
  """Normalises a 3D clip to [-1, 1] as in pretraining (official `crop_scale_3d`).

  z is made relative to the root depth of the first frame. A square of side max(w, h) / ratio,
  ratio ~ U(scale_range), centred on the clip's x/y bounding box (over all frames), is mapped to
  [0, 1] and then by (v - 0.5) * 2 to [-1, 1]; z gets the same scale and, as in the official code,
  the same (v - 0.5) * 2.

  Args:
    motion: (T, 17, 3) poses (x, y, z).
    scale_range: range of the random zoom ratio; (1, 1) means none.
    rng: generator for the ratio; may be None only when scale_range is fixed.

  Returns:
    (T, 17, 3) normalised clip, or zeros when the clip has no x/y extent.
  """
  motion = np.asarray(motion)
  if motion.ndim != 3:
    raise ValueError(f'crop_scale_3d: expected a (T, 17, 3) clip, got shape {motion.shape}')
  _check_joints(motion, 'crop_scale_3d', exact_channels=3)
  dtype = _float_dtype(motion)
  ratio = _draw_ratio(scale_range, rng, 'crop_scale_3d')
  m = motion.astype(np.float64)
  xmin, xmax = m[..., 0].min(), m[..., 0].max()
  ymin, ymax = m[..., 1].min(), m[..., 1].max()
  scale = max(xmax - xmin, ymax - ymin) / ratio
  if scale == 0:
    return np.zeros(motion.shape, dtype)
  xs = (xmin + xmax - scale) / 2
  ys = (ymin + ymax - scale) / 2
  result = np.empty_like(m)
  result[..., :2] = (m[..., :2] - [xs, ys]) / scale
  result[..., 2] = (m[..., 2] - m[0, 0, 2]) / scale
  return ((result - 0.5) * 2).astype(dtype)


def crop_scale_2d(motion: np.ndarray, scale_range: Sequence[float] = (1, 1),
                  rng: np.random.Generator | None = None) -> np.ndarray:
  """Normalises 2D keypoints with confidence to [-1, 1] (official `crop_scale`).

  The square box is the bounding box of the joints with nonzero confidence, its longer side
  multiplied by ratio ~ U(scale_range), centred on the box; the result (confidence included) is
  clipped to [-1, 1].

  Args:
    motion: (..., 17, 3) keypoints (x, y, confidence), e.g. (T, 17, 3) or (M, T, 17, 3).
    scale_range: range of the random box enlargement; (1, 1) means none.
    rng: generator for the ratio; may be None only when scale_range is fixed.

  Returns:
    Same shape; zeros when fewer than 4 joints are confident or the box is empty.
  """
  motion = np.asarray(motion)
  _check_joints(motion, 'crop_scale_2d', exact_channels=3)
  dtype = _float_dtype(motion)
  m = motion.astype(np.float64)
  valid = m[m[..., 2] != 0][:, :2]
  if len(valid) < 4:
    return np.zeros(motion.shape, dtype)
  xmin, xmax = valid[:, 0].min(), valid[:, 0].max()
  ymin, ymax = valid[:, 1].min(), valid[:, 1].max()
  ratio = _draw_ratio(scale_range, rng, 'crop_scale_2d')
  scale = max(xmax - xmin, ymax - ymin) * ratio
  if scale == 0:
    return np.zeros(motion.shape, dtype)
  xs = (xmin + xmax - scale) / 2
  ys = (ymin + ymax - scale) / 2
  result = m.copy()
  result[..., :2] = ((m[..., :2] - [xs, ys]) / scale - 0.5) * 2
  return np.clip(result, -1, 1).astype(dtype)


def make_cam(x: np.ndarray, img_shape: tuple[int, int]) -> np.ndarray:
  """Pixels to [-1, 1] by the longer image side (official `make_cam`): v / max(h, w) * 2 - 1.

  As in the official function, every channel is mapped, a confidence channel too: pass x, y only
  (the official code only ever gives it NTU keypoints (M, T, 17, 2)).

  Args:
    x: (..., C) keypoints in pixels.
    img_shape: (height, width) of the image.

  Returns:
    Same shape; float32 input stays float32.
  """
  h, w = img_shape
  scale = float(w) if w >= h else float(h)  # a python float keeps float32 input in float32
  return np.asarray(x) / scale * 2 - 1


def random_move_params(n_frames: int, rng: np.random.Generator,
                       angle_range: Sequence[float] = (-10, 10),
                       scale_range: Sequence[float] = (0.9, 1.1),
                       transform_range: Sequence[float] = (-0.1, 0.1)
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """The draws of one official `random_move`: per frame (angle in radians, scale, x shift,
  y shift), each (n_frames,) float64, drawn at the first and last frame (angle, scale, x, y, two
  uniform values each, in that order) and interpolated linearly in between."""
  angle = rng.uniform(angle_range[0], angle_range[1], 2)
  scale = rng.uniform(scale_range[0], scale_range[1], 2)
  shift_x = rng.uniform(transform_range[0], transform_range[1], 2)
  shift_y = rng.uniform(transform_range[0], transform_range[1], 2)
  return (np.linspace(angle[0], angle[1], n_frames) * np.pi / 180,
          np.linspace(scale[0], scale[1], n_frames),
          np.linspace(shift_x[0], shift_x[1], n_frames),
          np.linspace(shift_y[0], shift_y[1], n_frames))


def compose_moves(moves) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """The one move (per-frame angle, scale, x, y shift) that applying `moves` (each as
  `random_move_params` gives) in order amounts to: 2D rotations commute, so the angles add, the
  scales multiply and each earlier shift is turned and scaled by the later moves."""
  angle, scale, tx, ty = (np.asarray(v, np.float64).copy() for v in moves[0])
  for a, s, x, y in moves[1:]:
    cos, sin = np.cos(a) * s, np.sin(a) * s
    tx, ty = cos * tx - sin * ty + x, sin * tx + cos * ty + y
    angle, scale = angle + a, scale * s
  return angle, scale, tx, ty


def apply_move(motion: np.ndarray, angle: np.ndarray, scale: np.ndarray, shift_x: np.ndarray,
               shift_y: np.ndarray) -> np.ndarray:
  """Each frame's x, y -> R(angle) * scale @ xy + shift, for (T,) per-frame values; channels 2+
  unchanged; motion (M, T, 17, C) or (T, 17, C)."""
  motion = np.asarray(motion)
  if motion.ndim < 3:
    raise ValueError(f'random_move: expected a (M, T, 17, C) clip, got shape {motion.shape}')
  _check_joints(motion, 'random_move', min_channels=2)
  cos = (np.cos(angle) * scale)[:, None]
  sin = (np.sin(angle) * scale)[:, None]
  x, y = motion[..., 0], motion[..., 1]  # (..., T, 17)
  result = motion.astype(_float_dtype(motion), copy=True)
  result[..., 0] = cos * x - sin * y + shift_x[:, None]
  result[..., 1] = sin * x + cos * y + shift_y[:, None]
  return result


def random_move(motion: np.ndarray, rng: np.random.Generator,
                angle_range: Sequence[float] = (-10, 10), scale_range: Sequence[float] = (0.9, 1.1),
                transform_range: Sequence[float] = (-0.1, 0.1)) -> np.ndarray:
  """Smoothly varying 2D rotation, scale and shift of a clip (official `random_move`).

  One move: angle (degrees), scale and x/y shifts are drawn at the first and last frame and
  interpolated linearly in between (`random_move_params`); each frame's x, y become
  R(angle) * scale @ xy + shift (`apply_move`).

  Args:
    motion: (M, T, 17, C) clip of M persons (also (T, 17, C)); x, y in channels 0, 1.
    rng: random generator.
    angle_range, scale_range, transform_range: uniform ranges of the drawn values.

  Returns:
    Same shape; channels 2+ unchanged.
  """
  motion = np.asarray(motion)
  if motion.ndim < 3:
    raise ValueError(f'random_move: expected a (M, T, 17, C) clip, got shape {motion.shape}')
  params = random_move_params(motion.shape[-3], rng, angle_range, scale_range, transform_range)
  return apply_move(motion, *params)


# ---------------------------------------------------------------------------------------------
# Pretraining corruptions of 2D input
# ---------------------------------------------------------------------------------------------


def _upsample_linear(keys: np.ndarray, n: int) -> np.ndarray:
  """(K, ...) -> (n, ...) linear interpolation with both ends aligned (align_corners=True)."""
  k = keys.shape[0]
  if n == 1 or k == 1:
    src = np.zeros(n)
  else:
    src = np.arange(n) * ((k - 1) / (n - 1))
  lo = np.minimum(np.floor(src).astype(np.int64), k - 1)
  hi = np.minimum(lo + 1, k - 1)
  w = (src - lo).reshape((n,) + (1,) * (keys.ndim - 1))
  return keys[lo] * (1 - w) + keys[hi] * w


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticNoise:
  """MotionBERT's model of 2D detector noise, used to corrupt clean 2D input in pretraining.

  Per joint, each of `num_keyframes` keyframes gets a displacement that is Gaussian (mean, std)
  with probability `weight`, else uniform of width `uniform_range`; keyframes are interpolated
  linearly over the clip and a small per-frame jitter is added. The confidence of each joint falls
  with its displacement d as clip(a / (d + a) + b * d + N(m, s), 0, 1).
  """

  mean: np.ndarray  # (17, 2)
  std: np.ndarray  # (17, 2)
  weight: np.ndarray  # (17,)
  uniform_range: float
  num_keyframes: int
  temporal_noise_std: float
  d2c_a: float
  d2c_b: float
  d2c_m: float
  d2c_s: float

  @classmethod
  def load(cls, path: str | pathlib.Path | None = None) -> SyntheticNoise:
    """Reads the noise model from an npz file; None means the packaged official one."""
    path = pathlib.Path(path) if path is not None else DEFAULT_NOISE_PATH
    with np.load(path) as data:
      shapes = {'mean': (NUM_JOINTS, 2), 'std': (NUM_JOINTS, 2), 'weight': (NUM_JOINTS,),
                'uniform_range': (), 'num_keyframes': (), 'temporal_noise_std': (), 'd2c_a': (),
                'd2c_b': (), 'd2c_m': (), 'd2c_s': ()}
      for key, shape in shapes.items():
        if key not in data.files:
          raise ValueError(f'{path}: missing key {key!r}; expected keys {sorted(shapes)}')
        if data[key].shape != shape:
          raise ValueError(f'{path}: {key!r} has shape {data[key].shape}, expected {shape}')
      return cls(
          mean=data['mean'].astype(np.float64),
          std=data['std'].astype(np.float64),
          weight=data['weight'].astype(np.float64),
          uniform_range=float(data['uniform_range']),
          num_keyframes=int(data['num_keyframes']),
          temporal_noise_std=float(data['temporal_noise_std']),
          d2c_a=float(data['d2c_a']),
          d2c_b=float(data['d2c_b']),
          d2c_m=float(data['d2c_m']),
          d2c_s=float(data['d2c_s']),
      )

  def add_noise(self, motion_2d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Corrupts a clean 2D clip and gives it a confidence (official `Augmenter2D.add_noise`).

    Args:
      motion_2d: (T, 17, C>=2) clean keypoints; channels past x, y are dropped.
      rng: random generator.

    Returns:
      (T, 17, 3): noisy x, y and the synthetic confidence.
    """
    motion_2d = np.asarray(motion_2d)
    if motion_2d.ndim != 3:
      raise ValueError(f'add_noise: expected a (T, 17, C) clip, got shape {motion_2d.shape}')
    _check_joints(motion_2d, 'add_noise', min_channels=2)
    n_frames = motion_2d.shape[0]
    k = self.num_keyframes
    sel = rng.random((k, NUM_JOINTS, 1))
    gaussian = rng.standard_normal((k, NUM_JOINTS, 2)) * self.std + self.mean
    uniform = (rng.random((k, NUM_JOINTS, 2)) - 0.5) * self.uniform_range
    delta = _upsample_linear(np.where(sel < self.weight[:, None], gaussian, uniform), n_frames)
    # Official draws this jitter once per batch (shared by its clips); we draw it per clip.
    delta = delta + rng.standard_normal((n_frames, NUM_JOINTS, 2)) * self.temporal_noise_std
    dist = np.sqrt(np.sum(delta**2, axis=-1))
    conf = (self.d2c_a / (dist + self.d2c_a) + self.d2c_b * dist +
            rng.normal(self.d2c_m, self.d2c_s, dist.shape))
    xy = motion_2d[..., :2] + delta
    out = np.concatenate([xy, np.clip(conf, 0, 1)[..., None]], axis=-1)
    return out.astype(_float_dtype(motion_2d))


def add_mask(x: np.ndarray, rng: np.random.Generator, mask_ratio: float = 0.05,
             mask_t_ratio: float = 0.1) -> np.ndarray:
  """Zeroes random joints and random whole frames (official `Augmenter2D.add_mask`).

  Args:
    x: (T, 17, C) clip.
    rng: random generator.
    mask_ratio: probability that a joint of a frame is masked.
    mask_t_ratio: probability that a whole frame is masked.

  Returns:
    (T, 17, C) with every channel of the masked joints and frames set to 0.
  """
  x = np.asarray(x)
  if x.ndim != 3:
    raise ValueError(f'add_mask: expected a (T, 17, C) clip, got shape {x.shape}')
  _check_joints(x, 'add_mask')
  n_frames = x.shape[0]
  keep_joint = rng.random((n_frames, NUM_JOINTS, 1)) > mask_ratio
  # Official draws the frame mask once per batch (same frames for every clip); we draw per clip.
  keep_frame = rng.random((n_frames, 1, 1)) > mask_t_ratio
  return x * (keep_joint & keep_frame).astype(x.dtype)


# ---------------------------------------------------------------------------------------------
# Clip sampling
# ---------------------------------------------------------------------------------------------


def resample_indices(ori_len: int, target_len: int, rng: np.random.Generator | None = None, *,
                     offset: float = 0.0) -> np.ndarray:
  """Frame indices that stretch or squeeze a sequence to `target_len` (official `resample`).

  With `rng`, each of the evenly spaced positions linspace(0, ori_len, target_len) is jittered:
  rounded up or down at random when upsampling, moved by U(0, 1) of the spacing otherwise.
  Without, the positions, moved by `offset` (in [0, 1)) of the spacing, are truncated: offset 0 is
  the official test-time resampling, other offsets give the other clips of multi-clip testing.

  Returns:
    (target_len,) int64 indices in [0, ori_len - 1], non-decreasing.
  """
  if ori_len < 1 or target_len < 1:
    raise ValueError(f'resample_indices: expected positive lengths, got ori_len={ori_len}, '
                     f'target_len={target_len}')
  if not 0 <= offset < 1:
    raise ValueError(f'resample_indices: offset must be in [0, 1), got {offset}')
  even = np.linspace(0, ori_len, num=target_len, endpoint=False)
  if rng is None:
    if offset:
      even = np.minimum(even + offset * (ori_len / target_len), ori_len - 1)
    return even.astype(np.int64)
  if ori_len < target_len:
    pick_low = rng.integers(0, 2, size=target_len)
    result = np.sort(pick_low * np.floor(even) + (1 - pick_low) * np.ceil(even))
  else:
    result = even + rng.random(target_len) * (ori_len / target_len)
  return np.clip(result, 0, ori_len - 1).astype(np.int64)


def split_clips(sources: np.ndarray, clip_len: int, stride: int,
                rng: np.random.Generator) -> list[np.ndarray]:
  """Official `split_clips`: clips of `clip_len` frames over per-frame sequence ids.

  Each run of equal ids gets windows starting at its first frame, every `stride` frames, as long as
  the window fits (a tail that does not fill one is dropped). A run with no window whose id has no
  clip yet is resampled to `clip_len` frames, except the last run of the file: the official loop
  stops before that check, so a short last sequence gives no clip.

  Args:
    sources: (N,) sequence id of each frame (strings or ints).
    clip_len: frames per clip.
    stride: frames between window starts.
    rng: draws the resampling of short sequences.

  Returns:
    One (clip_len,) int64 array of frame indices into `sources` per clip, in official order.
  """
  sources = np.asarray(sources)
  if len(sources) == 0:
    return []
  starts = np.concatenate([[0], np.flatnonzero(sources[1:] != sources[:-1]) + 1])
  ends = np.append(starts[1:], len(sources))
  clips, saved = [], set()
  for run, (begin, end) in enumerate(zip(starts.tolist(), ends.tolist())):
    windows = range(begin, end - clip_len + 1, stride)
    clips.extend(np.arange(st, st + clip_len, dtype=np.int64) for st in windows)
    sequence = np.asarray(sources[begin]).item()
    if windows:
      saved.add(sequence)
    elif run < len(starts) - 1 and sequence not in saved:
      clips.append(begin + resample_indices(end - begin, clip_len, rng))
      saved.add(sequence)
  return clips
