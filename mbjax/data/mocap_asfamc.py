"""Acclaim ASF/AMC (CMU's native mocap format) reader and forward kinematics, in numpy.

The .asf holds the skeleton: `:units`, `:root` (order of the root's AMC values, axis order,
position, orientation), `:bonedata` (per bone: direction, length, axis angles + order, dof) and
`:hierarchy`. The .amc holds frames: a frame number line, then `bone v1 v2 ...` lines in the
order of that bone's dof.

Forward kinematics as in the Acclaim spec: bone b has the axis rotation C_b (its local frame,
given in world terms at rest) and the motion M_b from its dofs; its world rotation is
G_b = G_parent @ C_b @ M_b @ C_b^-1 and its far end is parent end + G_b @ (direction * length).
Euler angles are applied about fixed axes in the listed order ('XYZ' => Rz @ Ry @ Rx), as are the
rotation dofs in their listed order ('rx ry rz' => Rz @ Ry @ Rx).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from mbjax.data import mocap_maps

CMU_AMC_FPS = 120.0  # AMC files do not store a rate; the CMU database was captured at 120 Hz
INCH_M = 0.0254
_ROOT_TOKENS = ('TX', 'TY', 'TZ', 'RX', 'RY', 'RZ')
_BONE_DOFS = ('rx', 'ry', 'rz')


@dataclasses.dataclass
class AsfBone:
  """One bone. Angles are in radians, lengths in ASF units (before the `:units length` scale)."""

  name: str
  direction: np.ndarray  # (3,) unit vector, world frame at rest
  length: float
  axis: np.ndarray  # (3,) radians
  axis_order: str  # e.g. 'XYZ'
  dofs: tuple[str, ...]  # e.g. ('rx', 'ry', 'rz'), in AMC value order
  parent: str = ''


@dataclasses.dataclass
class Asf:
  """A parsed skeleton. `bones` is in parent-before-child order."""

  path: pathlib.Path
  length_scale: float  # `:units length`
  angle_unit: str  # 'deg' | 'rad'
  root_order: tuple[str, ...]
  root_axis: str
  root_position: np.ndarray  # (3,)
  root_orientation: np.ndarray  # (3,) radians
  bones: list[AsfBone]

  @property
  def metres_per_unit(self) -> float:
    # CMU convention: an ASF length divided by `:units length` is in inches (CMU's 0.45 => one
    # unit is 1/0.45 inch = 0.05644 m, giving thighs of ~0.41 m).
    return INCH_M / self.length_scale


def _clean_lines(path: pathlib.Path) -> list[tuple[int, str]]:
  """(1-based line number, text without comment) for the non-empty lines of a file."""
  out = []
  for lineno, line in enumerate(path.read_text(encoding='utf-8').splitlines(), start=1):
    text = line.split('#', 1)[0].strip()
    if text:
      out.append((lineno, text))
  return out


def _floats(path, lineno, values, count):
  if len(values) != count:
    raise ValueError(f'{path}: line {lineno}: expected {count} numbers, found {len(values)}')
  try:
    out = np.array(values, dtype=np.float64)
  except ValueError:
    raise ValueError(f'{path}: line {lineno}: expected numbers, found {values}') from None
  if not np.isfinite(out).all():
    raise ValueError(f'{path}: line {lineno}: NaN or Inf value')
  return out


def _axis_order(path, lineno, text: str) -> str:
  order = text.upper()
  if sorted(order) != ['X', 'Y', 'Z']:
    raise ValueError(f'{path}: line {lineno}: expected an axis order like XYZ, found {text!r}')
  return order


def _parse_bone(path, block: list[tuple[int, str]], to_rad: float) -> AsfBone:
  fields: dict[str, tuple[int, list[str]]] = {}
  for lineno, text in block:
    key, *values = text.split()
    if text.startswith('('):
      continue  # continuation of `limits`
    fields[key.lower()] = (lineno, values)
  first = block[0][0] if block else 0
  for key in ('name', 'direction', 'length', 'axis'):
    if key not in fields:
      raise ValueError(f'{path}: bone block at line {first}: missing {key!r}')
  if len(fields['name'][1]) != 1:
    raise ValueError(f'{path}: line {fields["name"][0]}: expected "name <bone>"')
  name = fields['name'][1][0]
  direction = _floats(path, *fields['direction'], 3)
  norm = np.linalg.norm(direction)
  length = float(_floats(path, *fields['length'], 1)[0])
  if norm == 0 and length != 0:
    raise ValueError(f'{path}: line {fields["direction"][0]}: bone {name!r} has a zero direction')
  lineno, axis_values = fields['axis']
  if len(axis_values) != 4:
    raise ValueError(f'{path}: line {lineno}: expected "axis a b c ORDER", found {axis_values}')
  dofs = tuple(d.lower() for d in fields.get('dof', (0, []))[1])
  unsupported = [d for d in dofs if d not in _BONE_DOFS]
  if unsupported:
    raise ValueError(f'{path}: line {fields["dof"][0]}: bone {name!r} has dof {unsupported}; only '
                     f'rotations {_BONE_DOFS} are supported on bones')
  return AsfBone(name=name, direction=direction / (norm if norm else 1.0), length=length,
                 axis=_floats(path, lineno, axis_values[:3], 3) * to_rad,
                 axis_order=_axis_order(path, lineno, axis_values[3]), dofs=dofs)


def parse_asf(path: str | os.PathLike) -> Asf:
  """Reads an ASF skeleton.

  Raises:
    ValueError: a malformed section, missing bone fields, or a hierarchy naming unknown bones or
      leaving bones unattached; the message names the file and line.
  """
  path = pathlib.Path(path)
  lines = _clean_lines(path)
  sections: dict[str, list[tuple[int, str]]] = {}
  current = None
  for lineno, text in lines:
    if text.startswith(':'):
      key, *rest = text[1:].split(maxsplit=1) or ['']
      current = key.lower()
      sections.setdefault(current, [])
      if rest:
        sections[current].append((lineno, rest[0]))
    elif current is not None:
      sections[current].append((lineno, text))
  for needed in ('root', 'bonedata', 'hierarchy'):
    if needed not in sections:
      raise ValueError(f'{path}: no :{needed} section (truncated file or not an ASF)')

  units = {t.split()[0].lower(): (n, t.split()[1:]) for n, t in sections.get('units', [])}
  length_scale = float(_floats(path, *units['length'], 1)[0]) if 'length' in units else 1.0
  angle_unit = units['angle'][1][0].lower()[:3] if 'angle' in units else 'deg'
  if angle_unit not in ('deg', 'rad') or not length_scale > 0:
    raise ValueError(f'{path}: :units must have angle deg|rad and length > 0, found '
                     f'angle={angle_unit!r} length={length_scale}')
  to_rad = np.pi / 180.0 if angle_unit == 'deg' else 1.0

  root = {t.split()[0].lower(): (n, t.split()[1:]) for n, t in sections['root']}
  for key in ('order', 'axis'):
    if key not in root:
      raise ValueError(f'{path}: :root lacks {key!r}')
  root_order = tuple(v.upper() for v in root['order'][1])
  if not root_order or any(v not in _ROOT_TOKENS for v in root_order):
    raise ValueError(f'{path}: line {root["order"][0]}: root order must use {_ROOT_TOKENS}, '
                     f'found {root_order}')
  root_position = (_floats(path, *root['position'], 3) if 'position' in root else np.zeros(3))
  root_orientation = (_floats(path, *root['orientation'], 3) * to_rad
                      if 'orientation' in root else np.zeros(3))

  bones: dict[str, AsfBone] = {}
  block: list[tuple[int, str]] | None = None
  for lineno, text in sections['bonedata']:
    word = text.split()[0].lower()
    if word == 'begin':
      block = []
    elif word == 'end':
      if block is None:
        raise ValueError(f'{path}: line {lineno}: "end" without "begin" in :bonedata')
      bone = _parse_bone(path, block, to_rad)
      bones[bone.name] = bone
      block = None
    elif block is None:
      raise ValueError(f'{path}: line {lineno}: bone data outside a begin/end block')
    else:
      block.append((lineno, text))
  if block is not None:
    raise ValueError(f'{path}: :bonedata ends inside a bone block (truncated file?)')

  children: dict[str, list[str]] = {}
  for lineno, text in sections['hierarchy']:
    parent, *kids = text.split()
    if parent.lower() in ('begin', 'end'):
      continue
    for name in [parent] + kids:
      if name != 'root' and name not in bones:
        raise ValueError(f'{path}: line {lineno}: :hierarchy names unknown bone {name!r}')
    children.setdefault(parent, []).extend(kids)
  ordered, frontier = [], ['root']
  while frontier:
    parent = frontier.pop(0)
    for kid in children.get(parent, []):
      if bones[kid].parent:
        raise ValueError(f'{path}: :hierarchy gives bone {kid!r} two parents')
      bones[kid].parent = parent
      ordered.append(bones[kid])
      frontier.append(kid)
  unattached = sorted(set(bones) - {b.name for b in ordered})
  if unattached:
    raise ValueError(f'{path}: bones not reachable from root in :hierarchy: {unattached}')
  return Asf(path=path, length_scale=length_scale, angle_unit=angle_unit, root_order=root_order,
             root_axis=_axis_order(path, root['axis'][0], root['axis'][1][0]),
             root_position=root_position, root_orientation=root_orientation, bones=ordered)


def amc_columns(asf: Asf) -> dict[str, tuple[int, int]]:
  """Column range (start, stop) of the root and each bone with dofs in the motion array."""
  columns, start = {'root': (0, len(asf.root_order))}, len(asf.root_order)
  for bone in asf.bones:
    if bone.dofs:
      columns[bone.name] = (start, start + len(bone.dofs))
      start += len(bone.dofs)
  return columns


def parse_amc(path: str | os.PathLike, asf: Asf) -> np.ndarray:
  """Reads AMC frames for `asf`: (T, n_values), angles in radians, the root first then the bones
  with dofs in `asf.bones` order (see `amc_columns`).

  Raises:
    ValueError: a value line with the wrong count, an unknown bone, NaN/Inf, non-consecutive
      frame numbers or a frame missing bones (a truncated file); the message names the file, the
      line and the frame.
  """
  path = pathlib.Path(path)
  columns = amc_columns(asf)
  n_values = max(stop for _, stop in columns.values())
  to_rad = np.pi / 180.0 if asf.angle_unit == 'deg' else 1.0
  frames: list[np.ndarray] = []
  seen: set[str] = set()
  frame_no = None

  def close_frame(at_line):
    missing = sorted(set(columns) - seen)
    if missing:
      raise ValueError(f'{path}: frame {frame_no} (ending at line {at_line}) lacks bones '
                       f'{missing} (truncated file?)')

  for lineno, text in _clean_lines(path):
    if text.startswith(':'):
      word = text[1:].split()[0].upper() if text[1:].split() else ''
      if word in ('DEGREES', 'RADIANS'):
        to_rad = np.pi / 180.0 if word == 'DEGREES' else 1.0
      continue
    parts = text.split()
    if len(parts) == 1 and parts[0].isdigit():
      if frame_no is not None:
        close_frame(lineno - 1)
        if int(parts[0]) != frame_no + 1:
          raise ValueError(f'{path}: line {lineno}: frame {parts[0]} follows frame {frame_no}')
      frame_no = int(parts[0])
      frames.append(np.zeros(n_values))
      seen = set()
      continue
    if frame_no is None:
      raise ValueError(f'{path}: line {lineno}: bone values before the first frame number')
    name = parts[0]
    if name not in columns:
      raise ValueError(f'{path}: line {lineno} (frame {frame_no}): unknown bone {name!r} (not in '
                       f'{asf.path.name} or without dof)')
    start, stop = columns[name]
    if len(parts) - 1 != stop - start:
      raise ValueError(f'{path}: line {lineno} (frame {frame_no}): bone {name!r} needs '
                       f'{stop - start} values, found {len(parts) - 1}')
    try:
      values = np.array(parts[1:], dtype=np.float64)
    except ValueError:
      raise ValueError(
          f'{path}: line {lineno} (frame {frame_no}): a value is not a number') from None
    if not np.isfinite(values).all():
      raise ValueError(f'{path}: line {lineno} (frame {frame_no}): NaN or Inf value')
    frames[-1][start:stop] = values
    seen.add(name)
  if frame_no is None:
    raise ValueError(f'{path}: no frames')
  close_frame('end of file')
  motion = np.stack(frames)
  # Angles to radians; root translations stay in ASF units.
  rotation_cols = [k for k, token in enumerate(asf.root_order) if token.startswith('R')]
  rotation_cols += list(range(len(asf.root_order), n_values))
  motion[:, rotation_cols] *= to_rad
  return motion


def _fixed_axis_euler(order: str, angles: np.ndarray) -> np.ndarray:
  """Rotations applied about fixed axes in `order` (first listed first): (..., k) -> (..., 3, 3)."""
  return mocap_maps.intrinsic_euler(order[::-1], angles[..., ::-1])


def forward_kinematics(asf: Asf, motion: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
  """World positions of the root and of each bone's far end.

  Args:
    asf: the skeleton.
    motion: (T, n_values) from `parse_amc` (radians, ASF units), or None for the rest pose.

  Returns:
    (names: 'root' then the bones in `asf.bones` order, positions (T, J, 3) in ASF units, Y-up).
  """
  n_frames = 1 if motion is None else motion.shape[0]
  columns = amc_columns(asf)
  c_root = _fixed_axis_euler(asf.root_axis, asf.root_orientation)
  translation = np.tile(asf.root_position, (n_frames, 1))
  m_root = np.broadcast_to(np.eye(3), (n_frames, 3, 3))
  if motion is not None:
    rot_axes = ''.join(t[1] for t in asf.root_order if t.startswith('R'))
    rot_cols = [k for k, t in enumerate(asf.root_order) if t.startswith('R')]
    for k, token in enumerate(asf.root_order):
      if token.startswith('T'):
        translation[:, 'XYZ'.index(token[1])] += motion[:, k]  # added to :root position
    if rot_axes:
      m_root = _fixed_axis_euler(rot_axes, motion[:, rot_cols])
  rotation = {'root': c_root @ m_root @ c_root.T}
  end = {'root': translation}
  for bone in asf.bones:
    c_bone = _fixed_axis_euler(bone.axis_order, bone.axis)
    local = np.broadcast_to(np.eye(3), (n_frames, 3, 3))
    if motion is not None and bone.dofs:
      start, stop = columns[bone.name]
      axes = ''.join(d[1].upper() for d in bone.dofs)
      local = c_bone @ _fixed_axis_euler(axes, motion[:, start:stop]) @ c_bone.T
    rotation[bone.name] = rotation[bone.parent] @ local
    end[bone.name] = end[bone.parent] + np.einsum(
        'tij,j->ti', rotation[bone.name], bone.direction * bone.length)
  names = ['root'] + [b.name for b in asf.bones]
  return names, np.stack([end[n] for n in names], axis=1)


def find_asf(amc_path: str | os.PathLike) -> pathlib.Path | None:
  """The skeleton of an .amc: `<prefix>.asf` beside it (11_01.amc -> 11.asf), else the only .asf
  in its folder, else None."""
  amc_path = pathlib.Path(amc_path)
  asfs = sorted(p for p in amc_path.parent.iterdir() if p.suffix.lower() == '.asf')
  prefix = amc_path.stem.split('_', 1)[0]
  named = [p for p in asfs if p.stem == prefix]
  if named:
    return named[0]
  return asfs[0] if len(asfs) == 1 else None


def read_asf_amc(asf_path: str | os.PathLike, amc_path: str | os.PathLike, *,
                 fps: float = CMU_AMC_FPS) -> mocap_maps.MocapMotion:
  """Parses a skeleton and its motion and runs forward kinematics.

  Args:
    asf_path: the .asf.
    amc_path: the .amc.
    fps: the capture rate (AMC does not store it).

  Returns:
    MocapMotion with positions (T, J, 3) in ASF units (Y-up) and the unit in metres.
  """
  asf = parse_asf(asf_path)
  names, positions = forward_kinematics(asf, parse_amc(amc_path, asf))
  parent_of = {b.name: b.parent for b in asf.bones}
  return mocap_maps.MocapMotion(
      path=pathlib.Path(amc_path), names=names, positions=positions,
      rest=forward_kinematics(asf)[1][0], fps=float(fps), metres_per_unit=asf.metres_per_unit,
      parents=[-1] + [names.index(parent_of[n]) for n in names[1:]])
