"""mbjax.infer.bvh: written BVH files read back (mbjax.data.mocap_bvh) give the positions back."""

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mbjax.data import mocap_bvh, mocap_maps, skeletons
from mbjax.infer import bvh, model, pipeline

PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
# A rest skeleton in camera axes (x right, y down, z away), facing the camera, in metres.
REST_CAMERA = np.array([
    (0, 0, 0), (-0.12, 0.02, 0), (0, 0.42, 0.02), (0, 0.40, -0.03), (0.12, 0.02, 0.01),
    (0, 0.43, 0.01), (0, 0.41, -0.02), (0, -0.23, -0.02), (0, -0.25, 0.01), (0, -0.10, -0.08),
    (0, -0.12, 0.03), (0.15, 0.03, 0.01), (0.27, 0.05, 0), (0.25, 0.02, 0.05),
    (-0.16, 0.03, 0), (-0.28, 0.04, 0), (-0.24, 0.03, 0.04)])
HEIGHT_M = 1.7  # about the span of REST_CAMERA and of the synthetic motion
TOLERANCE = 1e-6  # of the skeleton height (1.3e-8 reached: the file's 6 decimals)


def _motion(frames=60, seed=0, stretch=None):
  """(T, 17, 3) camera-axes positions: REST_CAMERA under random smooth joint rotations, moving.

  stretch: None (constant bone lengths) or (T, 17) factors on each joint's bone.
  """
  rng = np.random.default_rng(seed)
  t = np.arange(frames)[:, None, None]
  amplitude = rng.uniform(0.2, 1.2, (1, 17, 3))
  speed, phase = rng.uniform(0.05, 0.2, (1, 17, 3)), rng.uniform(0, 6, (1, 17, 3))
  rotvec = amplitude * np.sin(speed * t + phase)
  local = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(frames, 17, 3, 3)
  offsets = np.broadcast_to(REST_CAMERA, (frames, 17, 3))
  if stretch is not None:
    offsets = offsets * stretch[..., None]
  world = np.zeros((frames, 17, 3, 3))
  pos = np.zeros((frames, 17, 3))
  world[:, 0] = local[:, 0]
  pos[:, 0] = np.stack([np.sin(0.1 * t[:, 0, 0]), 0.1 * t[:, 0, 0] / frames, 3 + 0.02 * t[:, 0, 0]],
                       axis=-1)
  for j in range(1, 17):
    p = PARENTS[j]
    pos[:, j] = pos[:, p] + np.einsum('tij,tj->ti', world[:, p], offsets[:, j])
    world[:, j] = world[:, p] @ local[:, j]
  return pos


def _read_back(path):
  """The written file through mocap_bvh: (parsed Bvh, (T, 17, 3) positions of the H36M joints)."""
  parsed = mocap_bvh.parse_bvh(path)
  names = [j.name for j in parsed.joints]
  index = [names.index(n) for n in skeletons.H36M_JOINTS]
  return parsed, mocap_bvh.forward_kinematics(parsed.joints, parsed.motion)[:, index]


def _bones(pos):
  return pos[:, 1:] - pos[:, np.array(PARENTS[1:])]


def test_round_trip_constant_bone_lengths(tmp_path):
  motion = _motion()
  path = bvh.write(tmp_path / 'walk.bvh', motion, fps=25, scale=100.0)  # metres -> cm
  _, back = _read_back(path)
  expected = bvh.to_bvh_axes(motion, 'camera', 100.0)
  error = np.abs(back - expected).max()
  assert error < TOLERANCE * HEIGHT_M * 100, error
  # Y is up: the head stays above the ankles although the camera's y points down.
  np.testing.assert_allclose(expected[0, 0], motion[0, 0] * [100, -100, -100])


def test_knees_and_elbows_only_bend(tmp_path):
  motion = _motion(seed=1)
  parsed, back = _read_back(bvh.write(tmp_path / 'a.bvh', motion, fps=30, axes='yup'))
  unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)
  bones = unit(_bones(back))
  for name, hinge, (upper, lower) in (('rknee', 0, (1, 2)), ('lknee', 0, (4, 5)),
                                      ('lelb', 1, (11, 12)), ('relb', 1, (14, 15))):
    bent = np.linalg.norm(np.cross(bones[:, upper], bones[:, lower]), axis=-1) > 0.1
    assert bent.sum() > 10
    joint = next(j for j in parsed.joints if j.name == name)
    assert joint.channels == ('Zrotation', 'Xrotation', 'Yrotation')
    angles = parsed.motion[:, joint.first_channel:joint.first_channel + 3]
    rotvec = Rotation.from_matrix(mocap_maps.intrinsic_euler('ZXY', np.deg2rad(angles))).as_rotvec()
    others = np.delete(rotvec[bent], hinge, axis=-1)
    assert np.abs(others).max() < 1e-4, (name, np.abs(others).max())  # no spin, one hinge axis


def test_varying_lengths_get_median_lengths(tmp_path):
  frames = 50
  rng = np.random.default_rng(2)
  t = np.arange(frames)[:, None]
  stretch = 1 + 0.05 * np.sin(rng.uniform(0.1, 0.5, (1, 17)) * t + rng.uniform(0, 6, (1, 17)))
  stretch[:, 4], stretch[:, 11] = stretch[:, 1], stretch[:, 14]  # hips, shoulders: one width each
  motion = bvh.to_bvh_axes(_motion(frames, seed=3, stretch=stretch), scale=100.0)  # cm
  parsed, back = _read_back(bvh.write(tmp_path / 'v.bvh', motion, fps=30, axes='yup'))
  lengths = np.linalg.norm(_bones(motion), axis=-1)
  median = np.median(lengths, axis=0)
  offsets = {j.name: j.offset for j in parsed.joints}
  written = [np.linalg.norm(offsets[n]) for n in skeletons.H36M_JOINTS[1:]]
  np.testing.assert_allclose(written, median, atol=1e-5)
  unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)
  np.testing.assert_allclose(unit(_bones(back)), unit(_bones(motion)), atol=1e-6)
  # Each joint is off by at most the length changes of the bones between it and the pelvis.
  slack = np.zeros((frames, 17))
  for j in range(1, 17):
    slack[:, j] = slack[:, PARENTS[j]] + np.abs(lengths[:, j - 1] - median[j - 1])
  assert (np.linalg.norm(back - motion, axis=-1) <= slack + 1e-5).all()
  assert np.abs(back - motion).max() > 1e-3  # the lengths did change


def test_file_layout(tmp_path):
  motion = _motion(frames=7)
  path = bvh.write(tmp_path / 'f.bvh', motion, fps=24, height=170.0)
  parsed, back = _read_back(path)
  assert parsed.motion.shape == (7, 6 + 16 * 3)
  assert parsed.frame_time == pytest.approx(1 / 24, abs=1e-8)
  assert parsed.joints[0].name == 'pelvis' and parsed.joints[0].channels == bvh.ROOT_CHANNELS
  text = (tmp_path / 'f.bvh').read_text().splitlines()
  at = text.index('MOTION')
  assert text[at + 1] == 'Frames: 7'
  assert [len(line.split()) for line in text[at + 3:]] == [54] * 7
  names = [j.name for j in parsed.joints]
  rest = mocap_bvh.forward_kinematics(parsed.joints)[0]
  rest = rest[[names.index(n) for n in skeletons.H36M_JOINTS]]
  assert rest[:, 1].max() - rest[:, 1].min() == pytest.approx(170.0, abs=1e-3)
  # The positions are the input in Y-up axes times one scale.
  expected = bvh.to_bvh_axes(motion)
  scale = np.sum(back * expected) / np.sum(expected * expected)
  assert 80 < scale < 120
  assert np.abs(back - scale * expected).max() < TOLERANCE * 170


def test_bad_input(tmp_path):
  with pytest.raises(ValueError, match=r'\(T, 17, 3\)'):
    bvh.write(tmp_path / 'x.bvh', np.zeros((5, 16, 3)), fps=30)
  with pytest.raises(ValueError, match='axes'):
    bvh.write(tmp_path / 'x.bvh', _motion(frames=3), fps=30, axes='zup')


def test_pipeline_writes_a_bvh_per_track(tmp_path):
  rng = np.random.default_rng(4)
  keypoints = np.concatenate([rng.uniform(100, 400, (12, 17, 2)), np.ones((12, 17, 1))], -1)
  np.save(tmp_path / 'k.npy', keypoints)
  # A stand-in model: any (B, t, 17, 3) -> (B, t, 17, 3) with distinct joints will do.
  lifter = model.Lifter(predict=lambda x: np.concatenate([x[..., :2], x[..., :1] * x[..., 1:2]],
                                                         axis=-1),
                        maxlen=9, rootrel=False, flip=False, gt_2d=False, no_conf=False,
                        config=None, source='stub')
  request = pipeline.Request(input=str(tmp_path / 'k.npy'), skeleton='coco', bvh=True, fps=25)
  summary = pipeline.run(request, lifter, str(tmp_path / 'out'))
  path = str(tmp_path / 'out' / 'track_0.bvh')
  assert summary['bvh'] == {'0': path} and summary['written']['bvh'] == [path]
  assert json.loads((tmp_path / 'out' / 'results.json').read_text())['bvh'] == {'0': path}
  parsed, back = _read_back(path)
  assert parsed.motion.shape == (12, 54) and parsed.frame_time == pytest.approx(0.04)
  with np.load(tmp_path / 'out' / 'results.npz') as z:
    joints3d = bvh.to_bvh_axes(z['0/joints3d'])
  unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)
  # Bones hanging from a one-child joint keep their direction exactly; the pelvis and neck
  # children only as well as one rotation fits this (non-rigid) output.
  exact = [j - 1 for j in range(1, 17) if PARENTS[j] not in (0, 8)]
  np.testing.assert_allclose(unit(_bones(back))[:, exact], unit(_bones(joints3d))[:, exact],
                             atol=1e-5)
