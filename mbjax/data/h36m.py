"""Human3.6M screen coordinates (official `DataReaderH36M`): camera sizes, normalisation and back.

The official reader maps pixels with the frame's camera resolution (res_w, res_h): x and y to
xy / res_w * 2 - [1, res_h / res_w] and depth to z / res_w * 2. `data_prep.h36m` stores clips that
way; the H36M evaluator maps predictions back to pixels with `denormalize_3d`.
"""

from __future__ import annotations

import numpy as np

# Image size (width, height) of each Human3.6M camera.
CAMERA_RESOLUTIONS = {
    '54138969': (1000, 1002),
    '60457274': (1000, 1002),
    '55011271': (1000, 1000),
    '58860488': (1000, 1000),
}


def camera_resolutions(camera_names: np.ndarray, *, where: str = 'camera_name'
                       ) -> tuple[np.ndarray, np.ndarray]:
  """Per-frame (res_w, res_h), each (N,) int32, from (N,) camera ids.

  Raises:
    ValueError naming `where` and the first index whose camera is not a Human3.6M camera.
  """
  names = np.asarray(camera_names).astype(str)
  res = np.zeros((len(names), 2), np.int32)
  known = np.zeros(len(names), bool)
  for camera, size in CAMERA_RESOLUTIONS.items():
    match = names == camera
    res[match] = size
    known |= match
  if not known.all():
    index = int(np.argmin(known))
    raise ValueError(f'{where}[{index}] = {str(names[index])!r} is not a Human3.6M camera '
                     f'(expected one of {", ".join(CAMERA_RESOLUTIONS)})')
  return res[:, 0], res[:, 1]


def normalize_2d(joint_2d: np.ndarray, res_w: np.ndarray, res_h: np.ndarray) -> np.ndarray:
  """Pixels -> official screen coordinates: (N, J, 2) with (N,) sizes -> (N, J, 2) float32.

  x in [-1, 1] across the image width; y scaled by the same factor, centred on the image.
  """
  w = np.asarray(res_w, np.float32)[:, None, None]
  h = np.asarray(res_h, np.float32)[:, None, None]
  xy = np.asarray(joint_2d, np.float32)[..., :2]
  offset = np.concatenate([np.ones_like(h), h / w], axis=-1)
  return xy / w * 2 - offset


def normalize_3d(joint_3d: np.ndarray, res_w: np.ndarray, res_h: np.ndarray) -> np.ndarray:
  """`joint3d_image` (N, J, 3) in pixels -> (N, J, 3) float32: xy as normalize_2d, z / res_w * 2."""
  w = np.asarray(res_w, np.float32)[:, None, None]
  z = np.asarray(joint_3d, np.float32)[..., 2:3]
  return np.concatenate([normalize_2d(joint_3d, res_w, res_h), z / w * 2], axis=-1)


def denormalize_3d(joint_3d: np.ndarray, res_w: np.ndarray, res_h: np.ndarray) -> np.ndarray:
  """Inverse of normalize_3d (official `DataReaderH36M.denormalize`): (N, ..., 3) -> pixels.

  `res_w`, `res_h` are (N,) per clip or frame; the other axes broadcast.
  """
  x = np.asarray(joint_3d, np.float32)
  shape = (-1,) + (1,) * (x.ndim - 1)
  w = np.asarray(res_w, np.float32).reshape(shape)
  h = np.asarray(res_h, np.float32).reshape(shape)
  scale = w / 2
  xy = (x[..., :2] + np.concatenate([np.ones_like(h), h / w], axis=-1)) * scale
  return np.concatenate([xy, x[..., 2:3] * scale], axis=-1)
