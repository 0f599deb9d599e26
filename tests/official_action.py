"""The official NTU training transform (lib/data/dataset_action.py, lib/utils/utils_data.py),
rewritten in plain numpy from its semantics, for tests to compare mbjax against.

Written from the official code's behaviour, not from mbjax: per-frame 2x2 matrices applied with
`np.dot`, `random_move` writing through a transposed view into the array it is given (so the
stored clip changes), and a deep copy in `crop_scale`. The official module draws from numpy's
global generator; here each function takes a `np.random.Generator` and makes the same calls in
the same order (`uniform(low, high, 2)` for the angle, scale, x and y shifts), so a test can hand
it the generator it hands mbjax.
"""

from __future__ import annotations

import copy

import numpy as np


def resample(ori_len: int, target_len: int, rng: np.random.Generator) -> np.ndarray:
  """Official `resample(ori_len, target_len, randomness=True)`."""
  even = np.linspace(0, ori_len, num=target_len, endpoint=False)
  if ori_len < target_len:
    low, high = np.floor(even), np.ceil(even)
    sel = rng.integers(2, size=even.shape)
    result = np.sort(sel * low + (1 - sel) * high)
  else:
    interval = even[1] - even[0]
    result = rng.random(even.shape) * interval + even
  return np.clip(result, a_min=0, a_max=ori_len - 1).astype(np.uint32)


def random_move_in_place(data_numpy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Official `random_move` (move_time_candidate [1]) on an (M, T, V, C) array: the writes go
  through `np.transpose` views into `data_numpy` itself, as officially."""
  data = np.transpose(data_numpy, (3, 1, 2, 0))  # M,T,V,C -> C,T,V,M: a view
  C, T, V, M = data.shape
  node = np.append(np.arange(0, T, T * 1.0 / 1).round().astype(int), T)
  num_node = len(node)
  A = rng.uniform(-10.0, 10.0, num_node)
  S = rng.uniform(0.9, 1.1, num_node)
  T_x = rng.uniform(-0.1, 0.1, num_node)
  T_y = rng.uniform(-0.1, 0.1, num_node)
  a, s, t_x, t_y = np.zeros(T), np.zeros(T), np.zeros(T), np.zeros(T)
  for i in range(num_node - 1):
    a[node[i]:node[i + 1]] = np.linspace(A[i], A[i + 1], node[i + 1] - node[i]) * np.pi / 180
    s[node[i]:node[i + 1]] = np.linspace(S[i], S[i + 1], node[i + 1] - node[i])
    t_x[node[i]:node[i + 1]] = np.linspace(T_x[i], T_x[i + 1], node[i + 1] - node[i])
    t_y[node[i]:node[i + 1]] = np.linspace(T_y[i], T_y[i + 1], node[i + 1] - node[i])
  theta = np.array([[np.cos(a) * s, -np.sin(a) * s], [np.sin(a) * s, np.cos(a) * s]])
  for i_frame in range(T):
    xy = data[0:2, i_frame, :, :]
    new_xy = np.dot(theta[:, :, i_frame], xy.reshape(2, -1))
    new_xy[0] += t_x[i_frame]
    new_xy[1] += t_y[i_frame]
    data[0:2, i_frame, :, :] = new_xy.reshape(2, V, M)
  return np.transpose(data, (3, 1, 2, 0))


def crop_scale(motion: np.ndarray, scale_range, rng: np.random.Generator) -> np.ndarray:
  """Official `crop_scale`: the box of the confident joints, enlarged by a random ratio, to
  [-1, 1]."""
  result = copy.deepcopy(motion)
  valid_coords = motion[motion[..., 2] != 0][:, :2]
  if len(valid_coords) < 4:
    return np.zeros(motion.shape)
  xmin, xmax = min(valid_coords[:, 0]), max(valid_coords[:, 0])
  ymin, ymax = min(valid_coords[:, 1]), max(valid_coords[:, 1])
  ratio = rng.uniform(low=scale_range[0], high=scale_range[1], size=1)[0]
  scale = max(xmax - xmin, ymax - ymin) * ratio
  if scale == 0:
    return np.zeros(motion.shape)
  xs, ys = (xmin + xmax - scale) / 2, (ymin + ymax - scale) / 2
  result[..., :2] = (motion[..., :2] - [xs, ys]) / scale
  result[..., :2] = (result[..., :2] - 0.5) * 2
  return np.clip(result, -1, 1)


class NTURGBDTrain:
  """Official `NTURGBD` training `__getitem__` over stored (already resampled) float32 clips.

  One instance is one DataLoader worker's copy of the dataset: `random_move` changes its
  `motions` in place, so a clip carries every move this worker made to it.
  """

  def __init__(self, motions: np.ndarray, scale_range=(1, 3)):
    self.motions = np.array(motions, np.float32)
    self.scale_range = scale_range

  def getitem(self, idx: int, move_rng: np.random.Generator,
              crop_rng: np.random.Generator) -> np.ndarray:
    motion = self.motions[idx]  # a view: the stored clip itself
    motion = random_move_in_place(motion, move_rng)
    return crop_scale(motion, self.scale_range, crop_rng).astype(np.float32)
