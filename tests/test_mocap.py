"""Mocap import: BVH and ASF/AMC parsing and kinematics, H36M-17 maps, MotionBERT units, clips."""

import filecmp
import pathlib

import numpy as np
import pytest

from mbjax.data import mocap
from mbjax.data import mocap_asfamc
from mbjax.data import mocap_bvh
from mbjax.data import mocap_maps
from mbjax.data import shipped
from mbjax.data.report import BuildReport

# file -> (frames, fps, built-in map, up axis), as recorded in shared/data/SOURCES.md.
REAL_FILES = {
    'cmu_bvh/131_01_walk.bvh': (994, 120.0, 'cmu_bvh', 'y'),
    'cmu_bvh/131_03_hop.bvh': (1102, 120.0, 'cmu_bvh', 'y'),
    'cmu_bvh/jumping_jacks.bvh': (125, 30.0, 'cmu_bvh', 'y'),
    'cmu_asfamc/11_01.amc': (597, 120.0, 'cmu_asf', 'y'),
    'fair_bvh/dab.bvh': (339, 30.0, 'fair_bvh', 'z'),
    'fair_bvh/jumping.bvh': (654, 120.0, 'fair_bvh', 'z'),
}
CMU_UNIT_M = 0.0254 / 0.45
ASSETS = shipped.CHECKOUT_ASSETS / 'mocap'


@pytest.fixture(scope='module')
def mocap_dir(shared_data_dir) -> pathlib.Path:
  return shared_data_dir / 'mocap'


@pytest.fixture(scope='module')
def real(mocap_dir) -> dict:
  """Each real file parsed once: name -> (raw MocapMotion, H36M-17 metres Z-up, fps)."""
  out = {}
  for name in REAL_FILES:
    positions, fps = mocap.load_h36m17(mocap_dir / name)
    out[name] = (mocap.read_mocap(mocap_dir / name), positions, fps)
  return out


def _lengths(positions, a, b):
  return np.linalg.norm(positions[:, a] - positions[:, b], axis=-1)


# ---------------------------------------------------------------------------------- real recordings


@pytest.mark.parametrize('name', list(REAL_FILES))
def test_real_file_imports_with_plausible_anatomy(real, name):
  frames, fps_expected, _, _ = REAL_FILES[name]
  _, positions, fps = real[name]
  assert positions.shape == (frames, 17, 3)
  assert fps == fps_expected
  assert np.isfinite(positions).all()
  for limb, ((la, lb), (ra, rb)) in mocap_maps.LIMBS.items():
    left, right = _lengths(positions, la, lb), _lengths(positions, ra, rb)
    # Rigid skeletons: a bone keeps its length in every frame.
    assert left.std() < 1e-6 and right.std() < 1e-6, limb
    assert abs(left.mean() / right.mean() - 1) < 0.10, (limb, left.mean(), right.mean())
  for a, b in mocap_maps.LIMBS['thigh']:
    assert 0.3 < _lengths(positions, a, b).mean() < 0.55
  height = positions[..., 2].mean(axis=0)  # Z-up
  assert height[10] > height[0] > max(height[3], height[6])
  assert 1.2 < height[10] - min(height[3], height[6]) < 2.0  # head top over ankles, metres


@pytest.mark.parametrize('name', list(REAL_FILES))
def test_real_file_map_up_axis_and_unit_detected(real, name):
  motion, _, _ = real[name]
  _, _, map_expected, up_expected = REAL_FILES[name]
  map_name, joint_map = mocap_maps.select_joint_map(motion.names, name)
  assert map_name == map_expected
  rest = mocap_maps.to_h36m17(motion.names, motion.rest, joint_map)
  assert mocap_maps.detect_up_axis(rest, name) == up_expected
  unit, metres = mocap_maps.guess_metres_per_unit(rest)
  if map_expected.startswith('cmu'):  # CMU BVH conversions keep the ASF unit of 1/0.45 inch
    assert unit.startswith('CMU') and metres == pytest.approx(CMU_UNIT_M)
  else:  # FAIR files use no standard unit (about 4 cm): sized to adult limbs
    assert unit.startswith('scaled') and 0.035 < metres < 0.045
  if name.endswith('.amc'):
    assert motion.metres_per_unit == pytest.approx(CMU_UNIT_M)  # from the ASF :units


@pytest.mark.parametrize('name', list(REAL_FILES))
def test_real_file_knees_bend_forward_and_body_is_not_mirrored(real, name):
  """Checks the Euler conventions: wrong orders or a missing ASF axis conjugation bend knees
  sideways or backwards, and a mirrored body walks backwards."""
  _, p, fps = real[name]
  left_minus_right = p[:, 4] - p[:, 1]
  facing = np.cross(left_minus_right, [0.0, 0.0, 1.0])  # right-handed body: forward = (L - R) x up
  facing /= np.linalg.norm(facing, axis=-1, keepdims=True)
  for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
    bend = p[:, knee] - 0.5 * (p[:, hip] + p[:, ankle])
    bent = np.linalg.norm(bend, axis=-1) > 0.05
    assert bent.sum() > 10
    forward = np.einsum('tc,tc->t', bend[bent], facing[bent])
    assert np.mean(forward > 0) > 0.9
  # Where the pelvis moves, it mostly moves the way the body faces (a mirrored body would walk
  # backwards). Velocity over half a second; the dances (jumping jacks, dab) barely move.
  half = int(fps / 4)
  velocity = (p[2 * half:, 0, :2] - p[:-2 * half, 0, :2]) * fps / (2 * half)
  speed = np.linalg.norm(velocity, axis=-1)
  moving = speed > 0.3
  if moving.sum() >= 100:
    cosine = np.einsum('tc,tc->t', velocity, facing[half:-half, :2])[moving] / speed[moving]
    assert cosine.mean() > 0.3


def test_assets_are_the_shared_recordings(mocap_dir):
  for name in list(REAL_FILES) + ['cmu_asfamc/11.asf']:
    assert filecmp.cmp(ASSETS / name, mocap_dir / name, shallow=False), name
  sources = (ASSETS / 'SOURCES.md').read_text()
  assert ('The data used in this project was obtained from mocap.cs.cmu.edu.' in sources and
          'NSF EIA-0196217' in sources and 'fairmotion @ e400e56' in sources)


# ----------------------------------------------------------------------- hand-checked kinematics

TINY_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Yrotation Xrotation Zrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
}
MOTION
Frames: 4
Frame Time: 0.02
1 2 3 0 0 0 0 0 0
1 2 3 90 0 0 0 0 0
1 2 3 90 90 0 0 0 0
1 2 3 0 0 0 90 90 0
"""


def test_bvh_forward_kinematics_by_hand(tmp_path):
  path = tmp_path / 'tiny.bvh'
  path.write_text(TINY_BVH)
  motion = mocap_bvh.read_bvh(path)
  assert motion.names == ['Hips', 'Chest', 'Chest_end']
  assert motion.fps == 50.0 and motion.metres_per_unit is None
  np.testing.assert_allclose(motion.rest, [[0, 0, 0], [0, 10, 0], [0, 15, 0]], atol=1e-12)
  expected = [
      [[1, 2, 3], [1, 12, 3], [1, 17, 3]],  # rest pose moved to the root position
      [[1, 2, 3], [-9, 2, 3], [-14, 2, 3]],  # Rz(90) turns +y into -x
      # Root 'Zrotation Xrotation Yrotation' = Rz @ Rx @ Ry: Rx(90) takes +y to +z, Rz keeps it
      # (the other order, Rx @ Rz, would give -x).
      [[1, 2, 3], [1, 2, 13], [1, 2, 18]],
      # Chest 'Yrotation Xrotation Zrotation' = Ry @ Rx @ Rz: +y -> +z -> +x (not +z).
      [[1, 2, 3], [1, 12, 3], [6, 12, 3]],
  ]
  np.testing.assert_allclose(motion.positions, expected, atol=1e-9)


def test_bvh_six_channels_on_every_joint(tmp_path):
  text = TINY_BVH.replace(
      'CHANNELS 3 Yrotation Xrotation Zrotation',
      'CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation')
  lines = text.splitlines()[:-4] + ['0 0 0 0 0 0 0 10 0 0 0 0',  # child positions = its offset
                                    '0 0 0 0 0 0 0 4 0 90 0 0']  # they replace it; Rz on child
  lines[lines.index('Frames: 4')] = 'Frames: 2'
  path = tmp_path / 'six.bvh'
  path.write_text('\n'.join(lines) + '\n')
  positions = mocap_bvh.read_bvh(path).positions
  np.testing.assert_allclose(positions[0], [[0, 0, 0], [0, 10, 0], [0, 15, 0]], atol=1e-9)
  np.testing.assert_allclose(positions[1], [[0, 0, 0], [0, 4, 0], [-5, 4, 0]], atol=1e-9)


TINY_ASF = """# a two-bone arm
:version 1.10
:name TEST
:units
  mass 1.0
  length 0.45
  angle deg
:documentation
  hand-checked forward kinematics
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name a
     direction 0 1 0
     length 2
     axis 0 0 0 XYZ
    dof rx ry rz
    limits (-180.0 180.0)
           (-180.0 180.0)
           (-180.0 180.0)
  end
  begin
     id 2
     name b
     direction 1 0 0
     length 1
     axis 0 0 90 XYZ
    dof rx
    limits (-180.0 180.0)
  end
:hierarchy
  begin
    root a
    a b
  end
"""
TINY_AMC_FRAMES = [
    # (root TX TY TZ RX RY RZ, a rx ry rz, b rx) -> expected ends of root, a, b
    ('0 0 0 0 0 0', '0 0 0', '0', [[0, 0, 0], [0, 2, 0], [1, 2, 0]]),
    # a: Rz(90) takes +y to -x; b inherits it: +x -> +y.
    ('0 0 0 0 0 0', '0 0 90', '0', [[0, 0, 0], [-2, 0, 0], [-2, 1, 0]]),
    # b: C @ Rx(90) @ C^-1 with C = Rz(90) is a 90 degree turn about C x = +y: +x -> -z.
    ('0 0 0 0 0 0', '0 0 0', '90', [[0, 0, 0], [0, 2, 0], [0, 2, -1]]),
    # Root translation and Rx(90): +y -> +z, +x stays.
    ('1 2 3 90 0 0', '0 0 0', '0', [[1, 2, 3], [1, 2, 5], [2, 2, 5]]),
    # a: 'rx ry rz' about fixed axes = Ry @ Rx: +y -> +z -> +x; b: +x -> +x -> -z.
    ('0 0 0 0 0 0', '90 90 0', '0', [[0, 0, 0], [2, 0, 0], [2, 0, -1]]),
]


def _write_tiny_asf_amc(folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  asf, amc = folder / '7.asf', folder / '7_01.amc'
  asf.write_text(TINY_ASF)
  lines = [':FULLY-SPECIFIED', ':DEGREES']
  for i, (root, a, b, _) in enumerate(TINY_AMC_FRAMES, start=1):
    lines += [str(i), f'root {root}', f'a {a}', f'b {b}']
  amc.write_text('\n'.join(lines) + '\n')
  return asf, amc


def test_asf_amc_forward_kinematics_by_hand(tmp_path):
  asf, amc = _write_tiny_asf_amc(tmp_path)
  assert mocap_asfamc.find_asf(amc) == asf
  motion = mocap_asfamc.read_asf_amc(asf, amc)
  assert motion.names == ['root', 'a', 'b']
  assert motion.fps == 120.0 and motion.metres_per_unit == pytest.approx(CMU_UNIT_M)
  np.testing.assert_allclose(motion.rest, TINY_AMC_FRAMES[0][3], atol=1e-12)
  np.testing.assert_allclose(motion.positions, [f[3] for f in TINY_AMC_FRAMES], atol=1e-9)


# ------------------------------------------------------------------------ MotionBERT convention


def test_to_motionbert_axes_scale_and_yaw():
  point = np.array([1.0, 2.0, 3.0])
  np.testing.assert_allclose(mocap.to_motionbert(point), [0.298, -0.894, 0.596], atol=1e-12)
  # Yaw 90 (counter-clockwise from above): world +x -> +y, i.e. depth; world +y -> -x.
  np.testing.assert_allclose(mocap.to_motionbert([1.0, 0, 0], 90.0), [0, 0, 0.298], atol=1e-12)
  np.testing.assert_allclose(mocap.to_motionbert([0, 1.0, 0], 90.0), [-0.298, 0, 0], atol=1e-12)
  np.testing.assert_allclose(mocap.to_motionbert([0, 0, 1.0], 90.0), [0, -0.298, 0], atol=1e-12)


def test_to_motionbert_on_real_motion(real):
  _, positions, _ = real['cmu_bvh/131_01_walk.bvh']
  clip = mocap.to_motionbert(positions[:243])
  assert clip[:, 10, 1].mean() < clip[:, 0, 1].mean() < clip[:, [3, 6], 1].mean()  # y down
  np.testing.assert_allclose(np.linalg.norm(clip, axis=-1),
                             0.298 * np.linalg.norm(positions[:243], axis=-1), rtol=1e-12)
  turned = mocap.to_motionbert(positions[:243], 90.0)
  np.testing.assert_allclose(turned[..., 0], -clip[..., 2], atol=1e-12)
  np.testing.assert_allclose(turned[..., 1], clip[..., 1], atol=1e-12)
  np.testing.assert_allclose(turned[..., 2], clip[..., 0], atol=1e-12)


def test_resample():
  ramp = np.arange(994, dtype=np.float64)[:, None] / 120.0  # time in seconds at 120 fps
  out = mocap.resample(ramp, 120.0, 50.0)
  assert out.shape == (414, 1)  # floor(993 * 50 / 120) + 1
  np.testing.assert_allclose(out[:, 0], np.arange(414) / 50.0, atol=1e-12)
  stretched = mocap.resample_to_length(ramp[:207], 243)
  assert stretched.shape == (243, 1)
  np.testing.assert_allclose(stretched[[0, -1], 0], [0, 206 / 120.0])
  assert mocap.clip_starts(414) == [0, 81, 162]
  assert mocap.clip_starts(242) == [] and mocap.clip_starts(243) == [0]


# ------------------------------------------------------------------------- maps and bad input


def _renamed_jumping_jacks(mocap_dir, folder: pathlib.Path) -> pathlib.Path:
  """jumping_jacks.bvh with every joint renamed 'x_<name>'."""
  text = (mocap_dir / 'cmu_bvh/jumping_jacks.bvh').read_text()
  text = text.replace('ROOT ', 'ROOT x_').replace('JOINT ', 'JOINT x_')
  path = folder / 'renamed.bvh'
  path.write_text(text)
  return path


def test_unknown_skeleton_lists_joints_and_user_map_works(mocap_dir, tmp_path, real):
  path = _renamed_jumping_jacks(mocap_dir, tmp_path)
  with pytest.raises(mocap.JointMapError, match=r'renamed\.bvh.*x_LeftKnee.*x_RThumb'):
    mocap.load_h36m17(path)
  user_map = {k: ([f'x_{n}' for n in v] if isinstance(v, tuple) else f'x_{v}')
              for k, v in mocap_maps.CMU_BVH_MAP.items()}
  positions, fps = mocap.load_h36m17(path, joint_map=user_map)
  np.testing.assert_allclose(positions, real['cmu_bvh/jumping_jacks.bvh'][1], atol=1e-12)
  assert fps == 30.0
  with pytest.raises(mocap.JointMapError, match='x_Nope'):
    mocap.load_h36m17(path, joint_map={**user_map, 3: 'x_Nope'})
  with pytest.raises(ValueError, match='0..16'):
    mocap.load_h36m17(path, joint_map={k: v for k, v in user_map.items() if k != 9})


def _jumping_jacks_lines(mocap_dir) -> list[str]:
  return (mocap_dir / 'cmu_bvh/jumping_jacks.bvh').read_text().splitlines()


def test_bad_bvh_raises_naming_file_and_line(mocap_dir, tmp_path):
  lines = _jumping_jacks_lines(mocap_dir)
  frames_at = next(i for i, line in enumerate(lines) if line.startswith('Frames:')) + 3  # 1-based
  path = tmp_path / 'bad.bvh'

  path.write_text('\n'.join(lines[:-3]) + '\n')
  with pytest.raises(ValueError, match=r'bad\.bvh: truncated: "Frames: 125" but only 122'):
    mocap_bvh.read_bvh(path)

  broken = list(lines)
  broken[frames_at + 9] = broken[frames_at + 9].replace('0.0000', 'nan', 1)  # frame 10
  path.write_text('\n'.join(broken) + '\n')
  with pytest.raises(ValueError, match=rf'bad\.bvh: line {frames_at + 10} \(frame 10\): NaN'):
    mocap_bvh.read_bvh(path)

  broken = list(lines)
  broken[frames_at + 3] = broken[frames_at + 3].rsplit(' ', 1)[0]  # frame 4 loses a value
  path.write_text('\n'.join(broken) + '\n')
  with pytest.raises(ValueError, match=rf'bad\.bvh: line {frames_at + 4} \(frame 4\): expected '
                                       r'\d+ channel values, found'):
    mocap_bvh.read_bvh(path)

  path.write_text('\n'.join(lines[:lines.index('MOTION') - 3]) + '\n')  # cut inside HIERARCHY
  with pytest.raises(ValueError, match=r'bad\.bvh: no MOTION line'):
    mocap_bvh.read_bvh(path)


def test_channel_count_that_differs_from_the_names_says_so(tmp_path):
  """`CHANNELS 6` with 5 names used to read the next keyword as a channel (unknown channel
  'JOINT'), and `CHANNELS 3` with 6 names a channel as a keyword (unexpected 'Zrotation')."""
  path = tmp_path / 'count.bvh'
  names = 'Xposition Yposition Zposition Zrotation Xrotation Yrotation'
  for declared, given, wrong in ((6, names.rsplit(' ', 1)[0], '5 given'), (3, names, '6 given')):
    path.write_text(TINY_BVH.replace(f'CHANNELS 6 {names}', f'CHANNELS {declared} {given}'))
    with pytest.raises(ValueError, match=rf'count\.bvh: line 5: CHANNELS {declared} declared, '
                                         rf'{wrong} \(Xposition '):
      mocap_bvh.read_bvh(path)
  path.write_text(TINY_BVH.replace('Xrotation Yrotation\n', 'Xrotation Wrotation\n', 1))
  with pytest.raises(ValueError, match=r"line 5: unknown channel 'Wrotation'"):
    mocap_bvh.read_bvh(path)


def test_bad_amc_raises_naming_file_and_frame(mocap_dir, tmp_path):
  (tmp_path / '11.asf').write_bytes((mocap_dir / 'cmu_asfamc/11.asf').read_bytes())
  lines = (mocap_dir / 'cmu_asfamc/11_01.amc').read_text().splitlines()
  amc = tmp_path / '11_01.amc'

  amc.write_text('\n'.join(lines[:-5]) + '\n')  # the last frame loses its last 5 bones
  with pytest.raises(ValueError, match=r"11_01\.amc: frame 597 .* lacks bones \['lfemur'"):
    mocap.load_h36m17(amc)

  broken = list(lines)
  at = broken.index('2') + 3  # frame 2, upperback
  broken[at] = 'upperback 2.05945 inf -1.3243'
  amc.write_text('\n'.join(broken) + '\n')
  with pytest.raises(ValueError, match=rf'11_01\.amc: line {at + 1} \(frame 2\): NaN or Inf'):
    mocap.load_h36m17(amc)

  broken[at] = 'upperback 2.05945 -1.3243'
  amc.write_text('\n'.join(broken) + '\n')
  with pytest.raises(ValueError, match=r"line \d+ \(frame 2\): bone 'upperback' needs 3 values"):
    mocap.load_h36m17(amc)


# ---------------------------------------------------------------------------------- generate()


def test_generate_real_folder(mocap_dir):
  clips_per_file = {  # 50 fps lengths: 414, 459, 207 (stretched), 249, 564, 273 frames
      '131_01_walk': 3, '131_03_hop': 3, 'jumping_jacks': 1, '11_01': 1, 'dab': 4, 'jumping': 1}
  yaws = (0.0, 90.0)
  keys = []
  for split in mocap.SPLITS:
    report = BuildReport(mocap.NAME)
    examples = list(mocap.generate(mocap_dir, split, report, yaws=yaws))
    keys += [k for k, _ in examples]
    sources = [e['source'] for _, e in examples]
    expected = {s: n * len(yaws) for s, n in clips_per_file.items()
                if (s == '131_03_hop') == (split == 'test')}
    assert {s: sources.count(s) for s in set(sources)} == expected
    assert report.as_dict()['splits'][split] == {'written': sum(expected.values()), 'skipped': {}}
    for _, example in examples:
      for feature, (shape, dtype) in mocap.FEATURES.items():
        value = example[feature]
        if dtype == 'str':
          assert isinstance(value, str)
        else:
          assert value.shape == shape and value.dtype == np.dtype(dtype), feature
      assert np.isfinite(example['joints3d']).all()
    by_key = dict(examples)
    if split == 'train':
      walk = [e['start_frame'] for e in by_key.values()
              if e['source'] == '131_01_walk' and e['yaw'] == 0]
      assert walk == [0, 81, 162]
      zero = by_key['cmu_bvh/131_01_walk.bvh:yaw0:81']['joints3d']
      turned = by_key['cmu_bvh/131_01_walk.bvh:yaw90:81']['joints3d']
      np.testing.assert_allclose(turned[..., 0], -zero[..., 2], atol=1e-5)
      positions, _ = mocap.load_h36m17(mocap_dir / 'cmu_bvh/131_01_walk.bvh', fps=50.0)
      np.testing.assert_allclose(zero, mocap.to_motionbert(positions[81:324]), atol=1e-6)
  assert len(keys) == len(set(keys)) == 26


def _synthetic_bvh(mocap_dir, path: pathlib.Path, n_frames: int) -> None:
  """A 50 fps BVH of n_frames on the CMU skeleton (jumping_jacks frames, cycled)."""
  lines = _jumping_jacks_lines(mocap_dir)
  header = lines[:lines.index('MOTION') + 1]
  frames = [line for line in lines[lines.index('MOTION') + 3:] if line.strip()]
  body = [frames[i % len(frames)] for i in range(n_frames)]
  path.write_text('\n'.join(header + [f'Frames: {n_frames}', 'Frame Time: 0.02'] + body) + '\n')


def test_generate_clip_counts_skips_and_splits(mocap_dir, tmp_path):
  for n_frames in (500, 100, 60):
    _synthetic_bvh(mocap_dir, tmp_path / f'len{n_frames}.bvh', n_frames)
  _renamed_jumping_jacks(mocap_dir, tmp_path)
  (tmp_path / 'sub').mkdir()
  (tmp_path / 'sub' / 'garbled.bvh').write_bytes(b'HIERARCHY\n\xff\xfe\x00')
  _write_tiny_asf_amc(tmp_path / 'sub')  # a skeleton no built-in map fits
  (tmp_path / 'lonely').mkdir()
  (tmp_path / 'lonely' / '5_01.amc').write_text('1\nroot 0 0 0 0 0 0\n')  # no .asf beside it
  report = BuildReport(mocap.NAME)
  train = list(mocap.generate(tmp_path, 'train', report, test_files=('len100',), yaws=(0.0, 45.0)))
  report_test = BuildReport(mocap.NAME)
  test = list(mocap.generate(tmp_path, 'test', report_test, test_files=('len100',)))
  # 500 frames -> starts 0, 81, 162, 243 (243 + 243 <= 500), twice for two yaws.
  assert [k for k, _ in train] == [f'len500.bvh:yaw{y}:{s}' for y in ('0', '45')
                                   for s in (0, 81, 162, 243)]
  assert [k for k, _ in test] == ['len100.bvh:yaw0:0']  # 100 >= 243 // 3: stretched to 243
  first_last = mocap.load_h36m17(tmp_path / 'len100.bvh')[0][[0, -1]]
  np.testing.assert_allclose(test[0][1]['joints3d'][[0, -1]], mocap.to_motionbert(first_last),
                             atol=1e-6)
  assert report.as_dict()['splits'] == {'train': {'written': 8, 'skipped': {
      'too short after resampling': 1,  # len60.bvh
      'no joint map fits': 2,  # renamed.bvh, sub/7_01.amc
      'unreadable': 1,  # sub/garbled.bvh
      'no .asf skeleton for the .amc': 1,  # lonely/5_01.amc
  }}}
  assert report_test.as_dict()['splits'] == {'test': {'written': 1, 'skipped': {}}}
  with pytest.raises(ValueError, match='split'):
    next(mocap.generate(tmp_path, 'validation', report))
