"""Writers of tiny files in the published formats the `data_prep` builders read, for tests.

Values are arithmetic in the row / frame number so that tests can check by hand where each value
of a built record came from.
"""

from __future__ import annotations

import pathlib
import pickle

import numpy as np

H36M_JOINTS = 17


def h36m_split(sequences: list[tuple[str, str, int]], *, test: bool,
               confidence_shape: str = '(N, 17)', action: str = 'Directions') -> dict:
  """One split of `h36m_sh_conf_cam_source_final.pkl` with the official keys and dtypes.

  Args:
    sequences: (source name, camera id, frames) per sequence, concatenated in this order.
    test: add the test-only keys (action, 2.5d_factor, joints_2.5d_image).
    confidence_shape: '(N, 17)' or '(N, 17, 1)', both seen in official files.
    action: the action name of every frame.

  Returns:
    Row r (over the concatenation), joint j: joint_2d = (500 + r, 501 + j) pixels, confidence =
    0.5 + j / 100, joint3d_image = (500 + r, 501 + j, 100 + r), 2.5d_factor = 4 + r / 1000,
    joints_2.5d_image = (r, j, 1000 + r) mm.
  """
  cameras = [c for _, c, n in sequences for _ in range(n)]
  sources = [s for s, _, n in sequences for _ in range(n)]
  n = len(sources)
  rows = np.arange(n, dtype=np.float64)[:, None]
  joints = np.arange(H36M_JOINTS, dtype=np.float64)[None, :]
  rows, joints = np.broadcast_arrays(rows, joints)
  confidence = np.broadcast_to(0.5 + joints / 100, (n, H36M_JOINTS)).astype(np.float32)
  split = {
      'joint_2d': np.stack([500 + rows, 501 + joints], -1).astype(np.float32),
      'confidence': confidence if confidence_shape == '(N, 17)' else confidence[..., None],
      'joint3d_image': np.stack([500 + rows, 501 + joints, 100 + rows], -1),
      'camera_name': np.array(cameras),
      'source': sources,  # the official file stores a list here
  }
  if test:
    split['action'] = [action] * n
    split['2.5d_factor'] = 4 + np.arange(n) / 1000
    split['joints_2.5d_image'] = np.stack([rows, joints, 1000 + rows], -1)
  return split


def write_h36m(path: pathlib.Path, train: dict, test: dict) -> pathlib.Path:
  """Pickles {'train': train, 'test': test} like the official file."""
  with open(path, 'wb') as f:
    pickle.dump({'train': train, 'test': test}, f)
  return path


def h36m_random_split(sequences, rng: np.random.Generator, *, test: bool) -> dict:
  """One split of the official H36M pickle with random poses and a 2.5D ground truth consistent
  with them; `sequences` are (source, camera, action, frames) (action read for test only)."""
  n = sum(s[3] for s in sequences)
  pixels = np.concatenate([rng.uniform(300, 700, (n, 17, 2)), rng.uniform(-100, 100, (n, 17, 1))],
                          axis=-1)
  split = {
      'joint_2d': (pixels[..., :2] + rng.normal(0, 3, (n, 17, 2))).astype(np.float32),
      'confidence': rng.uniform(0.3, 1.0, (n, 17)).astype(np.float32),
      'joint3d_image': pixels,
      'camera_name': np.array([c for _, c, _, k in sequences for _ in range(k)]),
      'source': [s for s, _, _, k in sequences for _ in range(k)],
  }
  if test:
    factor = rng.uniform(4.0, 5.0, n)
    split.update({'action': [a for _, _, a, k in sequences for _ in range(k)],
                  '2.5d_factor': factor, 'joints_2.5d_image': pixels * factor[:, None, None]})
  return split


def build_random_h36m(root: pathlib.Path, train_sequences, test_sequences, seed: int = 0) -> str:
  """The tfds data_dir (under `root`) of an `h36m` build of a random official-format pickle."""
  from data_prep import builder
  rng = np.random.default_rng(seed)
  source = write_h36m(root / 'h36m_sh_conf_cam_source_final.pkl',
                      h36m_random_split(train_sequences, rng, test=False),
                      h36m_random_split(test_sequences, rng, test=True))
  builder.build('h36m', source=source, data_dir=root / 'tfds')
  return str(root / 'tfds')


def amass_sequence(frames: int, joints: int = H36M_JOINTS) -> np.ndarray:
  """(joints, frames, 3) float64 metres, Z up: joint j at frame t is (1 + t, 2 + j, 3)."""
  t = np.arange(frames, dtype=np.float64)[None, :]
  j = np.arange(joints, dtype=np.float64)[:, None]
  t, j = np.broadcast_arrays(t, j)
  return np.stack([1 + t, 2 + j, np.full_like(t, 3)], -1)


def write_amass(path: pathlib.Path, sequences: list) -> pathlib.Path:
  """Pickles a list of (17, T, 3) arrays like the official `amass_joints_h36m_60.pkl`."""
  with open(path, 'wb') as f:
    pickle.dump(list(sequences), f)
  return path


def ntu_annotation(frame_dir: str, label: int, *, frames: int, persons: int = 1,
                   img_shape=(1080, 1920), seed: int = 0) -> dict:
  """One PYSKL annotation (`ntu60_hrnet.pkl` layout): COCO-17 pixels that sway with `label`."""
  rng = np.random.default_rng(seed)
  h, w = img_shape
  t = np.arange(frames, dtype=np.float64)[None, :, None]
  centre = np.array([w / 2, h / 2]) + rng.uniform(-100, 100, (persons, 1, 1, 2))
  body = rng.uniform(-80, 80, (persons, 1, H36M_JOINTS, 2))
  sway = 30 * np.sin(t * (0.2 + 0.15 * label) + rng.uniform(0, 6, (persons, 1, H36M_JOINTS)))
  keypoint = centre + body + sway[..., None] * np.array([1.0, 0.5])
  return {'frame_dir': frame_dir, 'label': label, 'img_shape': tuple(img_shape),
          'original_shape': tuple(img_shape), 'total_frames': frames,
          'keypoint': keypoint.astype(np.float32),
          'keypoint_score': rng.uniform(0.3, 1.0, (persons, frames, H36M_JOINTS)).astype(
              np.float32)}


def write_pyskl(path: pathlib.Path, annotations: list, split: dict) -> pathlib.Path:
  """Pickles {'split': {name: [frame_dir, ...]}, 'annotations': [...]} as PYSKL does."""
  with open(path, 'wb') as f:
    pickle.dump({'split': split, 'annotations': annotations}, f)
  return path


def mesh_split(sequences: list[tuple[str, int]], *, cameras: list[str] | None = None,
               img_hw: list[tuple[int, int]] | None = None,
               confidence_shape: str = '(N, 17)') -> dict:
  """One split of `mesh_det_{h36m,pw3d,coco}.pkl` with the published keys.

  Args:
    sequences: (source id, frames) per sequence, concatenated in this order.
    cameras: H36M: a camera id per sequence (adds camera_name).
    img_hw: COCO: an image (height, width) per sequence (adds img_hw).
    confidence_shape: '(N, 17)' or '(N, 17, 1)'.

  Returns:
    Row r, joint j: joint_2d = (10 + r, 20 + j) pixels, confidence = 0.5 + j / 100 (joint 16 of
    row 0: 1.25, above 1 as some detectors give), smpl_pose[r, k] = r / 100 + k / 1000,
    smpl_shape[r, k] = r + k / 10.
  """
  sources = [s for s, n in sequences for _ in range(n)]
  n = len(sources)
  rows = np.arange(n, dtype=np.float64)
  joints = np.arange(H36M_JOINTS, dtype=np.float64)
  r, j = np.meshgrid(rows, joints, indexing='ij')
  confidence = (0.5 + j / 100).astype(np.float32)
  confidence[0, 16] = 1.25
  split = {
      'joint_2d': np.stack([10 + r, 20 + j], -1).astype(np.float32),
      'confidence': confidence if confidence_shape == '(N, 17)' else confidence[..., None],
      'source': sources,
      'smpl_pose': (rows[:, None] / 100 + np.arange(72) / 1000).astype(np.float32),
      'smpl_shape': (rows[:, None] + np.arange(10) / 10).astype(np.float32),
  }
  if cameras is not None:
    split['camera_name'] = np.array([c for c, (_, k) in zip(cameras, sequences)
                                     for _ in range(k)])
  if img_hw is not None:
    split['img_hw'] = np.array([hw for hw, (_, k) in zip(img_hw, sequences) for _ in range(k)])
  return split


def write_mesh_pickle(path: pathlib.Path, splits: dict) -> pathlib.Path:
  """Pickles {'train': ..., 'test': ...} (whichever `splits` has) like the official mesh files."""
  with open(path, 'wb') as f:
    pickle.dump(dict(splits), f)
  return path
