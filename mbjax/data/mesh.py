"""SMPL mesh recovery clips: `mesh_det_{h36m,pw3d,coco}.pkl` as the official readers cut them.

Source: MotionBERT's mesh pickles, {'train': {...}, 'test': {...}} whose per-frame arrays run over
all frames of all sequences, concatenated:
  joint_2d     (N, 17, 2+) detected 2D joints, pixels, H36M-17 order (x, y kept)
  confidence   (N, 17) or (N, 17, 1) detector confidences (optional for H36M only, as official)
  source       (N,) sequence ids (COCO: image ids)
  smpl_pose    (N, 72) SMPL axis-angles (N, 24, 3 accepted: the official code reshapes it)
  smpl_shape   (N, 10) SMPL betas
  camera_name  (N,) H36M only: camera ids, which give the image size
  img_hw       (N, 2) COCO only: image (height, width); read only with `per_image_res`

Normalisation as the official `SMPLDataset` (lib/data/dataset_mesh.py) builds its readers:
  mesh_h36m  `DataReaderH36M`: the frame's camera size (res_w, res_h) (1000x1002 or 1000x1000),
             xy / res_w * 2 - [1, res_h / res_w]; missing confidence -> ones.
  mesh_pw3d  `DataReaderMesh(res=[1920, 1920])`: xy / 1920 * 2 - 1.
  mesh_coco  `DataReaderMesh(n_frames=1, res=[640, 640])`: single frames, xy / 640 * 2 - 1.
             With `per_image_res=True` each image uses its own larger side s instead (the
             reader's `res=None` branch, xy / s * 2 - 1), from img_hw of the same split (the
             official branch reads 'train' img_hw for both splits; that looks like a slip).
The confidence is appended as the third channel, unclipped as the reader returns it (the
official `__getitem__` clips it to [0, 1]: `mbjax.data.mesh_clips.mesh_example` does that).

Clips: official `split_clips` (`mbjax.data.transforms.split_clips`) over `source`, clip_len 16,
stride 8 (train) or clip_len (test); COCO clip_len 1, stride 1 (every image a clip). Sequences
shorter than a clip are resampled (seeded here, unseeded officially), a short last sequence is
dropped (skip reason). The official `sample_stride` (1 in every mesh config) is not offered:
officially it subsamples the 2D but not the SMPL labels, so only 1 is consistent.

Labels are the stored `smpl_pose` / `smpl_shape` per frame; ground-truth joints and vertices come
from them through SMPL on the model side. `frame_index` holds the clip's rows in the split's
arrays (not contiguous for a resampled clip), `start_frame` its first row.

One dataset module for the three datasets: `module_for(dataset=...)` gives each one's NAME and
FEATURES; data_prep registers them as mesh_h36m, mesh_pw3d and mesh_coco (ALIASES).
"""

from __future__ import annotations

import pathlib
import types
from typing import Iterator

import numpy as np

from mbjax.data import build_options, source_files
from mbjax.data.h36m import camera_resolutions
from mbjax.data.report import BuildReport
from mbjax.data.transforms import split_clips

SPLITS = ('train', 'test')
NUM_JOINTS = 17
POSE_DIM = 72  # 24 SMPL joints x axis-angle
SHAPE_DIM = 10
CLIP_LEN = 16  # official clip_len of the mesh configs
TRAIN_STRIDE = 8  # official data_stride
COCO_RES = 640.0
PW3D_RES = 1920.0
DATASETS = {  # dataset -> the published file name, for messages
    'h36m': 'mesh_det_h36m.pkl',
    'pw3d': 'mesh_det_pw3d.pkl',
    'coco': 'mesh_det_coco.pkl',
}
OPTION_RANGES = {'clip_len': (1, None), 'train_stride': (1, None), 'test_stride': (1, None),
                 'seed': (0, None)}
SKIP_SHORT_LAST = ('last sequence of the split shorter than a clip '
                   '(official split_clips drops it)')
OPTION_DEPENDENT_FEATURES = True  # FEATURES depend on dataset and clip_len


def features(clip_len: int) -> dict:
  """FEATURES of clips of `clip_len` frames (the same for the three datasets)."""
  t = int(clip_len)
  return {
      'joint_2d': ((t, NUM_JOINTS, 3), 'float32'),  # normalised x, y + confidence
      'smpl_pose': ((t, POSE_DIM), 'float32'),
      'smpl_shape': ((t, SHAPE_DIM), 'float32'),
      'frame_index': ((t,), 'int64'),  # rows of the clip in the split's arrays
      'start_frame': ((), 'int64'),
      'source': ((), 'str'),
      'camera': ((), 'str'),  # H36M camera id; '' for 3DPW and COCO
      'res': ((2,), 'float32'),  # (res_w, res_h) the 2D was normalised by (first frame)
  }


NAME = 'mesh_h36m'  # the module itself is mesh_h36m; module_for gives the others
FEATURES = features(CLIP_LEN)


def _defaults(dataset: str, clip_len: int | None) -> int:
  """The clip length of `dataset`, checked (COCO is single frames)."""
  if dataset not in DATASETS:
    raise build_options.OptionError(f'mesh: unknown dataset {dataset!r}; expected one of '
                                    f'{", ".join(DATASETS)}')
  if dataset == 'coco':
    if clip_len not in (None, 1):
      raise build_options.OptionError(
          f'mesh_coco: option clip_len={clip_len}: COCO images are single frames (official '
          'n_frames=1), so clip_len must be 1')
    return 1
  return CLIP_LEN if clip_len is None else int(clip_len)


def module_for(dataset: str = 'h36m', clip_len: int | None = None, **_) -> types.SimpleNamespace:
  """The dataset module of mesh_`dataset` with FEATURES for its clip length."""
  length = _defaults(dataset, clip_len)
  return types.SimpleNamespace(
      __name__=__name__, __doc__=__doc__, NAME=f'mesh_{dataset}', SPLITS=SPLITS,
      FEATURES=features(length), generate=generate, OPTION_RANGES=OPTION_RANGES,
      OPTION_DEPENDENT_FEATURES=True, module_for=module_for)


# ----------------------------------------------------------------------------------------------
# Reading and checking one split.


def _check_shape(where: str, key: str, array: np.ndarray, expected: tuple, n: int) -> None:
  want = tuple(n if d == 'N' else d for d in expected)
  if array.ndim != len(want) or any(d is not None and a != d for a, d in zip(array.shape, want)):
    shown = '(' + ', '.join('N' if d == 'N' else 'any' if d is None else str(d)
                            for d in expected) + ')'
    raise ValueError(f'{where}/{key} has shape {array.shape}, expected {shown} with N = {n} '
                     f'(the length of {where.rsplit(" ", 1)[-1]}/source)')


def _required_keys(dataset: str, per_image_res: bool) -> dict:
  """key -> expected shape ('N' frames, None any); confidence is checked apart."""
  keys = {'joint_2d': ('N', NUM_JOINTS, None), 'source': ('N',), 'smpl_pose': ('N', None),
          'smpl_shape': ('N', SHAPE_DIM)}
  if dataset == 'h36m':
    keys['camera_name'] = ('N',)
  if dataset == 'coco' and per_image_res:
    keys['img_hw'] = ('N', 2)
  return keys


def _open(path: pathlib.Path, dataset: str) -> dict:
  data = source_files.read_pickle(path, f'the {dataset} mesh pickle ({DATASETS[dataset]})')
  if not isinstance(data, dict):
    raise ValueError(f'{path}: expected a dict with splits {", ".join(SPLITS)}, found '
                     f'{type(data).__name__}')
  return data


def read_split(path: pathlib.Path, split: str, dataset: str, *, per_image_res: bool = False
               ) -> dict[str, np.ndarray] | None:
  """The arrays of one split of a mesh pickle, checked (keys, shapes, finite values).

  Returns:
    joint_2d (N, 17, 2) float64, confidence (N, 17, 1) float32, source (N,) str, smpl_pose
    (N, 72), smpl_shape (N, 10), camera_name (N,) str for H36M, img_hw (N, 2) with
    per_image_res; None for a COCO file without this split (COCO is used to train only).
  """
  path = pathlib.Path(path)
  data = _open(path, dataset)
  if split not in data:
    if dataset == 'coco' and split != 'train':
      return None
    raise ValueError(f'{path}: expected a dict with a {split!r} entry (splits '
                     f'{", ".join(SPLITS)}), found keys {sorted(map(str, data))}')
  raw = data[split]
  del data
  where = f'{path}: {split}'
  if not isinstance(raw, dict):
    raise ValueError(f'{where} should be a dict of per-frame arrays, found {type(raw).__name__}')
  expected = _required_keys(dataset, per_image_res)
  missing = [k for k in list(expected) + ['confidence'] if k not in raw
             and not (k == 'confidence' and dataset == 'h36m')]
  if missing:
    raise ValueError(f'{where} is missing key(s) {", ".join(missing)} (the {dataset} mesh '
                     f'layout has {", ".join(list(expected) + ["confidence"])})')
  out = {k: np.asarray(raw[k]) for k in list(expected) + ['confidence'] if k in raw}
  n = len(out['source'])
  for key, shape in expected.items():
    _check_shape(where, key, out[key], shape, n)
  return _conform(where, out, n)


def _conform(where: str, out: dict, n: int) -> dict:
  """Shapes beyond the frame count, dtypes and finite values of a split's arrays."""
  if out['joint_2d'].shape[-1] < 2:
    raise ValueError(f'{where}/joint_2d has shape {out["joint_2d"].shape}, expected (N, 17, 2)')
  pose = out['smpl_pose']
  if pose.shape[1:] not in ((POSE_DIM,), (24, 3)):
    raise ValueError(f'{where}/smpl_pose has shape {pose.shape}, expected (N, {POSE_DIM}) '
                     f'SMPL axis-angles (or (N, 24, 3)) with N = {n}')
  out['smpl_pose'] = pose.reshape(n, POSE_DIM)
  if 'confidence' in out:
    conf = out['confidence']
    if conf.shape not in ((n, NUM_JOINTS), (n, NUM_JOINTS, 1)):
      raise ValueError(f'{where}/confidence has shape {conf.shape}, expected '
                       f'({n}, {NUM_JOINTS}) or ({n}, {NUM_JOINTS}, 1)')
    out['confidence'] = conf.reshape(n, NUM_JOINTS, 1)
  else:  # H36M only (official DataReaderH36M: no confidence -> ones)
    out['confidence'] = np.ones((n, NUM_JOINTS, 1), np.float32)
  out['joint_2d'] = out['joint_2d'][..., :2]  # the official readers keep x, y only
  for key in ('joint_2d', 'confidence', 'smpl_pose', 'smpl_shape', 'img_hw'):
    if key in out:
      out[key] = source_files.finite_rows(f'{where}/{key}', out[key])
  out['confidence'] = out['confidence'].astype(np.float32)
  for key in ('source', 'camera_name'):
    if key in out:
      out[key] = out[key].astype(str)
  return out


# ----------------------------------------------------------------------------------------------
# Normalisation and clips.


def frame_resolutions(data: dict, dataset: str, *, per_image_res: bool = False,
                      where: str = 'camera_name') -> tuple[np.ndarray, np.ndarray]:
  """(res_w, res_h) per frame, each (N,) float32, as the official reader of `dataset` uses."""
  n = len(data['source'])
  if dataset == 'h36m':
    res_w, res_h = camera_resolutions(data['camera_name'], where=where)
    return res_w.astype(np.float32), res_h.astype(np.float32)
  if dataset == 'coco' and per_image_res:
    side = np.asarray(data['img_hw'], np.float32).max(axis=1)
    if (side <= 0).any():
      raise ValueError(f'{where}: img_hw row {int(np.argmax(side <= 0))} is not a positive size')
    return side, side
  res = PW3D_RES if dataset == 'pw3d' else COCO_RES
  return np.full(n, res, np.float32), np.full(n, res, np.float32)


def normalize_2d(joint_2d: np.ndarray, res_w: np.ndarray, res_h: np.ndarray) -> np.ndarray:
  """Pixels (N, 17, 2) -> xy / res_w * 2 - [1, res_h / res_w], float32 (official read_2d)."""
  w = np.asarray(res_w, np.float32)[:, None, None]
  h = np.asarray(res_h, np.float32)[:, None, None]
  offset = np.concatenate([np.ones_like(h), h / w], axis=-1)
  return np.asarray(joint_2d, np.float32) / w * 2 - offset


def _clip_example(data: dict, joint_2d: np.ndarray, res: np.ndarray, rows: np.ndarray,
                  where: str) -> dict:
  camera = ''
  if 'camera_name' in data:
    cameras = np.unique(data['camera_name'][rows])
    if len(cameras) != 1:  # the official reader does not check; `res` would be ambiguous
      raise ValueError(f'{where} sequence {data["source"][rows[0]]!r} mixes cameras '
                       f'{", ".join(cameras)} (rows {rows[0]}..{rows[-1]})')
    camera = str(cameras[0])
  return {
      'joint_2d': joint_2d[rows],
      'smpl_pose': data['smpl_pose'][rows].astype(np.float32),
      'smpl_shape': data['smpl_shape'][rows].astype(np.float32),
      'frame_index': rows.astype(np.int64),
      'start_frame': np.int64(rows[0]),
      'source': str(data['source'][rows[0]]),
      'camera': camera,
      'res': res[rows[0]],
  }


def generate(source: pathlib.Path, split: str, report: BuildReport, *, dataset: str = 'h36m',
             clip_len: int | None = None, train_stride: int = TRAIN_STRIDE,
             test_stride: int | None = None, per_image_res: bool = False, seed: int = 0
             ) -> Iterator[tuple[str, dict]]:
  """Yields (key, clip) for one split of mesh_`dataset`; see the module docstring and features.

  Args:
    source: the official pickle (mesh_det_h36m.pkl, mesh_det_pw3d.pkl or mesh_det_coco.pkl).
    split: 'train' or 'test'.
    report: counts written clips and skipped sequences.
    dataset: 'h36m', 'pw3d' or 'coco' (implied by the builder name).
    clip_len: frames per clip (default 16; COCO always 1).
    train_stride: frames between train clip starts (official data_stride 8; COCO 1).
    test_stride: frames between test clip starts (default clip_len, as official).
    per_image_res: COCO only: normalise by each image's larger side (img_hw), not 640.
    seed: seeds the resampling of short sequences (the official code draws it unseeded).
  """
  length = _defaults(dataset, clip_len)
  if dataset == 'coco':
    train_stride = test_stride = 1  # official data_stride_train = data_stride_test = 1
  path = pathlib.Path(source)
  data = read_split(path, split, dataset, per_image_res=per_image_res)
  if data is None:
    return
  where = f'{path}: {split}'
  res_w, res_h = frame_resolutions(data, dataset, per_image_res=per_image_res,
                                   where=f'{where}/{"img_hw" if per_image_res else "camera_name"}')
  joint_2d = np.concatenate([normalize_2d(data['joint_2d'], res_w, res_h), data['confidence']],
                            axis=-1)
  res = np.stack([res_w, res_h], axis=-1)
  stride = train_stride if split == 'train' else (test_stride or length)
  clips = split_clips(data['source'], length, stride, np.random.default_rng(seed))
  produced = set()
  for number, rows in enumerate(clips):
    example = _clip_example(data, joint_2d, res, rows, where)
    produced.add(example['source'])
    report.written(split)
    yield f'{number:07d}_{example["source"]}', example
  unclipped = set(data['source'].tolist()) - produced
  if unclipped:
    report.skipped(split, SKIP_SHORT_LAST, len(unclipped))
