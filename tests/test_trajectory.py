"""The root trajectory of mbjax.infer: a skeleton walking in metres, seen by a pinhole camera,
comes back from its 2D projection and its root-relative 3D at an arbitrary scale."""

import json

import numpy as np
import pytest

from mbjax.infer import model, pipeline, trajectory

SIZE = (1280, 720)
FOV = 60.0
# An upright H36M-17 figure in metres (x right, y down, z away from the camera), pelvis at 0.
REST = np.array([
    [0, 0, 0], [-.12, 0, 0], [-.12, .45, 0], [-.12, .88, 0], [.12, 0, 0], [.12, .45, .02],
    [.12, .88, 0], [0, -.25, 0], [0, -.5, 0], [0, -.6, -.08], [0, -.72, 0], [.2, -.48, 0],
    [.45, -.48, .05], [.68, -.45, 0], [-.2, -.48, 0], [-.45, -.48, 0], [-.68, -.5, .05]])


def _walk(frames=40):
  """(T, 17, 3) metres: the figure turning as it walks from the left to the right and away."""
  t = np.linspace(0, 1, frames)
  root = np.stack([-1.5 + 3 * t, 0.3 + 0 * t, 4 + 3 * t], axis=-1)
  yaw = np.deg2rad(40 * t)
  c, s = np.cos(yaw), np.sin(yaw)
  turn = np.stack([np.stack([c, 0 * c, s], -1), np.stack([0 * c, 1 + 0 * c, 0 * c], -1),
                   np.stack([-s, 0 * c, c], -1)], axis=-2)
  return np.einsum('tij,kj->tki', turn, REST) + root[:, None], root


def _project(points):
  focal = SIZE[0] / (2 * np.tan(np.deg2rad(FOV) / 2))
  uv = focal * points[..., :2] / points[..., 2:] + np.array(SIZE) / 2
  return np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], axis=-1)


def test_walk_comes_back_in_metres_at_any_pose_scale():
  joints, root = _walk()
  keypoints = _project(joints)
  height = trajectory.skeleton_height(joints - root[:, None])
  for units in (1.0, 250.0):  # the lifted pose comes at the model's own scale
    pose = (joints - root[:, None]) * units + 17.0  # offsets do not matter: root-relative
    found = trajectory.root_trajectory(keypoints, pose, SIZE, fov_deg=FOV, height_m=height)
    error = np.linalg.norm(found['root_m'] - root, axis=-1)
    assert error.max() < 1e-6, error  # the exact pose and camera: exact
    assert np.all(np.diff(found['root_m'][:, 2]) > 0)  # walking away
    np.testing.assert_allclose(found['joints3d_m'] - found['root_m'][:, None],
                               joints - root[:, None], atol=1e-5)


def test_assumptions_scale_as_documented():
  joints, root = _walk(5)
  keypoints, pose = _project(joints), joints - root[:, None]
  base = trajectory.root_trajectory(keypoints, pose, SIZE, fov_deg=FOV, height_m=1.7)
  taller = trajectory.root_trajectory(keypoints, pose, SIZE, fov_deg=FOV, height_m=3.4)
  np.testing.assert_allclose(taller['root_m'], 2 * base['root_m'], rtol=1e-5)
  wider = trajectory.root_trajectory(keypoints, pose, SIZE, fov_deg=90, height_m=1.7)
  assert np.all(wider['root_m'][:, 2] < base['root_m'][:, 2])  # a wider lens: nearer
  noisy = keypoints + np.random.default_rng(0).normal(0, 2, keypoints.shape) * [1, 1, 0]
  error = trajectory.root_trajectory(noisy, pose, SIZE, fov_deg=FOV, height_m=1.7)['root_m']
  assert np.abs(error - base['root_m']).max() < 0.2  # 2 px of detector noise: centimetres
  with pytest.raises(ValueError, match='--fov=0'):
    trajectory.root_trajectory(keypoints, pose, SIZE, fov_deg=0)


def test_cli_pipeline_writes_the_trajectory_and_needs_the_size(tmp_path):
  joints, _ = _walk(12)
  np.save(tmp_path / 'k.npy', _project(joints))
  lifter = model.Lifter(predict=lambda x: x, maxlen=9, rootrel=False, flip=False, gt_2d=False,
                        no_conf=False, config=None, source='stand-in')
  with pytest.raises(ValueError, match='--trajectory needs the frame size'):
    pipeline.prepare(pipeline.Request(input=str(tmp_path / 'k.npy'), skeleton='h36m',
                                      trajectory=True))
  request = pipeline.Request(input=str(tmp_path / 'k.npy'), skeleton='h36m', trajectory=True,
                             size=SIZE)
  pipeline.run(request, lifter, str(tmp_path / 'out'))
  with np.load(tmp_path / 'out' / 'results.npz') as z:
    assert z['0/root_m'].shape == (12, 3) and z['0/joints3d_m'].shape == (12, 17, 3)
  track = json.loads((tmp_path / 'out' / 'results.json').read_text())['tracks'][0]
  assert np.asarray(track['root_m']).shape == (12, 3)
