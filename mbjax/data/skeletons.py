"""Conversions from 2D detector skeletons (COCO-17, PoseTrack-17, Halpe-26, OpenPose BODY_25,
MediaPipe Pose 33) to H36M-17 order.

H36M-17 order used everywhere inside the model: 0 pelvis, 1 rhip, 2 rknee, 3 rankle, 4 lhip,
5 lknee, 6 lankle, 7 belly, 8 neck, 9 nose, 10 head, 11 lsho, 12 lelb, 13 lwri, 14 rsho, 15 relb,
16 rwri.

Each H36M joint is the mean of a pair of source joints (a pair (i, i) copies joint i exactly) except
the belly, which is the mean of the H36M pelvis and neck; Halpe-26 (AlphaPose) joints are copies
except the belly. BODY_25 and MediaPipe (no official map) follow the COCO convention: pelvis and
neck from the format's own mid-hip / neck when it has one, else the mean of the hips / shoulders,
head = mean of the eyes. `SKELETONS` names every map by its `--format` word. Outputs are float64,
as the official `coco2h36m` / `posetrack2h36m` / `halpe2h36m` give (they write into
`np.zeros(x.shape)`); we also do the arithmetic in float64.
"""

from __future__ import annotations

import numpy as np

NUM_JOINTS = 17
PELVIS, BELLY, NECK = 0, 7, 8

H36M_JOINTS = ('pelvis', 'rhip', 'rknee', 'rankle', 'lhip', 'lknee', 'lankle', 'belly', 'neck',
               'nose', 'head', 'lsho', 'lelb', 'lwri', 'rsho', 'relb', 'rwri')
COCO_JOINTS = ('nose', 'leye', 'reye', 'lear', 'rear', 'lsho', 'rsho', 'lelb', 'relb', 'lwri',
               'rwri', 'lhip', 'rhip', 'lknee', 'rknee', 'lankle', 'rankle')
POSETRACK_JOINTS = ('nose', 'head_bottom', 'head_top', 'lear', 'rear', 'lsho', 'rsho', 'lelb',
                    'relb', 'lwri', 'rwri', 'lhip', 'rhip', 'lknee', 'rknee', 'lankle', 'rankle')
HALPE_JOINTS = ('nose', 'leye', 'reye', 'lear', 'rear', 'lsho', 'rsho', 'lelb', 'relb', 'lwri',
                'rwri', 'lhip', 'rhip', 'lknee', 'rknee', 'lankle', 'rankle', 'head', 'neck',
                'hip', 'lbigtoe', 'rbigtoe', 'lsmalltoe', 'rsmalltoe', 'lheel', 'rheel')
NUM_HALPE = len(HALPE_JOINTS)
# OpenPose BODY_25 (its `pose_keypoints_2d` order) and MediaPipe Pose landmarks (33). In all of
# these 'left' is the person's own left, as in H36M.
BODY25_JOINTS = ('nose', 'neck', 'rsho', 'relb', 'rwri', 'lsho', 'lelb', 'lwri', 'midhip', 'rhip',
                 'rknee', 'rankle', 'lhip', 'lknee', 'lankle', 'reye', 'leye', 'rear', 'lear',
                 'lbigtoe', 'lsmalltoe', 'lheel', 'rbigtoe', 'rsmalltoe', 'rheel')
MEDIAPIPE_JOINTS = ('nose', 'leye_inner', 'leye', 'leye_outer', 'reye_inner', 'reye', 'reye_outer',
                    'lear', 'rear', 'mouth_left', 'mouth_right', 'lsho', 'rsho', 'lelb', 'relb',
                    'lwri', 'rwri', 'lpinky', 'rpinky', 'lindex', 'rindex', 'lthumb', 'rthumb',
                    'lhip', 'rhip', 'lknee', 'rknee', 'lankle', 'rankle', 'lheel', 'rheel',
                    'lfoot_index', 'rfoot_index')

# Source joint pair averaged into each H36M joint; the belly entry is overwritten afterwards.
_COCO_PAIRS = ((11, 12), (12, 12), (14, 14), (16, 16), (11, 11), (13, 13), (15, 15), (0, 0),
               (5, 6), (0, 0), (1, 2), (5, 5), (7, 7), (9, 9), (6, 6), (8, 8), (10, 10))
_POSETRACK_PAIRS = ((11, 12), (12, 12), (14, 14), (16, 16), (11, 11), (13, 13), (15, 15), (0, 0),
                    (1, 1), (0, 0), (2, 2), (5, 5), (7, 7), (9, 9), (6, 6), (8, 8), (10, 10))
_BODY25_PAIRS = ((8, 8), (9, 9), (10, 10), (11, 11), (12, 12), (13, 13), (14, 14), (8, 8),
                 (1, 1), (0, 0), (15, 16), (5, 5), (6, 6), (7, 7), (2, 2), (3, 3), (4, 4))
_MEDIAPIPE_PAIRS = ((23, 24), (24, 24), (26, 26), (28, 28), (23, 23), (25, 25), (27, 27), (0, 0),
                    (11, 12), (0, 0), (2, 5), (11, 11), (13, 13), (15, 15), (12, 12), (14, 14),
                    (16, 16))
# Halpe joint copied into each H36M joint (official `halpe2h36m`); the belly is set afterwards to
# the mean of Halpe neck (18) and hip (19).
_HALPE_SOURCE = (19, 12, 14, 16, 11, 13, 15, 19, 18, 0, 17, 5, 7, 9, 6, 8, 10)
_HALPE_NECK, _HALPE_HIP = 18, 19


def _check_joints(x: np.ndarray, what: str, channels: int | None = None) -> np.ndarray:
  x = np.asarray(x, dtype=np.float64)
  if x.ndim < 2 or x.shape[-2] != NUM_JOINTS or (channels is not None and x.shape[-1] != channels):
    want = f'(..., {NUM_JOINTS}, {channels if channels is not None else "C"})'
    raise ValueError(f'{what}: expected an array of shape {want}, got {x.shape}')
  return x


def _pairs_to_h36m(x: np.ndarray, pairs) -> np.ndarray:
  first = np.array([p[0] for p in pairs])
  second = np.array([p[1] for p in pairs])
  y = (x[..., first, :] + x[..., second, :]) * 0.5
  y[..., BELLY, :] = (y[..., PELVIS, :] + y[..., NECK, :]) * 0.5
  return y


def _named_pairs_to_h36m(x: np.ndarray, pairs, joints: tuple, what: str) -> np.ndarray:
  x = np.asarray(x, dtype=np.float64)
  if x.ndim < 2 or x.shape[-2] != len(joints):
    raise ValueError(f'{what}: expected an array of shape (..., {len(joints)}, C), got {x.shape}')
  return _pairs_to_h36m(x, pairs)


def coco_to_h36m(x: np.ndarray) -> np.ndarray:
  """COCO-17 (..., 17, C) -> H36M-17 (..., 17, C) float64.

  Every channel, a confidence channel included, is mapped the same way: pelvis = mean of the hips,
  neck = mean of the shoulders, head = mean of the eyes, belly = mean of pelvis and neck.
  """
  return _pairs_to_h36m(_check_joints(x, 'coco_to_h36m'), _COCO_PAIRS)


def posetrack_to_h36m(x: np.ndarray) -> np.ndarray:
  """PoseTrack-17 (..., 17, 3) [x, y, visibility] -> H36M-17 (..., 17, 3) float64.

  Neck = head_bottom, head = head_top; the ears are dropped. Coordinates of pelvis and belly are
  means, but their confidence is the minimum of the two joints they come from, so a half-visible
  hip pair does not make the pelvis visible.
  """
  x = _check_joints(x, 'posetrack_to_h36m', channels=3)
  y = _pairs_to_h36m(x, _POSETRACK_PAIRS)
  y[..., PELVIS, 2] = np.minimum(x[..., 11, 2], x[..., 12, 2])
  y[..., BELLY, 2] = np.minimum(y[..., PELVIS, 2], y[..., NECK, 2])
  return y


def halpe_to_h36m(x: np.ndarray) -> np.ndarray:
  """Halpe-26 (..., 26, C) -> H36M-17 (..., 17, C) float64 (official `halpe2h36m`).

  Every channel, the score included, is mapped the same way: pelvis = Halpe hip, neck = Halpe
  neck, head = Halpe head, belly = mean of Halpe neck and hip; feet and face points are dropped.
  """
  x = np.asarray(x, dtype=np.float64)
  if x.ndim < 2 or x.shape[-2] != NUM_HALPE:
    raise ValueError(f'halpe_to_h36m: expected an array of shape (..., {NUM_HALPE}, C), '
                     f'got {x.shape}')
  y = x[..., _HALPE_SOURCE, :]
  y[..., BELLY, :] = (x[..., _HALPE_NECK, :] + x[..., _HALPE_HIP, :]) * 0.5
  return y


def body25_to_h36m(x: np.ndarray) -> np.ndarray:
  """OpenPose BODY_25 (..., 25, C) -> H36M-17 (..., 17, C) float64.

  Pelvis = MidHip (8), neck = Neck (1), head = mean of the eyes (15, 16), belly = mean of pelvis
  and neck, limbs copied; toes and heels are dropped. Every channel is mapped the same way.
  """
  return _named_pairs_to_h36m(x, _BODY25_PAIRS, BODY25_JOINTS, 'body25_to_h36m')


def mediapipe_to_h36m(x: np.ndarray) -> np.ndarray:
  """MediaPipe Pose landmarks (..., 33, C) -> H36M-17 (..., 17, C) float64.

  Pelvis = mean of the hips (23, 24), neck = mean of the shoulders (11, 12), head = mean of the
  eyes (2, 5), belly = mean of pelvis and neck, limbs copied; face, hand and foot points are
  dropped. Every channel is mapped the same way.
  """
  return _named_pairs_to_h36m(x, _MEDIAPIPE_PAIRS, MEDIAPIPE_JOINTS, 'mediapipe_to_h36m')


def h36m_identity(x: np.ndarray) -> np.ndarray:
  """H36M-17 (..., 17, C) as float64 (inputs already in the model's order)."""
  return _check_joints(x, 'h36m_identity').copy()


def _pair_sources(pairs) -> tuple:
  sources = [tuple(sorted(set(p))) for p in pairs]
  sources[BELLY] = tuple(sorted(set(sources[PELVIS]) | set(sources[NECK])))
  return tuple(sources)


# `--format` word -> (source joint names, map to H36M-17, source joints of each H36M joint).
SKELETONS = {
    'coco': (COCO_JOINTS, coco_to_h36m, _pair_sources(_COCO_PAIRS)),
    'halpe': (HALPE_JOINTS, halpe_to_h36m,
              tuple((_HALPE_NECK, _HALPE_HIP) if j == BELLY else (s,)
                    for j, s in enumerate(_HALPE_SOURCE))),
    'body25': (BODY25_JOINTS, body25_to_h36m, _pair_sources(_BODY25_PAIRS)),
    'mediapipe': (MEDIAPIPE_JOINTS, mediapipe_to_h36m, _pair_sources(_MEDIAPIPE_PAIRS)),
    'h36m': (H36M_JOINTS, h36m_identity, tuple((j,) for j in range(NUM_JOINTS))),
}


def to_h36m(x: np.ndarray, skeleton: str) -> np.ndarray:
  """(..., J, C) keypoints of `skeleton` (a `SKELETONS` key) -> H36M-17 (..., 17, C) float64."""
  if skeleton not in SKELETONS:
    raise ValueError(f'unknown skeleton {skeleton!r}; expected one of {sorted(SKELETONS)}')
  return SKELETONS[skeleton][1](x)


def to_coco(x: np.ndarray, skeleton: str) -> np.ndarray:
  """(..., J, C) keypoints of `skeleton` -> (..., 17, C) float64 in COCO-17 order, each COCO
  joint copied from the joint of the same name (for writing COCO keypoint results). The H36M-17
  map of the result equals the skeleton's own for COCO, Halpe, BODY_25 and MediaPipe (their maps
  use only joints COCO names, the same way)."""
  joints = SKELETONS[skeleton][0] if skeleton in SKELETONS else ()
  missing = [n for n in COCO_JOINTS if n not in joints]
  if not joints or missing:
    raise ValueError(f'to_coco: skeleton {skeleton!r} lacks the COCO joints {missing}')
  x = np.asarray(x, np.float64)
  if x.shape[-2:-1] != (len(joints),):
    raise ValueError(f'to_coco: expected (..., {len(joints)}, C) {skeleton} keypoints, got '
                     f'{x.shape}')
  return x[..., [joints.index(n) for n in COCO_JOINTS], :]


def h36m_detected(confidence: np.ndarray, skeleton: str) -> np.ndarray:
  """(..., J) source confidences -> (..., 17) bool: every source joint of the H36M joint has
  confidence > 0 (a derived joint is only as detected as all the joints it is made of)."""
  joints, _, sources = SKELETONS[skeleton]
  confidence = np.asarray(confidence)
  if confidence.shape[-1:] != (len(joints),):
    raise ValueError(f'h36m_detected: expected (..., {len(joints)}) {skeleton} confidences, '
                     f'got {confidence.shape}')
  present = confidence > 0
  return np.stack([present[..., list(s)].all(axis=-1) for s in sources], axis=-1)
