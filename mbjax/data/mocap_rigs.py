"""H36M-17 joint maps inferred from a rig's joint names and hierarchy, and user map files.

The built-in maps of `mocap_maps` name exact joints of a few skeletons. Other rigs (Mixamo,
MotionBuilder HumanIK, Rokoko, Daz Genesis, SMPL-named exports) are mapped here by convention:
each joint name is normalised to (side, base) by `normalise_name` (namespace and rig prefix
stripped, the left/right token taken out, lower case without separators:
'mixamorig:LeftForeArm' -> ('left', 'forearm'), 'lShldrBend' -> ('left', 'shldrbend'),
'L_Elbow' -> ('left', 'elbow')). A convention (RIGS) lists the bases of each body part; the
hierarchy decides between candidates (the joint nearest the root) and checks the chains (hip above
knee above ankle, shoulder above elbow above wrist, neck above head above head top, no arm or head
below a thigh). The map follows the conventions of the built-in maps: pelvis = mean of the hips,
spine = midway pelvis / thorax, thorax = neck base, nose = head joint (skull base), head top =
head-top joint or the head's End Site, shoulder = upper-arm root (not the clavicle).

Where no convention places all 17 joints, `write_template` writes a JSON map with what was found
and null for the rest; filled in, `read_user_map` reads it back (mocap option joint_map=PATH).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
from typing import Sequence

from mbjax.data import mocap_maps

H36M_JOINTS = mocap_maps.H36M_JOINTS
_NAMESPACE = re.compile(r'^.*[:|]')
_RIG_PREFIX = re.compile(r'^(mixamorig\d*[_:]?|character\d*_|bip\d+[ _]?|def[-_])', re.IGNORECASE)
_SEP = r'[ _.\-]'
_SIDE_PATTERNS = (  # tried in order on the name without namespace and prefix
    re.compile(rf'^(?P<side>left|right){_SEP}*(?P<base>.+)$', re.IGNORECASE),  # LeftArm, left_hip
    re.compile(rf'^(?P<base>.+?){_SEP}*(?P<side>left|right)$', re.IGNORECASE),  # HandLeft
    re.compile(rf'^(?P<side>[lr]){_SEP}+(?P<base>.+)$', re.IGNORECASE),  # L_Hip, l_thigh
    re.compile(r'^(?P<side>[lrLR])(?P<base>[A-Z][a-z0-9].*)$'),  # lThigh, LHipJoint, not ROOT
    re.compile(rf'^(?P<base>.+?){_SEP}+(?P<side>[lr])$', re.IGNORECASE),  # thigh.L, hip_r
)
HEAD_TOP_BASES = ('headtopend', 'headtop', 'headtopnub', 'headnub', 'headend')


@dataclasses.dataclass(frozen=True)
class RigConvention:
  """Joint-name bases of one rig family, best first; `marker` matches names only it uses."""

  label: str
  thigh: tuple[str, ...]
  knee: tuple[str, ...]
  ankle: tuple[str, ...]
  upper_arm: tuple[str, ...]
  forearm: tuple[str, ...]
  hand: tuple[str, ...]
  neck: tuple[str, ...] = ('neck',)
  head: tuple[str, ...] = ('head',)
  marker: str = r'(?!)'


_HUMANIK_LIMBS = dict(thigh=('upleg',), knee=('leg',), ankle=('foot',), upper_arm=('arm',),
                      forearm=('forearm',), hand=('hand',))
# Tried in this order; the one placing most joints wins, its marker breaking ties.
RIGS = {
    'humanik': RigConvention('MotionBuilder HumanIK', **_HUMANIK_LIMBS,
                             marker=r'^character\d*_|^spine[3-9]$'),
    'mixamo': RigConvention('Mixamo', **_HUMANIK_LIMBS, marker=r'^mixamorig|^headtop_end$'),
    'rokoko': RigConvention('Rokoko', thigh=('thigh',), knee=('shin',), ankle=('foot',),
                            upper_arm=('arm',), forearm=('forearm',), hand=('hand',)),
    'daz': RigConvention('Daz Genesis', thigh=('thighbend', 'thigh'), knee=('shin', 'shinbend'),
                         ankle=('foot',), upper_arm=('shldrbend', 'shldr', 'upperarm'),
                         forearm=('forearmbend', 'forearm'), hand=('hand',),
                         neck=('necklower', 'neck', 'neck1'),
                         marker=r'^(abdomen|chest(upper|lower)|[lr]collar|[lr]shldr|necklower)'),
    # Also the CMU BVH names (LeftHip, LeftKnee, LeftAnkle, LeftShoulder, LeftElbow, LeftWrist).
    'smpl': RigConvention('SMPL / CMU-style', thigh=('hip',), knee=('knee',), ankle=('ankle',),
                          upper_arm=('shoulder',), forearm=('elbow',), hand=('wrist',),
                          marker=r'^(l|r|left|right)_(collar|hip)$'),
}


def normalise_name(name: str) -> tuple[str | None, str]:
  """A joint name -> (side: 'left', 'right' or None, base: lower case letters and digits).

  'mixamorig:LeftUpLeg' -> ('left', 'upleg'); 'Character1_Spine2' -> (None, 'spine2');
  'rForearmBend' -> ('right', 'forearmbend'); 'thigh.L' -> ('left', 'thigh');
  'HeadTop_End' -> (None, 'headtopend').
  """
  stem = _RIG_PREFIX.sub('', _NAMESPACE.sub('', name.strip())) or name
  side = None
  for pattern in _SIDE_PATTERNS:
    match = pattern.match(stem)
    if match and re.sub(r'[^a-z0-9]', '', match['base'].lower()):
      side = 'left' if match['side'][0].lower() == 'l' else 'right'
      stem = match['base']
      break
  return side, re.sub(r'[^a-z0-9]', '', stem.lower())


@dataclasses.dataclass
class _Skeleton:
  """Names with their normalised (side, base), parents and depths."""

  names: list[str]
  parents: list[int]
  sides: list[str | None]
  bases: list[str]
  depths: list[int]

  @classmethod
  def of(cls, names: Sequence[str], parents: Sequence[int]) -> _Skeleton:
    normal = [normalise_name(n) for n in names]
    depths = []
    for parent in parents:  # parents come before children
      depths.append(0 if parent < 0 else depths[parent] + 1)
    return cls(list(names), list(parents), [s for s, _ in normal], [b for _, b in normal], depths)

  def ancestors(self, joint: int) -> list[int]:
    out = []
    while self.parents[joint] >= 0:
      joint = self.parents[joint]
      out.append(joint)
    return out

  def pick(self, side: str | None, bases: Sequence[str], below: int | None = None) -> int | None:
    """The joint nearest the root with `side` and the first of `bases` present (optionally a
    descendant of `below`). Bases match whole, so twist and roll bones (Daz lShldrTwist, HumanIK
    LeftArmRoll: on the segment, not at its joint) are never picked."""
    for base in bases:
      found = [j for j, (s, b) in enumerate(zip(self.sides, self.bases))
               if s == side and b == base and (below is None or below in self.ancestors(j))]
      if found:
        return min(found, key=lambda j: self.depths[j])
    return None

  def end_site(self, joint: int) -> int | None:
    """The BVH End Site child of `joint` (named '<joint>_end' by the reader), if any."""
    stem = f'{self.names[joint]}_end'
    ends = [j for j, p in enumerate(self.parents) if p == joint and self.names[j].startswith(stem)]
    return ends[0] if ends else None


@dataclasses.dataclass
class Inference:
  """What `infer_joint_map` found.

  Attributes:
    rig: RIGS key of the convention that placed most joints ('' if none placed any).
    label: its name in words ('Mixamo'), or 'no known rig convention'.
    joint_map: {H36M index: name or tuple of names} for the joints placed.
    unplaced: names (H36M_JOINTS) of the joints that could not be placed, in H36M order.
  """

  rig: str
  label: str
  joint_map: dict[int, str | tuple[str, ...]]
  unplaced: list[str]


def _chain(skeleton: _Skeleton, side: str | None, bases: Sequence[Sequence[str]],
           below: int | None = None) -> list[int | None]:
  """Joints of a chain (e.g. thigh, knee, ankle), each one a descendant of the one before; a
  part whose joint is missing or out of order is None, and so are the parts after it."""
  out: list[int | None] = []
  for part_bases in bases:
    above = out[-1] if out else below
    joint = None if out and above is None else skeleton.pick(side, part_bases, above)
    out.append(joint)
  return out


def _place(skeleton: _Skeleton, rig: RigConvention) -> dict[str, int | None]:
  """Body part -> joint index (None where not found) under one convention."""
  parts: dict[str, int | None] = {}
  for side in ('left', 'right'):
    leg = _chain(skeleton, side, (rig.thigh, rig.knee, rig.ankle))
    arm = _chain(skeleton, side, (rig.upper_arm, rig.forearm, rig.hand))
    parts.update(zip((f'{side}_hip', f'{side}_knee', f'{side}_ankle'), leg))
    parts.update(zip((f'{side}_shoulder', f'{side}_elbow', f'{side}_wrist'), arm))
  neck, head = _chain(skeleton, None, (rig.neck, rig.head))
  head_top = None
  if head is not None:
    head_top = skeleton.pick(None, HEAD_TOP_BASES, head)
    head_top = skeleton.end_site(head) if head_top is None else head_top
  parts.update(neck=neck, head=head, head_top=head_top)
  # Arms and head hang off the spine: nothing of them below a thigh (a mislabelled chain).
  thighs = {parts['left_hip'], parts['right_hip']} - {None}
  for part in ('neck', 'head', 'head_top', 'left_shoulder', 'right_shoulder'):
    if parts[part] is not None and thighs & set(skeleton.ancestors(parts[part])):
      parts[part] = None
  return parts


def _to_h36m(skeleton: _Skeleton, parts: dict[str, int | None]) -> dict[int, str | tuple]:
  """Body parts -> the H36M-17 entries that all their joints were found for."""
  name = {part: None if j is None else skeleton.names[j] for part, j in parts.items()}
  hips = (name['left_hip'], name['right_hip'])
  entries = {
      'pelvis': hips, 'spine': hips + (name['neck'], name['neck']), 'thorax': name['neck'],
      'nose': name['head'], 'head_top': name['head_top'],
  }
  for part in ('hip', 'knee', 'ankle', 'shoulder', 'elbow', 'wrist'):
    for side in ('left', 'right'):
      entries[f'{side}_{part}'] = name[f'{side}_{part}']
  return {H36M_JOINTS.index(k): v for k, v in entries.items()
          if v is not None and (isinstance(v, str) or None not in v)}


def infer_joint_map(names: Sequence[str], parents: Sequence[int]) -> Inference:
  """The H36M-17 map of the convention (RIGS) that places the most joints of a skeleton.

  Args:
    names: joint names in hierarchy order (parents before children), End Sites '<parent>_end'.
    parents: parent index of each joint, -1 for the root.
  """
  skeleton = _Skeleton.of(names, parents)
  best, best_score = None, (0, False)
  for key, rig in RIGS.items():
    joint_map = _to_h36m(skeleton, _place(skeleton, rig))
    marked = any(re.search(rig.marker, n, re.IGNORECASE) for n in names)
    if (len(joint_map), marked) > best_score:
      best, best_score = (key, joint_map), (len(joint_map), marked)
  if best is None:
    return Inference('', 'no known rig convention', {}, list(H36M_JOINTS))
  key, joint_map = best
  unplaced = [n for i, n in enumerate(H36M_JOINTS) if i not in joint_map]
  return Inference(key, RIGS[key].label, joint_map, unplaced)


def describe_entry(entry: str | Sequence[str]) -> str:
  """'LeftArm', or 'mean of LeftUpLeg, RightUpLeg, Neck x2' for an averaged entry."""
  if isinstance(entry, str):
    return entry
  counts: dict[str, int] = {}
  for name in entry:
    counts[name] = counts.get(name, 0) + 1
  return 'mean of ' + ', '.join(n if c == 1 else f'{n} x{c}' for n, c in counts.items())


def describe_map(joint_map: mocap_maps.JointMap) -> dict[str, str]:
  """{H36M joint name: recorded joint(s) in words}, in H36M order; '?' where not placed."""
  return {n: describe_entry(joint_map[i]) if i in joint_map else '?'
          for i, n in enumerate(H36M_JOINTS)}


TEMPLATE_ABOUT = (
    'H36M-17 joint map for {file}: each H36M joint -> one joint name of the recording, or a '
    'list of names whose positions are averaged (repeat a name to weight it). Replace every '
    'null with names from _joints_in_file, then rebuild with --opt joint_map=<this file>.')
TEMPLATE_CONVENTIONS = (
    'pelvis = [left hip, right hip]; spine = [left hip, right hip, neck base, neck base]; '
    'thorax = neck base; nose = head joint (skull base); head_top = head-top joint or head End '
    'Site (<head>_end); shoulder = upper-arm root (not the clavicle); elbow, wrist = joints.')


def template(where: str, names: Sequence[str], joint_map: mocap_maps.JointMap) -> dict:
  """A JSON-ready user map: all 17 H36M joints, those of `joint_map` filled in, the rest null."""
  out = {'_about': TEMPLATE_ABOUT.format(file=where), '_conventions': TEMPLATE_CONVENTIONS,
         '_joints_in_file': list(names)}
  for i, joint in enumerate(H36M_JOINTS):
    entry = joint_map.get(i)
    out[joint] = entry if entry is None or isinstance(entry, str) else list(entry)
  return out


def write_template(path: str | os.PathLike, where: str, names: Sequence[str],
                   joint_map: mocap_maps.JointMap) -> bool:
  """Writes `template(...)` as JSON to `path` unless a file is there; returns whether it wrote
  (an existing file may be the user's filled-in copy, so it is never overwritten)."""
  path = pathlib.Path(path)
  if path.exists():
    return False
  path.write_text(json.dumps(template(where, names, joint_map), indent=2) + '\n')
  return True


def read_user_map(path: str | os.PathLike) -> dict[int, str | list[str]]:
  """Reads a JSON joint map: {H36M joint name or index: name or [names]}; '_' keys are notes.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not JSON, not an object, an unknown key, or joints left null / missing (the
      message names the file and the joints to fill).
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'joint map {path}: no such file; expected a JSON object '
                            f'{{H36M joint: joint name or [names]}} (a failed build writes a '
                            f'template beside the recording)')
  try:
    data = json.loads(path.read_text(encoding='utf-8'))
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise ValueError(f'joint map {path}: not valid JSON ({error})') from None
  if not isinstance(data, dict):
    raise ValueError(f'joint map {path}: expected a JSON object {{H36M joint: joint name or '
                     f'[names]}}, got {type(data).__name__}')
  out: dict[int, str | list[str]] = {}
  for key, value in data.items():
    if key.startswith('_'):
      continue
    index = int(key) if key.isdigit() else (H36M_JOINTS.index(key) if key in H36M_JOINTS else -1)
    if not 0 <= index < len(H36M_JOINTS):
      raise ValueError(f'joint map {path}: unknown key {key!r}; expected an H36M joint '
                       f'({", ".join(H36M_JOINTS)}) or an index 0..16')
    if value is not None:
      out[index] = value
  unfilled = [n for i, n in enumerate(H36M_JOINTS) if i not in out]
  if unfilled:
    raise ValueError(f'joint map {path}: fill in {", ".join(unfilled)} (each a joint name of '
                     f'the recording or a list of names)')
  return out


def select_joint_map(names: Sequence[str], parents: Sequence[int] | None, where: str,
                     joint_map: mocap_maps.JointMap | None = None
                     ) -> tuple[str, mocap_maps.JointMap]:
  """The user's map, else a built-in map (`mocap_maps.select_joint_map`), else one inferred.

  Returns:
    (map name: 'user', a BUILTIN_MAPS key or 'inferred:<RIGS key>', the map).

  Raises:
    JointMapError: naming `where`, the joints that could not be placed (`.unplaced`, with the
      placed ones in `.partial`) and the file's joints.
  """
  try:
    return mocap_maps.select_joint_map(names, where, joint_map)
  except mocap_maps.JointMapError:
    if joint_map is not None or parents is None:
      raise
  inference = infer_joint_map(names, parents)
  if not inference.unplaced:
    return f'inferred:{inference.rig}', inference.joint_map
  labels = ', '.join(r.label for r in RIGS.values())
  found = (f'the joint names follow no known rig convention ({labels})' if not inference.rig
           else f'read as a {inference.label} rig, joints are missing')
  raise mocap_maps.JointMapError(
      f'{where}: no joint map fits: no built-in map ({", ".join(mocap_maps.BUILTIN_MAPS)}) fits '
      f'and {found}; could not place these H36M joints: {", ".join(inference.unplaced)}. Pass a '
      f'joint map (option joint_map=PATH of a JSON file, or {{h36m_index: name or [names]}}). '
      f'The file has these joints: {list(names)}', inference.unplaced, inference.joint_map, names)
