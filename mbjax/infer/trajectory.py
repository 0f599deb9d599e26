"""A root trajectory for lifted tracks: where the person is in the camera frame, in metres.

The lifting model gives a pose around its root (the pelvis); the 2D keypoints and a pinhole
camera give where that pose stands:
- metres from an assumed standing height (`height_m`, 1.7): the median over frames of the 3D
  skeleton's height (pelvis to head along the spine plus the mean leg) maps to it;
- the camera: principal point at the frame centre, focal length f = W / (2 tan(fov / 2)) pixels
  from an assumed horizontal field of view (`fov_deg`, default 60 degrees: phone and webcam
  lenses are 55-70);
- per frame, the root translation T that best reprojects the metric pose P onto the detected
  keypoints (u, v): each joint gives two equations linear in T, f (P_x + T_x) = (u - c_x)
  (P_z + T_z) and the same for y, solved by least squares weighted by the keypoint confidence
  (exact for an exact pose and camera).
Axes as the model's: x right, y down, z away from the camera. A wrong assumed height scales the
whole trajectory; a wrong field of view mostly the depth.
"""

from __future__ import annotations

import numpy as np

from mbjax.data import skeletons

_SPINE = ((7, 0), (8, 7), (9, 8), (10, 9))  # pelvis -> belly -> thorax -> nose -> head
_LEGS = (((1, 0), (2, 1), (3, 2)), ((4, 0), (5, 4), (6, 5)))  # hip, knee, ankle per side
DEFAULT_FOV_DEG = 60.0
DEFAULT_HEIGHT_M = 1.7
PELVIS = skeletons.H36M_JOINTS.index('pelvis')


def _lengths(x: np.ndarray, bones) -> np.ndarray:
  """(T, len(bones)) bone lengths of (T, 17, C) points."""
  return np.stack([np.linalg.norm(x[:, c] - x[:, p], axis=-1) for c, p in bones], axis=-1)


FILLED_WEIGHT = 1e-6


def skeleton_height(joints: np.ndarray) -> float:
  """Median over frames of spine-to-head plus the mean leg length of (T, 17, 3) joints."""
  spine = _lengths(joints, _SPINE).sum(axis=-1)
  legs = np.mean([_lengths(joints, leg).sum(axis=-1) for leg in _LEGS], axis=0)
  return float(np.median(spine + legs))


def _solve_roots(keypoints_px: np.ndarray, pose_m: np.ndarray, focal: float,
                 centre: np.ndarray) -> np.ndarray:
  """(T, 3) least-squares root translations of (T, 17, 3) metric poses (module docstring)."""
  d = keypoints_px[..., :2] - centre  # (T, 17, 2)
  # Joints filled in a gap (confidence 0) weigh a little, so that a frame with no detection
  # still gets a root from the interpolated keypoints instead of a singular system.
  w = np.sqrt(np.clip(keypoints_px[..., 2], FILLED_WEIGHT, None))[..., None]  # (T, 17, 1)
  zeros = np.zeros(d.shape[:2])
  rows_x = np.stack([np.full_like(zeros, focal), zeros, -d[..., 0]], axis=-1)
  rows_y = np.stack([zeros, np.full_like(zeros, focal), -d[..., 1]], axis=-1)
  a = np.concatenate([rows_x, rows_y], axis=1) * np.concatenate([w, w], axis=1)  # (T, 34, 3)
  b = np.concatenate([d[..., 0] * pose_m[..., 2] - focal * pose_m[..., 0],
                      d[..., 1] * pose_m[..., 2] - focal * pose_m[..., 1]], axis=1)
  b = b * np.concatenate([w, w], axis=1)[..., 0]
  ata = np.einsum('tki,tkj->tij', a, a)
  if np.any(np.linalg.matrix_rank(ata) < 3):
    bad = int(np.argmax(np.linalg.matrix_rank(ata) < 3))
    raise ValueError(f'trajectory: frame {bad} has too few detected joints to place the root')
  return np.linalg.solve(ata, np.einsum('tki,tk->ti', a, b)[..., None])[..., 0]


def check_options(fov_deg: float, height_m: float) -> None:
  """ValueError naming the flag for a field of view or height that cannot be."""
  if not 1 <= fov_deg < 180:
    raise ValueError(f'--fov={fov_deg}: expected a horizontal field of view in [1, 180) degrees')
  if height_m <= 0:
    raise ValueError(f'--person_height={height_m}: expected a height in metres > 0')


def root_trajectory(keypoints_px: np.ndarray, joints3d_px: np.ndarray, size: tuple[int, int], *,
                    fov_deg: float = DEFAULT_FOV_DEG, height_m: float = DEFAULT_HEIGHT_M
                    ) -> dict[str, np.ndarray]:
  """The camera-frame trajectory of one track (module docstring).

  Args:
    keypoints_px: (T, 17, 3) the 2D input in pixels with confidence.
    joints3d_px: (T, 17, 3) the lifted pose in pixel units (`Normalisation.to_pixels`).
    size: (width, height) of the frames.
    fov_deg: assumed horizontal field of view of the camera.
    height_m: assumed standing height of the person.

  Returns:
    `root_m` (T, 3) and `joints3d_m` (T, 17, 3) float32 in metres, camera frame.
  """
  check_options(fov_deg, height_m)
  w, h = size
  focal = w / (2 * np.tan(np.deg2rad(fov_deg) / 2))
  pose = np.asarray(joints3d_px, np.float64)
  pose = pose - pose[:, PELVIS:PELVIS + 1]
  pose_m = pose * (height_m / skeleton_height(pose))
  root = _solve_roots(np.asarray(keypoints_px, np.float64), pose_m, focal,
                      np.array([w / 2, h / 2]))
  return dict(root_m=root.astype(np.float32),
              joints3d_m=(pose_m + root[:, None]).astype(np.float32))
