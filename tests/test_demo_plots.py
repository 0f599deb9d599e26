"""mbjax.demo.plots: the demo picture picks frames that show the motion."""

import numpy as np

from mbjax.demo import plots
from mbjax.infer import render


def test_motion_frames_pick_distinct_poses_not_near_copies():
  rest = np.asarray(render._STANDING)
  bent = rest.copy()
  bent[[2, 3, 5, 6], 1] *= 0.5  # a crouch
  up = rest.copy()
  up[[12, 13, 15, 16], 1] -= 0.6  # arms raised
  # 20 frames at rest, then one crouch, then 5 with arms up: three distinct poses.
  clip = np.stack([rest] * 20 + [bent] + [up] * 5)
  chosen = plots.motion_frames(clip, 3)
  assert chosen == sorted(chosen) and len(set(chosen)) == 3
  assert 20 in chosen  # the single crouch frame is not missed
  assert sum(t < 20 for t in chosen) == 1 and sum(t > 20 for t in chosen) == 1


def test_demo_rows_fill_the_png_with_front_and_side():
  tracks_2d, tracks_3d = render.synthetic_motion(9)
  gt = tracks_3d[0] / 400
  rows = list(plots._frames(tracks_2d[0] / 400, gt + 0.01, gt, [0, 4], None, size=128))
  assert len(rows) == 2 and rows[0].shape == (128, 3 * 128, 3)
  grey = (rows[0][:, 128:][..., None, :] == np.array(render.GREY)).all(-1).any(-1)
  blue = (rows[0][:, 128:][..., None, :] == np.array(plots.PRED_COLOURS)).all(-1).any(-1)
  assert grey.any() and blue.any()  # both the truth and the prediction are drawn
