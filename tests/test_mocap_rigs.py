"""Mocap joint maps inferred from rig conventions (Mixamo, Daz Genesis, ...), the build report of
the inferred map, and the template user map written where no convention fits."""

import json
import pathlib

import numpy as np
import pytest

from data_prep import build as build_cli
from data_prep import builder
from mbjax.data import mocap, mocap_maps, mocap_rigs
from mbjax.data.records import load as load_split

N_FRAMES = 30  # at 30 fps; built at fps=30 into clips of CLIP_LEN frames
CLIP_LEN = 9
OPTIONS = {'fps': 30.0, 'clip_len': CLIP_LEN, 'stride': CLIP_LEN, 'test_files': ()}

# ------------------------------------------------------------------------------ a BVH writer

# A joint: (name, parent name or None, offset from the parent). Y-up, centimetres, the body
# faces +z in the rest pose, its left is +x. Leaves get an End Site.


def _mirror(left_joints, swap):
  """The right-side copies of `left_joints`: x negated, names (and parents) renamed by `swap`."""
  return [(swap(n), swap(p), (-o[0], o[1], o[2])) for n, p, o in left_joints]


def _mixamo(prefix: str = 'mixamorig:'):
  """A Mixamo skeleton with a few finger joints (33 joints)."""
  left = [
      ('LeftUpLeg', 'Hips', (9, -7, 0)), ('LeftLeg', 'LeftUpLeg', (0, -44, 0)),
      ('LeftFoot', 'LeftLeg', (0, -42, 0)), ('LeftToeBase', 'LeftFoot', (0, -6, 12)),
      ('LeftShoulder', 'Spine2', (6, 11, 0)), ('LeftArm', 'LeftShoulder', (12, 0, 0)),
      ('LeftForeArm', 'LeftArm', (28, 0, 0)), ('LeftHand', 'LeftForeArm', (25, 0, 0)),
      ('LeftHandIndex1', 'LeftHand', (9, 0, 1)), ('LeftHandThumb1', 'LeftHand', (3, 0, 3)),
  ]
  joints = [
      ('Hips', None, (0, 0, 0)), ('Spine', 'Hips', (0, 9, 1)), ('Spine1', 'Spine', (0, 11, 0)),
      ('Spine2', 'Spine1', (0, 12, 0)), ('Neck', 'Spine2', (0, 15, 0)),
      ('Head', 'Neck', (0, 10, 2)), ('HeadTop_End', 'Head', (0, 18, 0)),
  ] + left + _mirror(left, lambda n: n.replace('Left', 'Right'))
  return [(prefix + n, None if p is None else prefix + p, o) for n, p, o in joints]


def _daz_genesis8():
  """A Daz Genesis 8 body skeleton with twist bones and finger roots (43 joints)."""
  left = [
      ('lThighBend', 'pelvis', (8, -8, 0)), ('lThighTwist', 'lThighBend', (0, -20, 0)),
      ('lShin', 'lThighTwist', (0, -24, 0)), ('lFoot', 'lShin', (0, -42, 0)),
      ('lMetatarsals', 'lFoot', (0, -3, 6)), ('lToe', 'lMetatarsals', (0, -3, 7)),
      ('lPectoral', 'chestUpper', (8, 2, 8)),
      ('lCollar', 'chestUpper', (4, 9, 0)), ('lShldrBend', 'lCollar', (13, 0, 0)),
      ('lShldrTwist', 'lShldrBend', (13, 0, 0)), ('lForearmBend', 'lShldrTwist', (15, 0, 0)),
      ('lForearmTwist', 'lForearmBend', (12, 0, 0)), ('lHand', 'lForearmTwist', (13, 0, 0)),
      ('lThumb1', 'lHand', (3, 0, 3)), ('lIndex1', 'lHand', (8, 0, 1)),
      ('lMid1', 'lHand', (8, 0, 0)), ('lRing1', 'lHand', (8, 0, -1)),
  ]
  left_names = {n for n, _, _ in left}
  right = _mirror(left, lambda n: 'r' + n[1:] if n in left_names else n)
  return [
      ('hip', None, (0, 0, 0)), ('pelvis', 'hip', (0, -2, 0)),
      ('abdomenLower', 'hip', (0, 8, 0)), ('abdomenUpper', 'abdomenLower', (0, 8, 0)),
      ('chestLower', 'abdomenUpper', (0, 10, 0)), ('chestUpper', 'chestLower', (0, 10, 0)),
      ('neckLower', 'chestUpper', (0, 12, 0)), ('neckUpper', 'neckLower', (0, 5, 0)),
      ('head', 'neckUpper', (0, 6, 2)),
  ] + left + right


def _angles(joints, n_frames: int, seed: int) -> np.ndarray:
  """(T, J, 3) Euler angles (Z, X, Y degrees): a smooth sway of every joint within 8 degrees,
  knees bending forward by up to 40 degrees."""
  rng = np.random.default_rng(seed)
  t = np.arange(n_frames)[:, None, None] / 30.0
  phase = rng.uniform(0, 2 * np.pi, (1, len(joints), 3))
  angles = 8.0 * np.sin(2 * np.pi * 0.7 * t + phase)
  for j, (name, _, _) in enumerate(joints):
    if mocap_rigs.normalise_name(name)[1] in ('leg', 'shin'):
      angles[:, j, 1] = 20.0 * (1 - np.cos(2 * np.pi * t[:, 0, 0]))  # X: the shin swings back
  return angles


def write_bvh(path: pathlib.Path, joints, n_frames: int = N_FRAMES, seed: int = 0,
              head_end=(0, 18, 0)) -> pathlib.Path:
  """Writes `joints` as a 30 fps BVH: the root walks forward at 1 m/s 100 cm above the floor."""
  children = {}
  for name, parent, _ in joints:
    children.setdefault(parent, []).append(name)
  offsets = {n: o for n, _, o in joints}
  order, lines = [], ['HIERARCHY']

  def emit(name, depth):
    pad = '  ' * depth
    kind = 'ROOT' if depth == 0 else 'JOINT'
    order.append(name)
    channels = ('6 Xposition Yposition Zposition Zrotation Xrotation Yrotation' if depth == 0
                else '3 Zrotation Xrotation Yrotation')
    lines.extend([f'{pad}{kind} {name}', f'{pad}{{',
                  f'{pad}  OFFSET {" ".join(f"{v:g}" for v in offsets[name])}',
                  f'{pad}  CHANNELS {channels}'])
    for child in children.get(name, []):
      emit(child, depth + 1)
    if name not in children:
      end = head_end if mocap_rigs.normalise_name(name)[1] == 'head' else (0, 2, 0)
      lines.extend([f'{pad}  End Site', f'{pad}  {{',
                    f'{pad}    OFFSET {" ".join(f"{v:g}" for v in end)}', f'{pad}  }}'])
    lines.append(f'{pad}}}')

  emit(children[None][0], 0)
  angles = _angles([(n, None, None) for n in order], n_frames, seed)
  t = np.arange(n_frames) / 30.0
  root = np.stack([np.zeros_like(t), 100 + 2 * np.sin(4 * np.pi * t), 100 * t], axis=-1)
  lines += ['MOTION', f'Frames: {n_frames}', 'Frame Time: 0.0333333']
  for frame in range(n_frames):
    values = np.concatenate([root[frame], angles[frame].reshape(-1)])
    lines.append(' '.join(f'{v:.4f}' for v in values))
  path.write_text('\n'.join(lines) + '\n')
  return path


def _renamed(joints, rename):
  return [(rename(n), None if p is None else rename(p), o) for n, p, o in joints]


def _nonsense_names(joints, keep=lambda name: False, seed: int = 3) -> dict[str, str]:
  """Recorded name -> a random lower-case word, for the joints `keep` does not keep."""
  rng = np.random.default_rng(seed)
  letters = np.array(list('bcdfghjkmnpqstvwxz'))
  return {n: n if keep(n) else 'q' + ''.join(rng.choice(letters, 6)) for n, _, _ in joints}


# ----------------------------------------------------------------------------- the normaliser


@pytest.mark.parametrize('name, expected', [
    # Mixamo, with and without its prefix
    ('mixamorig:LeftUpLeg', ('left', 'upleg')), ('mixamorig1:RightForeArm', ('right', 'forearm')),
    ('mixamorig:HeadTop_End', (None, 'headtopend')), ('Spine2', (None, 'spine2')),
    ('mixamorig_LeftHand', ('left', 'hand')),
    # Daz Genesis 2/3/8/9
    ('lThighBend', ('left', 'thighbend')), ('rShldrBend', ('right', 'shldrbend')),
    ('lForearmTwist', ('left', 'forearmtwist')), ('abdomenLower', (None, 'abdomenlower')),
    ('neckLower', (None, 'necklower')), ('l_upperarm', ('left', 'upperarm')),
    ('hip', (None, 'hip')),
    # Rokoko
    ('LeftThigh', ('left', 'thigh')), ('RightShin', ('right', 'shin')),
    ('Spine4', (None, 'spine4')),
    # MotionBuilder HumanIK, namespaced
    ('Character1_LeftArm', ('left', 'arm')), ('Character1:RightUpLeg', ('right', 'upleg')),
    ('Character1_Spine9', (None, 'spine9')),
    # SMPL-named exports
    ('L_Hip', ('left', 'hip')), ('R_Collar', ('right', 'collar')),
    ('left_wrist', ('left', 'wrist')),
    ('Pelvis', (None, 'pelvis')),
    # suffixed sides, CMU-style capitals, words that only look like a side
    ('thigh.L', ('left', 'thigh')), ('forearm_r', ('right', 'forearm')),
    ('HandLeft', ('left', 'hand')), ('LHipJoint', ('left', 'hipjoint')),
    ('lowerback', (None, 'lowerback')), ('ROOT', (None, 'root')), ('Head_end', (None, 'headend')),
])
def test_normalise_name(name, expected):
  assert mocap_rigs.normalise_name(name) == expected


# ------------------------------------------------------------------------------- inference


def _infer(joints, folder: pathlib.Path):
  """The inferred map of `joints` as read back from a BVH (with its End Sites)."""
  motion = mocap.read_mocap(write_bvh(folder / 'rig.bvh', joints, n_frames=1))
  return mocap_rigs.infer_joint_map(motion.names, motion.parents)


def test_mixamo_and_daz_maps_follow_the_builtin_conventions(tmp_path):
  mixamo = _infer(_mixamo(), tmp_path)
  assert (mixamo.rig, mixamo.unplaced) == ('mixamo', [])
  m = 'mixamorig:'
  assert mixamo.joint_map == {
      0: (m + 'LeftUpLeg', m + 'RightUpLeg'), 1: m + 'RightUpLeg', 2: m + 'RightLeg',
      3: m + 'RightFoot', 4: m + 'LeftUpLeg', 5: m + 'LeftLeg', 6: m + 'LeftFoot',
      7: (m + 'LeftUpLeg', m + 'RightUpLeg', m + 'Neck', m + 'Neck'), 8: m + 'Neck',
      9: m + 'Head', 10: m + 'HeadTop_End', 11: m + 'LeftArm', 12: m + 'LeftForeArm',
      13: m + 'LeftHand', 14: m + 'RightArm', 15: m + 'RightForeArm', 16: m + 'RightHand'}
  unprefixed = _renamed(_mixamo(), lambda n: n.replace('mixamorig:', ''))
  assert _infer(unprefixed, tmp_path).rig == 'mixamo'  # told from HumanIK by HeadTop_End
  daz = _infer(_daz_genesis8(), tmp_path)
  assert (daz.rig, daz.label, daz.unplaced) == ('daz', 'Daz Genesis', [])
  described = mocap_rigs.describe_map(daz.joint_map)
  assert described['left_hip'] == 'lThighBend' and described['right_knee'] == 'rShin'
  assert described['left_shoulder'] == 'lShldrBend'  # not lCollar, not the twist bone
  assert described['left_elbow'] == 'lForearmBend' and described['left_wrist'] == 'lHand'
  assert described['thorax'] == 'neckLower' and described['head_top'] == 'head_end'
  assert described['spine'] == 'mean of lThighBend, rThighBend, neckLower x2'


_SMPL_NAMES = {'Hips': 'Pelvis', 'UpLeg': 'Hip', 'Leg': 'Knee', 'Foot': 'Ankle',
               'Shoulder': 'Collar', 'Arm': 'Shoulder', 'ForeArm': 'Elbow', 'Hand': 'Wrist'}


def _smpl_name(mixamo_name: str) -> str:
  """'mixamorig:LeftForeArm' -> 'L_Elbow'; joints SMPL lacks keep their Mixamo name."""
  name = mixamo_name.replace('mixamorig:', '')
  for side in ('Left', 'Right'):
    if name.startswith(side) and name[len(side):] in _SMPL_NAMES:
      return f'{side[0]}_{_SMPL_NAMES[name[len(side):]]}'
  return _SMPL_NAMES.get(name, name)


def _rokoko_name(mixamo_name: str) -> str:
  name = mixamo_name.replace('mixamorig:', '')
  return name.replace('UpLeg', 'Thigh') if 'UpLeg' in name else name.replace('Leg', 'Shin')


@pytest.mark.parametrize('rig, rename', [
    ('humanik', lambda n: n.replace('mixamorig:', 'Character1_').replace('HeadTop_End', 'HeadEnd')),
    ('rokoko', _rokoko_name),
    ('smpl', _smpl_name),
])
def test_other_conventions_are_recognised(tmp_path, rig, rename):
  inference = _infer(_renamed(_mixamo(), rename), tmp_path)
  assert (inference.rig, inference.unplaced) == (rig, [])
  if rig == 'smpl':  # the SMPL shoulder is the upper-arm root; its collar is the clavicle
    assert inference.joint_map[11] == 'L_Shoulder' and inference.joint_map[16] == 'R_Wrist'


# ----------------------------------------------------------------------------------- builds


def _clips(data_dir) -> np.ndarray:
  records = load_split('mocap', 'train', data_dir=data_dir)
  return np.stack([records[i]['joints3d'] for i in range(len(records))])


def _check_anatomy(clips: np.ndarray) -> None:
  """Left and right limbs within 10% of each other, thighs ~44 cm, head above the pelvis."""
  for limb, ((la, lb), (ra, rb)) in mocap_maps.LIMBS.items():
    left = np.linalg.norm(clips[..., la, :] - clips[..., lb, :], axis=-1)
    right = np.linalg.norm(clips[..., ra, :] - clips[..., rb, :], axis=-1)
    assert abs(left.mean() / right.mean() - 1) < 0.10, limb
  thigh = np.linalg.norm(clips[..., 4, :] - clips[..., 5, :], axis=-1) / mocap.MOTIONBERT_SCALE
  np.testing.assert_allclose(thigh, 0.44, rtol=0.02)  # centimetres were recognised
  # Camera-like units: y points down.
  height = -clips[..., 1]
  assert (height[..., 10] > height[..., 9]).all() and (height[..., 9] > height[..., 0]).all()
  assert (height[..., 0] > height[..., 3]).all() and (height[..., 0] > height[..., 6]).all()


@pytest.mark.parametrize('rig, joints, label', [
    ('mixamo', _mixamo(), 'Mixamo'), ('daz', _daz_genesis8(), 'Daz Genesis')])
def test_build_infers_the_map_and_reports_it(tmp_path, rig, joints, label):
  source = tmp_path / 'recordings'
  source.mkdir()
  write_bvh(source / f'{rig}_walk.bvh', joints)
  write_bvh(source / f'{rig}_sway.bvh', joints, seed=1)
  report = builder.build('mocap', source=source, data_dir=tmp_path / 'tfds', options=OPTIONS)
  clips = _clips(tmp_path / 'tfds')
  assert clips.shape == (6, CLIP_LEN, 17, 3)  # 30 frames: clips at 0, 9, 18 in each file
  _check_anatomy(clips)
  text = str(report)
  files = f'{rig}_sway.bvh, {rig}_walk.bvh'
  assert f'joint map ({label}, inferred from joint names) for {files}:' in text
  elbow = 'mixamorig:LeftForeArm' if rig == 'mixamo' else 'lForearmBend'
  assert f'left_elbow     <- {elbow}' in text
  saved = json.loads((tmp_path / 'tfds/mocap/1.0.0/build_report.json').read_text())
  assert saved['joint_maps'][0]['map']['left_elbow'] == elbow


def test_builtin_maps_come_first():
  names = [n for n in mocap_maps.map_names(mocap_maps.FAIR_BVH_MAP)]
  assert mocap_rigs.select_joint_map(names, [-1] * len(names), 'x.bvh')[0] == 'fair_bvh'


def test_unknown_rig_is_refused_naming_joints_and_template(tmp_path):
  joints = _renamed(_mixamo(), _nonsense_names(_mixamo()).get)
  path = write_bvh(tmp_path / 'nonsense.bvh', joints)
  with pytest.raises(mocap.JointMapError, match=r'nonsense\.bvh: no joint map fits: .*no known '
                     r'rig convention .*could not place these H36M joints: pelvis, right_hip, '
                     r'.*right_wrist\.') as error:
    mocap.load_h36m17(path)
  assert len(error.value.unplaced) == 17 and not error.value.partial


def test_template_map_filled_in_makes_the_build_succeed(tmp_path, capsys):
  """Legs named the Mixamo way, the rest nonsense: the build fails naming the joints it could
  not place and the template; the template (legs filled in) completed and passed rebuilds."""
  renames = _nonsense_names(_mixamo(), keep=lambda n: 'Leg' in n or 'Foot' in n)
  joints = _renamed(_mixamo(), renames.get)
  source = tmp_path / 'recordings'
  source.mkdir()
  write_bvh(source / 'odd.bvh', joints)
  write_bvh(source / 'odd2.bvh', joints, seed=2)  # the same rig: one template for both
  data_dir = tmp_path / 'tfds'
  with pytest.raises(ValueError) as error:
    builder.build('mocap', source=source, data_dir=data_dir, options=OPTIONS)
  template = source / 'odd.joint_map.json'
  message = str(error.value)
  assert ('no joint map fits odd.bvh, odd2.bvh: could not place spine, thorax, nose, head_top, '
          in message)
  assert not (source / 'odd2.joint_map.json').exists()
  assert f'template map: {template} (fill in the nulls, then rebuild with --opt ' in message
  filled = json.loads(template.read_text())
  assert filled['left_knee'] == 'mixamorig:LeftLeg' and filled['thorax'] is None
  assert filled['pelvis'] == ['mixamorig:LeftUpLeg', 'mixamorig:RightUpLeg']
  assert filled['_joints_in_file'][0] == renames['mixamorig:Hips']
  before = template.read_text()
  with pytest.raises(ValueError):  # a second failing build keeps the (maybe edited) template
    builder.build('mocap', source=source, data_dir=data_dir, options=OPTIONS)
  assert template.read_text() == before

  with pytest.raises(ValueError, match=r'odd\.joint_map\.json: fill in spine, thorax, nose'):
    builder.build('mocap', source=source, data_dir=data_dir,
                  options=dict(OPTIONS, joint_map=str(template)))
  mixamo_map = _infer(_mixamo(), tmp_path).joint_map
  for i, joint in enumerate(mocap_maps.H36M_JOINTS):
    if filled[joint] is None:
      entry = mixamo_map[i]
      filled[joint] = renames[entry] if isinstance(entry, str) else [renames[n] for n in entry]
  template.write_text(json.dumps(filled))
  capsys.readouterr()
  options = [f'--opt={k}={v!r}' for k, v in OPTIONS.items()]
  status = build_cli.run(['mocap', '--source', str(source), '--data_dir', str(data_dir),
                          f'--opt=joint_map={template}', *options])  # a path, not a literal
  assert status == 0
  assert f'joint map (user map {template}) for odd.bvh, odd2.bvh:' in capsys.readouterr().out
  _check_anatomy(_clips(data_dir))


def test_user_map_file_errors_name_the_file(tmp_path):
  missing = tmp_path / 'nope.json'
  with pytest.raises(FileNotFoundError, match=r'nope\.json: no such file; expected a JSON'):
    mocap_rigs.read_user_map(missing)
  missing.write_text('{"pelvis": ')
  with pytest.raises(ValueError, match=r'nope\.json: not valid JSON'):
    mocap_rigs.read_user_map(missing)
  missing.write_text('{"belly": "Spine"}')
  with pytest.raises(ValueError, match=r"nope\.json: unknown key 'belly'; expected an H36M joint"):
    mocap_rigs.read_user_map(missing)
