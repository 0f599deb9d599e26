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
