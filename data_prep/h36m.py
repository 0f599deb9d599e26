"""Human3.6M 243-frame clips for 3D pose estimation (official `DataReaderH36M` + `split_clips`).

Source: MotionBERT's `h36m_sh_conf_cam_source_final.pkl`, a pickle of {'train': {...}, 'test':
{...}} whose per-frame arrays run over all frames of all sequences, concatenated:
  joint_2d       (N, 17, 2) detected 2D joints, pixels
  confidence     (N, 17) or (N, 17, 1) detector confidences (optional: ones if absent, as official)
  joint3d_image  (N, 17, 3) ground truth, x and y in pixels, depth in the same pixel scale
  camera_name    (N,) camera ids such as '54138969'
  source         (N,) sequence names such as 's_01_act_02_subact_01_ca_01'
and, in 'test' only, action (N,), 2.5d_factor (N,) and joints_2.5d_image (N, 17, 3) (millimetres;
the evaluation target).

Normalisation as the official reader: with (res_w, res_h) of the frame's camera, x and y map to
xy / res_w * 2 - [1, res_h / res_w] and depth to z / res_w * 2. Each sequence is cut into clips of
243 frames, stride 81 (train) or 243 (test), with the official `split_clips` rule (see
`mbjax.data.transforms.split_clips`): tails that do not fill a window are dropped, sequences shorter
than a clip are resampled to 243 frames, and a short last sequence is dropped (skip reason).

All records share one FEATURES dict: train clips have action '' and zero `factor_2_5d` /
`joints_2_5d_mm`. `frame_index` holds the rows of the clip in the split's original arrays, so
evaluation maps predictions back to frames exactly as the official `split_id_test` does.
"""

from __future__ import annotations

import pathlib
from typing import Iterator

import numpy as np

from mbjax.data import source_files
from mbjax.data.h36m import camera_resolutions, normalize_2d, normalize_3d
from mbjax.data.report import BuildReport
from mbjax.data.transforms import split_clips

NAME = 'h36m'
SPLITS = ('train', 'test')
CLIP_LEN = 243
NUM_JOINTS = 17
STRIDES = {'train': 81, 'test': 243}  # official data_stride_train / data_stride_test
OPTION_RANGES = {'seed': (0, None), 'train_stride': (1, None), 'test_stride': (1, None)}
FEATURES = {
    'joint_2d': ((CLIP_LEN, NUM_JOINTS, 3), 'float32'),
    'joint_3d': ((CLIP_LEN, NUM_JOINTS, 3), 'float32'),
    'frame_index': ((CLIP_LEN,), 'int64'),
    'source': ((), 'str'),
    'camera': ((), 'str'),
    'res_w': ((), 'int32'),
    'res_h': ((), 'int32'),
    'action': ((), 'str'),
    'factor_2_5d': ((CLIP_LEN,), 'float32'),
    'joints_2_5d_mm': ((CLIP_LEN, NUM_JOINTS, 3), 'float32'),
}
SKIP_SHORT_LAST = (f'last sequence of the split shorter than {CLIP_LEN} frames '
                   '(official split_clips drops it)')

# key -> (shape with 'N' for the frame count and None for "any size"), per split.
_KEYS = {
    'joint_2d': ('N', NUM_JOINTS, None),
    'confidence': None,  # (N, 17) or (N, 17, 1): checked separately
    'joint3d_image': ('N', NUM_JOINTS, 3),
    'camera_name': ('N',),
    'source': ('N',),
}
_TEST_KEYS = {
    'action': ('N',),
    '2.5d_factor': ('N',),
    'joints_2.5d_image': ('N', NUM_JOINTS, 3),
}


def _check_shape(path: pathlib.Path, split: str, key: str, array: np.ndarray,
                 expected: tuple, n: int) -> None:
  want = tuple(n if d == 'N' else d for d in expected)
  if array.ndim != len(want) or any(d is not None and a != d for a, d in zip(array.shape, want)):
    shown = tuple('any' if d is None else d for d in want)
    raise ValueError(f'{path}: {split}/{key} has shape {array.shape}, expected {shown}')


def read_split(path: pathlib.Path, split: str) -> dict[str, np.ndarray]:
  """The arrays of one split of the official pickle, checked (keys, shapes, finite values).

  Returns:
    joint_2d (N, 17, 2), confidence (N, 17, 1) float32, joint3d_image (N, 17, 3), camera_name and
    source (N,) str, and for 'test' action (N,) str, 2.5d_factor (N,), joints_2.5d_image (N, 17, 3).
  """
  path = pathlib.Path(path)
  data = source_files.read_pickle(path, 'the H36M pickle (h36m_sh_conf_cam_source_final.pkl)')
  if not isinstance(data, dict) or split not in data:
    found = sorted(data) if isinstance(data, dict) else type(data).__name__
    raise ValueError(f'{path}: expected a dict with a {split!r} entry, found {found}')
  raw = data[split]
  del data  # keep only this split in memory
  if not isinstance(raw, dict):
    raise ValueError(f'{path}: {split} should be a dict of per-frame arrays, found '
                     f'{type(raw).__name__}')
  expected = dict(_KEYS, **(_TEST_KEYS if split == 'test' else {}))
  missing = [k for k in expected if k not in raw and k != 'confidence']
  if missing:
    raise ValueError(f'{path}: {split} is missing key(s) {", ".join(missing)} '
                     f'(expected {", ".join(expected)})')
  out = {k: np.asarray(raw[k]) for k in expected if k in raw}
  n = len(out['source'])
  for key, shape in expected.items():
    if shape is not None:
      _check_shape(path, split, key, out[key], shape, n)
  if out['joint_2d'].shape[-1] < 2:
    raise ValueError(f'{path}: {split}/joint_2d has shape {out["joint_2d"].shape}, expected '
                     f'(N, 17, 2)')
  out['joint_2d'] = out['joint_2d'][..., :2]  # the official reader keeps x, y only
  if 'confidence' in out:
    conf = out['confidence']
    if conf.shape not in ((n, NUM_JOINTS), (n, NUM_JOINTS, 1)):
      raise ValueError(f'{path}: {split}/confidence has shape {conf.shape}, expected '
                       f'({n}, {NUM_JOINTS}) or ({n}, {NUM_JOINTS}, 1)')
    out['confidence'] = conf.reshape(n, NUM_JOINTS, 1).astype(np.float32)
  else:
    out['confidence'] = np.ones((n, NUM_JOINTS, 1), np.float32)  # official: no conf -> ones
  for key in ('joint_2d', 'confidence', 'joint3d_image', '2.5d_factor', 'joints_2.5d_image'):
    if key in out:
      source_files.finite_rows(f'{path}: {split}/{key}', out[key])
  for key in ('camera_name', 'source', 'action'):
    if key in out:
      out[key] = out[key].astype(str)
  return out


def generate(source: pathlib.Path, split: str, report: BuildReport, *, seed: int = 0,
             train_stride: int = STRIDES['train'], test_stride: int = STRIDES['test']
             ) -> Iterator[tuple[str, dict]]:
  """Yields (key, clip) for one split; see the module docstring and FEATURES.

  Args:
    source: the official pickle.
    split: 'train' or 'test'.
    report: counts written clips and skipped sequences.
    seed: seeds the resampling of short sequences (the official code draws it unseeded).
    train_stride, test_stride: frames between clip starts.
  """
  path = pathlib.Path(source)
  data = read_split(path, split)
  res_w, res_h = camera_resolutions(data['camera_name'], where=f'{path}: {split}/camera_name')
  joint_2d = np.concatenate([normalize_2d(data['joint_2d'], res_w, res_h), data['confidence']], -1)
  joint_3d = normalize_3d(data['joint3d_image'], res_w, res_h)
  is_test = split == 'test'
  stride = test_stride if is_test else train_stride
  clips = split_clips(data['source'], CLIP_LEN, stride, np.random.default_rng(seed))

  produced = set()
  for number, rows in enumerate(clips):
    cameras = np.unique(data['camera_name'][rows])
    if len(cameras) != 1:  # the official reader does not check; res_w/res_h would be ambiguous
      raise ValueError(f'{path}: {split} sequence {data["source"][rows[0]]!r} mixes cameras '
                       f'{", ".join(cameras)} (rows {rows[0]}..{rows[-1]})')
    name = str(data['source'][rows[0]])
    produced.add(name)
    example = {
        'joint_2d': joint_2d[rows],
        'joint_3d': joint_3d[rows],
        'frame_index': rows,
        'source': name,
        'camera': str(cameras[0]),
        'res_w': res_w[rows[0]],
        'res_h': res_h[rows[0]],
        'action': str(data['action'][rows[0]]) if is_test else '',
        'factor_2_5d': (data['2.5d_factor'][rows].astype(np.float32) if is_test
                        else np.zeros(CLIP_LEN, np.float32)),
        'joints_2_5d_mm': (data['joints_2.5d_image'][rows].astype(np.float32) if is_test
                           else np.zeros((CLIP_LEN, NUM_JOINTS, 3), np.float32)),
    }
    report.written(split)
    yield f'{number:06d}_{name}', example
  unclipped = set(data['source'].tolist()) - produced
  if unclipped:
    report.skipped(split, SKIP_SHORT_LAST, len(unclipped))
