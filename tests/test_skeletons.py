"""Skeleton maps to H36M-17 (official coco2h36m, posetrack2h36m, halpe2h36m), by hand-made poses."""

import numpy as np
import pytest

from mbjax.data import skeletons


def _distinct_pose(channels=3):
  """(17, C): joint j holds (j, 100 + 2j, 0.01 + 0.05j) so every source joint is recognisable."""
  j = np.arange(17.0)
  cols = [j, 100 + 2 * j, 0.01 + 0.05 * j][:channels]
  return np.stack(cols, axis=-1)


def _halpe_pose():
  """(26, 3): Halpe joint j holds (j, 200 + 3j, 0.02 + 0.03j), so each is recognisable."""
  j = np.arange(26.0)
  return np.stack([j, 200 + 3 * j, 0.02 + 0.03 * j], axis=-1)


def test_coco_to_h36m_hand_made():
  x = _distinct_pose()
  y = skeletons.coco_to_h36m(x[None, None])[0, 0]  # leading (M, T) dims are kept
  mean = lambda a, b: (x[a] + x[b]) / 2
  expected = {0: mean(11, 12), 1: x[12], 2: x[14], 3: x[16], 4: x[11], 5: x[13], 6: x[15],
              8: mean(5, 6), 9: x[0], 10: mean(1, 2), 11: x[5], 12: x[7], 13: x[9], 14: x[6],
              15: x[8], 16: x[10]}
  expected[7] = (expected[0] + expected[8]) / 2
  for joint, value in expected.items():
    np.testing.assert_allclose(y[joint], value, rtol=0, atol=1e-12, err_msg=f'joint {joint}')
  assert y.dtype == np.float64
  # Two channels (the NTU x, y) work the same way.
  np.testing.assert_allclose(skeletons.coco_to_h36m(x[:, :2]), y[:, :2])
  with pytest.raises(ValueError, match='17'):
    skeletons.coco_to_h36m(np.zeros((5, 16, 2)))


def test_posetrack_to_h36m_hand_made():
  x = _distinct_pose()
  x[12, 2] = 0.003  # right hip less confident than left: the pelvis takes the minimum
  y = skeletons.posetrack_to_h36m(x[None])[0]
  mean = lambda a, b: (x[a] + x[b]) / 2
  expected = {0: mean(11, 12), 1: x[12], 2: x[14], 3: x[16], 4: x[11], 5: x[13], 6: x[15],
              8: x[1], 9: x[0], 10: x[2], 11: x[5], 12: x[7], 13: x[9], 14: x[6], 15: x[8],
              16: x[10]}
  expected[7] = (expected[0] + expected[8]) / 2
  expected[0][2] = 0.003
  expected[7][2] = min(0.003, x[1, 2])
  for joint, value in expected.items():
    np.testing.assert_allclose(y[joint], value, rtol=0, atol=1e-12, err_msg=f'joint {joint}')
  with pytest.raises(ValueError, match='17, 3'):
    skeletons.posetrack_to_h36m(np.zeros((4, 17, 2)))


def test_halpe_to_h36m_hand_made():
  x = _halpe_pose()
  y = skeletons.halpe_to_h36m(x[None, None])[0, 0]  # leading (M, T) dims are kept
  expected = {0: x[19], 1: x[12], 2: x[14], 3: x[16], 4: x[11], 5: x[13], 6: x[15],
              7: (x[18] + x[19]) / 2, 8: x[18], 9: x[0], 10: x[17], 11: x[5], 12: x[7], 13: x[9],
              14: x[6], 15: x[8], 16: x[10]}
  assert y.shape == (17, 3) and y.dtype == np.float64
  for joint, value in expected.items():
    np.testing.assert_allclose(y[joint], value, rtol=0, atol=1e-12, err_msg=f'joint {joint}')
  np.testing.assert_allclose(y[7, 2], (0.02 + 0.03 * 18 + 0.02 + 0.03 * 19) / 2)  # score averaged
  with pytest.raises(ValueError, match='26'):
    skeletons.halpe_to_h36m(np.zeros((4, 17, 3)))


def _numbered_pose(n):
  """(n, 3): joint j holds (j, 300 + 7j, 0.1 + 0.02j)."""
  j = np.arange(float(n))
  return np.stack([j, 300 + 7 * j, 0.1 + 0.02 * j], axis=-1)


@pytest.mark.parametrize('name,n,expected', [
    ('body25', 25, {0: (8,), 1: (9,), 2: (10,), 3: (11,), 4: (12,), 5: (13,), 6: (14,),
                    8: (1,), 9: (0,), 10: (15, 16), 11: (5,), 12: (6,), 13: (7,), 14: (2,),
                    15: (3,), 16: (4,)}),
    ('mediapipe', 33, {0: (23, 24), 1: (24,), 2: (26,), 3: (28,), 4: (23,), 5: (25,), 6: (27,),
                       8: (11, 12), 9: (0,), 10: (2, 5), 11: (11,), 12: (13,), 13: (15,),
                       14: (12,), 15: (14,), 16: (16,)}),
])
def test_body25_and_mediapipe_to_h36m_hand_made(name, n, expected):
  x = _numbered_pose(n)
  y = skeletons.to_h36m(x[None], name)[0]
  for joint, sources in expected.items():
    np.testing.assert_allclose(y[joint], x[list(sources)].mean(axis=0), atol=1e-12,
                               err_msg=f'{name} joint {joint}')
  np.testing.assert_allclose(y[7], (y[0] + y[8]) / 2, atol=1e-12)  # belly
  conf = x[:, 2].copy()
  conf[expected[0][0]] = 0  # a hip undetected: pelvis and belly are not detected
  detected = skeletons.h36m_detected(conf, name)
  assert not detected[0] and not detected[7] and detected[8] and detected[13]
  with pytest.raises(ValueError, match=str(n)):
    skeletons.to_h36m(np.zeros((2, 17, 3)), name)
