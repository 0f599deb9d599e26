"""BVH export of H36M-17 3D joints: rotations solved from positions, bone lengths fixed per track.

Conventions:
  Input axes: `joints3d` (T, 17, 3) as the model writes it, camera-like (x right, y down, z away
    from the camera), unless `axes='yup'`. BVH and Blender expect Y up, so 'camera' input is turned
    180 degrees about x: (x, y, z) -> (x, -y, -z), a proper rotation (left stays left); a person
    facing the camera then faces +Z.
  Units: positions are multiplied by `scale` ('as given' by default), or scaled so the rest pose
    is `height` tall (e.g. 170 for centimetres; the model's own units are those of the 2D crop).
  Skeleton: one BVH joint per H36M-17 joint, named as `skeletons.H36M_JOINTS`, rooted at the
    pelvis; the pelvis (hips, belly) and the neck (nose, shoulders) have several children. Leaf
    joints (ankles, head, wrists) carry zero rotations and an End Site along their bone.
  Bone lengths: per track, the median over frames of each bone's length.
  Rest pose: a T-pose facing +Z (+X the person's left): legs straight down, spine and head straight
    up, arms along +-X. The pelvis and neck children keep their track's median shape, measured in
    those joints' own frames (so a rigid pelvis or shoulder girdle comes back exactly).
  Rotations: the root has Xposition Yposition Zposition Zrotation Xrotation Yrotation, every other
    joint Zrotation Xrotation Yrotation (degrees; local R = Rz @ Rx @ Ry, as Blender reads it).
    The pelvis frame is solved from the hip line and the spine, the neck frame from the shoulder
    line and the nose; hips and shoulders align their limb's plane (with the knee or elbow) to a
    fixed hinge axis, so knees and elbows only bend; other joints take the minimal rotation from
    the rest bone direction to the observed one in their parent's frame. A nearly straight limb
    keeps the plane of its last bent frame.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from scipy.spatial.transform import Rotation

from mbjax.data import skeletons
from mbjax.files import atomic

PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
CHANNELS = 'ZXY'
ROOT_CHANNELS = ('Xposition', 'Yposition', 'Zposition') + tuple(f'{a}rotation' for a in CHANNELS)
CHILDREN = tuple(tuple(c for c, p in enumerate(PARENTS) if p == j) for j in range(17))
# Rest (T-pose) direction of the bone ending at each single-child joint's child, BVH axes.
_TPOSE = {2: (0, -1, 0), 3: (0, -1, 0), 5: (0, -1, 0), 6: (0, -1, 0), 8: (0, 1, 0),
          10: (0, 1, 0), 12: (1, 0, 0), 13: (1, 0, 0), 15: (-1, 0, 0), 16: (-1, 0, 0)}
# Joints with several children: joint -> (x from, x to, y from, y to) of the joint's frame.
_FRAMES = {0: (1, 4, 0, 7), 8: (14, 11, 8, 9)}
# Hip / shoulder -> (middle, end, rest normal of the limb plane upper x lower at a natural bend).
_HINGES = {1: (2, 3, (1, 0, 0)), 4: (5, 6, (1, 0, 0)), 11: (12, 13, (0, -1, 0)),
           14: (15, 16, (0, 1, 0))}
_END_SITE = 0.25  # End Site length, as a fraction of the leaf's bone
_EPS = 1e-9
_BENT = np.sin(np.deg2rad(5.0))  # |upper x lower| below this: the limb plane is ill-defined


def to_bvh_axes(joints3d: np.ndarray, axes: str = 'camera', scale: float = 1.0) -> np.ndarray:
  """(T, 17, 3) input positions -> BVH axes (Y up) times `scale`, float64."""
  x = np.asarray(joints3d, dtype=np.float64)
  if x.ndim != 3 or x.shape[1:] != (17, 3):
    raise ValueError(f'bvh: expected joints3d of shape (T, 17, 3), got {x.shape}')
  if not np.isfinite(x).all():
    raise ValueError('bvh: joints3d holds NaN or Inf')
  if axes == 'camera':
    x = x * np.array([1.0, -1.0, -1.0])
  elif axes != 'yup':
    raise ValueError(f"bvh: axes={axes!r}: expected 'camera' (x right, y down) or 'yup'")
  return x * scale


def bone_lengths(positions: np.ndarray) -> np.ndarray:
  """(17,) median over frames of the length of the bone ending at each joint (0 for the pelvis)."""
  bones = positions[:, 1:] - positions[:, np.array(PARENTS[1:])]
  return np.concatenate([[0.0], np.median(np.linalg.norm(bones, axis=-1), axis=0)])


def _unit(v: np.ndarray) -> np.ndarray:
  return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


def _frame(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """(..., 3, 3) rotation whose columns are x, y made orthogonal to x, and x cross y."""
  x = _unit(x)
  y = _unit(y - np.sum(y * x, axis=-1, keepdims=True) * x)
  return np.stack([x, y, np.cross(x, y)], axis=-1)


def _min_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """(..., 3, 3) smallest rotation taking unit vectors a to b (half a turn when opposite)."""
  a, b = np.broadcast_arrays(a, b)
  v, c = np.cross(a, b), np.sum(a * b, axis=-1)
  opposite = c < -1 + 1e-8
  # Opposite vectors: turn half way about any axis perpendicular to a.
  other = np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
  axis = _unit(np.cross(a, other))
  k = np.zeros(a.shape + (3,))
  k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
  k = k - np.swapaxes(k, -1, -2)
  near = np.eye(3) + k + k @ k / np.maximum(1 + c, 1e-8)[..., None, None]
  far = 2 * axis[..., :, None] * axis[..., None, :] - np.eye(3)
  return np.where(opposite[..., None, None], far, near)


def rest_offsets(positions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """(17, 3) OFFSET of each joint from its parent in the rest pose (root: zero)."""
  offsets = np.zeros((17, 3))
  for child, direction in _TPOSE.items():
    offsets[child] = np.array(direction, dtype=np.float64) * lengths[child]
  for joint, frame in _frames(positions).items():
    for child in CHILDREN[joint]:
      local = np.einsum('tji,tj->ti', frame, positions[:, child] - positions[:, joint])
      offsets[child] = _unit(np.median(_unit(local), axis=0)) * lengths[child]
  return offsets


def _frames(positions: np.ndarray) -> dict[int, np.ndarray]:
  p = positions
  return {j: _frame(p[:, x1] - p[:, x0], p[:, y1] - p[:, y0])
          for j, (x0, x1, y0, y1) in _FRAMES.items()}


def _hinge_rotation(p, offsets, joint, parent_rot):
  """(T, 3, 3) world rotation of a hip or shoulder: bone exact, limb plane on the rest normal."""
  middle, end, normal = _HINGES[joint]
  upper = _unit(p[:, middle] - p[:, joint])
  plane = np.cross(upper, _unit(p[:, end] - p[:, middle]))
  bent = np.linalg.norm(plane, axis=-1) > _BENT
  last = np.maximum.accumulate(np.where(bent, np.arange(len(p)), -1))
  held = plane[np.maximum(last, 0)]  # the plane of the last bent frame, made perpendicular
  held = held - np.sum(held * upper, axis=-1, keepdims=True) * upper
  usable = (last >= 0) & (np.linalg.norm(held, axis=-1) > _BENT * 1e-2)
  rest = _frame(offsets[middle], np.array(normal, dtype=np.float64))
  aligned = _frame(upper, np.where(usable[:, None], held, upper)) @ rest.T
  rest_dir = _unit(offsets[middle])
  minimal = parent_rot @ _min_rotation(rest_dir, np.einsum('tji,tj->ti', parent_rot, upper))
  return np.where(usable[:, None, None], aligned, minimal)


def world_rotations(positions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
  """(T, 17, 3, 3) world rotation of each joint, parents solved before children."""
  p = positions
  frames = _frames(p)
  rest_frames = {j: _frame(offsets[x1] - offsets[x0], offsets[y1])  # y0 is the joint itself
                 for j, (x0, x1, _, y1) in _FRAMES.items()}
  world = np.zeros((len(p), 17, 3, 3))
  for j in range(17):
    parent_rot = world[:, PARENTS[j]] if j else np.eye(3)
    if j in _FRAMES:
      world[:, j] = frames[j] @ rest_frames[j].T
    elif j in _HINGES:
      world[:, j] = _hinge_rotation(p, offsets, j, parent_rot)
    elif CHILDREN[j]:
      (child,) = CHILDREN[j]
      seen = np.einsum('tji,tj->ti', parent_rot, _unit(p[:, child] - p[:, j]))
      world[:, j] = parent_rot @ _min_rotation(_unit(offsets[child]), seen)
    else:
      world[:, j] = parent_rot  # leaf: no bone of its own to orient
  return world


def local_euler(world: np.ndarray) -> np.ndarray:
  """(T, 17, 3, 3) world rotations -> (T, 17, 3) local Z, X, Y angles in degrees, unwrapped."""
  parents = np.array(PARENTS)
  local = world.copy()
  local[:, 1:] = np.swapaxes(world[:, parents[1:]], -1, -2) @ world[:, 1:]
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', UserWarning)  # gimbal lock: the matrix is still reproduced
    angles = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_euler(CHANNELS, degrees=True)
  return np.unwrap(angles.reshape(local.shape[:2] + (3,)), period=360.0, axis=0)


def rest_height(offsets: np.ndarray) -> float:
  """Head-to-ankle height of the rest pose: the span of its joints along Y."""
  rest = np.zeros((17, 3))
  for j in range(1, 17):
    rest[j] = rest[PARENTS[j]] + offsets[j]
  return float(rest[:, 1].max() - rest[:, 1].min())


def _hierarchy(offsets: np.ndarray, names) -> list[str]:
  lines = ['HIERARCHY']
  rotations = ' '.join(f'{a}rotation' for a in CHANNELS)

  def node(j: int, depth: int) -> None:
    pad = '  ' * depth
    head = f'ROOT {names[j]}' if j == 0 else f'JOINT {names[j]}'
    channels = f'6 {" ".join(ROOT_CHANNELS)}' if j == 0 else f'3 {rotations}'
    lines.extend([pad + head, pad + '{', f'{pad}  OFFSET {_xyz(offsets[j])}',
                  f'{pad}  CHANNELS {channels}'])
    for child in CHILDREN[j]:
      node(child, depth + 1)
    if not CHILDREN[j]:
      lines.extend([f'{pad}  End Site', f'{pad}  {{',
                    f'{pad}    OFFSET {_xyz(offsets[j] * _END_SITE)}', f'{pad}  }}'])
    lines.append(pad + '}')

  node(0, 0)
  return lines


def _xyz(v) -> str:
  return ' '.join(f'{x:.6f}' for x in v)


def write(path: str | os.PathLike, joints3d: np.ndarray, *, fps: float, scale: float = 1.0,
          height: float | None = None, axes: str = 'camera', names=skeletons.H36M_JOINTS) -> str:
  """Writes one track's H36M-17 motion as a BVH file (conventions in the module docstring).

  Args:
    path: the .bvh file to write.
    joints3d: (T, 17, 3) joint positions, H36M-17 order.
    fps: frames per second (Frame Time = 1 / fps).
    scale: multiplies every position (file units = input units x scale).
    height: if set, overrides `scale` so that the rest pose is this tall (e.g. 170 for cm).
    axes: 'camera' (x right, y down, z forward; the model's output) or 'yup' (as given).
    names: 17 joint names for the file.

  Returns:
    `path` as a string.
  """
  if not fps > 0:
    raise ValueError(f'bvh: fps={fps}: must be positive')
  p = to_bvh_axes(joints3d, axes)
  lengths = bone_lengths(p)
  if height is not None:
    scale = height / max(rest_height(rest_offsets(p, lengths)), _EPS)
  p, lengths = p * scale, lengths * scale
  offsets = rest_offsets(p, lengths)
  angles = local_euler(world_rotations(p, offsets))
  motion = np.concatenate([p[:, 0], angles.reshape(len(p), -1)], axis=1)
  lines = _hierarchy(offsets, names) + ['MOTION', f'Frames: {len(p)}',
                                        f'Frame Time: {1.0 / fps:.8f}']
  lines += [' '.join(f'{v:.6f}' for v in row) for row in motion]
  atomic.write_text(path, '\n'.join(lines) + '\n')
  return str(path)
