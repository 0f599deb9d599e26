"""Skeleton conventions for mocap import: the parsed-motion container, Euler rotations, the joint
maps from recorded skeletons to MotionBERT's H36M-17, file units and the up axis.

H36M-17 order (MotionBERT): 0 pelvis, 1 right hip, 2 right knee, 3 right ankle, 4 left hip,
5 left knee, 6 left ankle, 7 spine (belly), 8 thorax (neck base), 9 nose, 10 head top,
11 left shoulder, 12 left elbow, 13 left wrist, 14 right shoulder, 15 right elbow, 16 right wrist.

A joint map sends each H36M index to one joint name of the recorded skeleton, or to a list of
names whose positions are averaged (repeat a name to weight it). BVH End Sites are named
`<parent>_end`, e.g. `Head_end`; ASF/AMC joints are named by bone and sit at the bone's far end
(`root` is the root).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Mapping, Sequence

import numpy as np

H36M_JOINTS = ('pelvis', 'right_hip', 'right_knee', 'right_ankle', 'left_hip', 'left_knee',
               'left_ankle', 'spine', 'thorax', 'nose', 'head_top', 'left_shoulder', 'left_elbow',
               'left_wrist', 'right_shoulder', 'right_elbow', 'right_wrist')
# (proximal, distal) H36M index pairs of the limb bones, left and right: used for anatomy checks
# and for guessing file units.
LIMBS = {
    'thigh': ((4, 5), (1, 2)),
    'shin': ((5, 6), (2, 3)),
    'upper_arm': ((11, 12), (14, 15)),
    'forearm': ((12, 13), (15, 16)),
}

JointMap = Mapping[int, str | Sequence[str]]

# The pelvis is the mean of the hips (not the recorded root, which sits ~9 cm above and behind the
# hip joints in the CMU skeleton): in H36M the hips are lateral offsets of the pelvis. The spine is
# midway between that pelvis and the thorax (hips once each, thorax twice).
CMU_BVH_MAP = {
    0: ('LeftHip', 'RightHip'), 1: 'RightHip', 2: 'RightKnee', 3: 'RightAnkle', 4: 'LeftHip',
    5: 'LeftKnee', 6: 'LeftAnkle', 7: ('LeftHip', 'RightHip', 'Neck', 'Neck'),
    # CMU `Neck` is the top of the lower neck, level with the shoulders like the H36M thorax;
    # `Head` is the skull base, about where H36M puts the nose (between thorax and head top).
    8: 'Neck', 9: 'Head', 10: 'Head_end',
    11: 'LeftShoulder', 12: 'LeftElbow', 13: 'LeftWrist',
    14: 'RightShoulder', 15: 'RightElbow', 16: 'RightWrist',
}
# The same skeleton in CMU's native ASF: a joint is the far end of the named bone.
CMU_ASF_MAP = {
    0: ('lhipjoint', 'rhipjoint'), 1: 'rhipjoint', 2: 'rfemur', 3: 'rtibia', 4: 'lhipjoint',
    5: 'lfemur', 6: 'ltibia', 7: ('lhipjoint', 'rhipjoint', 'lowerneck', 'lowerneck'),
    8: 'lowerneck', 9: 'upperneck', 10: 'head',
    11: 'lclavicle', 12: 'lhumerus', 13: 'lradius',
    14: 'rclavicle', 15: 'rhumerus', 16: 'rradius',
}
# The 27-joint skeleton of the AnimatedDrawings (FAIR) recordings, Z-up. `*Shoulder` is the
# clavicle root there, `*Arm` the shoulder joint.
FAIR_BVH_MAP = {
    0: ('LeftUpLeg', 'RightUpLeg'), 1: 'RightUpLeg', 2: 'RightLeg', 3: 'RightFoot',
    4: 'LeftUpLeg', 5: 'LeftLeg', 6: 'LeftFoot', 7: ('LeftUpLeg', 'RightUpLeg', 'Neck', 'Neck'),
    8: 'Neck', 9: 'Head', 10: 'Head_end',
    11: 'LeftArm', 12: 'LeftForeArm', 13: 'LeftHand',
    14: 'RightArm', 15: 'RightForeArm', 16: 'RightHand',
}
# Tried in this order; the first whose names are all present in a file is used.
BUILTIN_MAPS = {'cmu_bvh': CMU_BVH_MAP, 'cmu_asf': CMU_ASF_MAP, 'fair_bvh': FAIR_BVH_MAP}

# Candidate file units (metres per unit), for formats that do not state theirs (BVH).
KNOWN_UNITS = {
    'metre': 1.0,
    'centimetre': 0.01,
    'millimetre': 0.001,
    'inch': 0.0254,
    'CMU unit (1/0.45 inch)': 0.0254 / 0.45,  # CMU's BVH conversions keep the ASF units
}
# Mean of thigh, shin, upper arm and forearm of an adult (H36M subjects: ~0.45, 0.45, 0.28, 0.25).
TYPICAL_LIMB_M = 0.35
UNIT_TOLERANCE = 1.3  # a unit fits if it puts the mean limb within this factor of the typical one


@dataclasses.dataclass
class MocapMotion:
  """A parsed recording.

  Attributes:
    path: the motion file (the .bvh or .amc).
    names: joint names, J of them.
    positions: (T, J, 3) world positions in file units and axes.
    rest: (J, 3) positions of the rest pose (all rotations zero), file units and axes.
    fps: frames per second.
    metres_per_unit: the file's length unit in metres, or None where the format does not say.
    parents: parent index of each joint (-1 for the root), parents first; None if not known.
  """

  path: pathlib.Path
  names: list[str]
  positions: np.ndarray
  rest: np.ndarray
  fps: float
  metres_per_unit: float | None
  parents: list[int] | None = None


class JointMapError(ValueError):
  """No joint map fits a recording's skeleton.

  Attributes:
    unplaced: H36M joint names that could not be placed (empty when not known).
    partial: {H36M index: name(s)} of the joints that were placed, for a template user map.
    names: the recording's joint names (empty when not given).
  """

  def __init__(self, message: str, unplaced: Sequence[str] = (),
               partial: JointMap | None = None, names: Sequence[str] = ()):
    super().__init__(message)
    self.unplaced = list(unplaced)
    self.partial = dict(partial or {})
    self.names = list(names)


def axis_rotations(axis: str, angles_rad: np.ndarray) -> np.ndarray:
  """Right-handed rotations about 'X', 'Y' or 'Z': angles (...,) -> matrices (..., 3, 3)."""
  c, s = np.cos(angles_rad), np.sin(angles_rad)
  one, zero = np.ones_like(c), np.zeros_like(c)
  rows = {
      'X': ((one, zero, zero), (zero, c, -s), (zero, s, c)),
      'Y': ((c, zero, s), (zero, one, zero), (-s, zero, c)),
      'Z': ((c, -s, zero), (s, c, zero), (zero, zero, one)),
  }[axis.upper()]
  return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def intrinsic_euler(axes: str, angles_rad: np.ndarray) -> np.ndarray:
  """R = R_axes[0] @ R_axes[1] @ ... for angles (..., len(axes)) -> (..., 3, 3).

  This is the BVH reading of a CHANNELS line (Zrotation Xrotation Yrotation => Rz @ Rx @ Ry), and
  the same matrix as rotations applied about fixed axes in the reverse order.
  """
  angles_rad = np.asarray(angles_rad, dtype=np.float64)
  result = np.broadcast_to(np.eye(3), angles_rad.shape[:-1] + (3, 3))
  for i, axis in enumerate(axes):
    result = result @ axis_rotations(axis, angles_rad[..., i])
  return result


def to_h36m17(names: Sequence[str], positions: np.ndarray, joint_map: JointMap) -> np.ndarray:
  """Gathers (and averages) recorded joints into H36M-17: (..., J, 3) -> (..., 17, 3)."""
  index = {n: i for i, n in enumerate(names)}
  weights = np.zeros((17, len(names)))
  for h36m, entry in joint_map.items():
    members = [entry] if isinstance(entry, str) else list(entry)
    for name in members:
      weights[h36m, index[name]] += 1.0 / len(members)
  return np.einsum('hj,...jc->...hc', weights, positions)


def _check_map(joint_map: JointMap, where: str) -> None:
  if sorted(joint_map) != list(range(17)):
    raise ValueError(f'{where}: a joint map needs exactly the H36M indices 0..16, got '
                     f'{sorted(joint_map)}')
  for h36m, entry in joint_map.items():
    if not isinstance(entry, str) and (not entry or not all(isinstance(n, str) for n in entry)):
      raise ValueError(f'{where}: joint map entry {h36m} ({H36M_JOINTS[h36m]}) must be a joint '
                       f'name or a non-empty list of names, got {entry!r}')


def map_names(joint_map: JointMap) -> set[str]:
  """All recorded joint names a map uses."""
  return {n for e in joint_map.values() for n in ([e] if isinstance(e, str) else e)}


def select_joint_map(names: Sequence[str], where: str,
                     joint_map: JointMap | None = None) -> tuple[str, JointMap]:
  """The user's map (checked against `names`) or the first built-in map whose names all exist.

  Returns:
    (map name: 'user' or a BUILTIN_MAPS key, the map).

  Raises:
    JointMapError: naming `where`, listing the file's joint names (and what is missing).
  """
  present = set(names)
  if joint_map is not None:
    _check_map(joint_map, where)
    missing = sorted(map_names(joint_map) - present)
    if missing:
      raise JointMapError(f'{where}: the given joint map names joints not in the file: {missing}; '
                          f'the file has: {list(names)}')
    return 'user', dict(joint_map)
  for name, candidate in BUILTIN_MAPS.items():
    if map_names(candidate) <= present:
      return name, candidate
  raise JointMapError(
      f'{where}: no built-in joint map ({", ".join(BUILTIN_MAPS)}) fits this skeleton; pass '
      f'joint_map={{h36m_index: name or [names]}} (H36M-17 order: {", ".join(H36M_JOINTS)}). '
      f'The file has these joints: {list(names)}')


def mean_limb_length(h36m: np.ndarray) -> float:
  """Mean length of the eight limb bones of one H36M-17 pose (17, 3)."""
  lengths = [np.linalg.norm(h36m[a] - h36m[b]) for pair in LIMBS.values() for a, b in pair]
  return float(np.mean(lengths))


def guess_metres_per_unit(rest_h36m: np.ndarray) -> tuple[str, float]:
  """Picks the known unit that gives the rest skeleton adult limb lengths.

  Args:
    rest_h36m: (17, 3) rest pose in file units.

  Returns:
    (unit name, metres per unit). Where no known unit fits, ('scaled to typical adult limbs',
    TYPICAL_LIMB_M / mean limb length): the body is sized like an average adult.
  """
  limb = mean_limb_length(rest_h36m)
  if not limb > 0:
    raise ValueError('the rest pose has zero-length limbs; cannot infer the length unit')
  best = min(KNOWN_UNITS.items(), key=lambda u: abs(np.log(limb * u[1] / TYPICAL_LIMB_M)))
  if abs(np.log(limb * best[1] / TYPICAL_LIMB_M)) <= np.log(UNIT_TOLERANCE):
    return best
  return 'scaled to typical adult limbs', TYPICAL_LIMB_M / limb


def detect_up_axis(rest_h36m: np.ndarray, where: str) -> str:
  """'y' or 'z': the axis along which the rest pose's head top is above its ankles.

  Args:
    rest_h36m: (17, 3) rest pose.
    where: file name for the error message.
  """
  body = rest_h36m[10] - 0.5 * (rest_h36m[3] + rest_h36m[6])
  axis = int(np.argmax(np.abs(body)))
  if axis == 0 or body[axis] <= 0 or abs(body[axis]) < 0.8 * np.linalg.norm(body):
    raise ValueError(f'{where}: cannot tell the up axis from the rest pose (head top minus ankles '
                     f'= {np.round(body, 3).tolist()}); pass up="y" or up="z"')
  return 'yz'[axis - 1]


def to_z_up(positions: np.ndarray, up: str) -> np.ndarray:
  """(..., 3) from a Y-up or Z-up right-handed frame to Z-up, by a proper rotation (no mirroring).

  Y-up (x, y, z) becomes (x, -z, y): a +90 degree turn about x, so a body facing +z faces -y.
  """
  up = up.lower()
  if up == 'z':
    return np.array(positions, dtype=np.float64)
  if up == 'y':
    return np.stack([positions[..., 0], -positions[..., 2], positions[..., 1]], axis=-1)
  raise ValueError(f"up must be 'y', 'z' or None (detect), got {up!r}")
