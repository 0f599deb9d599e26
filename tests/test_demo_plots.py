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


def test_pictures_show_the_hop_where_it_moves_and_its_worst_frame(tmp_path):
  """On the demo's held-out clips (131_03_hop from 4 yaws): the clip and frames chosen move more
  than the first clip (frames 0-26, standing before the hop), and the worst frame is shown."""
  from mbjax.data import mocap, shipped, writer
  from mbjax.demo import config as demo_config
  config = demo_config.get_config()
  spec = dict(config.evals.lifting, data_dir=str(tmp_path))
  writer.build(mocap, source=shipped.assets_dir('mocap'), data_dir=tmp_path,
               options=dict(config.build.mocap_eval))
  held = plots._held_out(spec)
  gt = held['clips']  # spreads are compared, so any unit
  err = np.random.default_rng(0).uniform(0, 100, gt.shape[:2])
  chosen = plots.pick_frames(gt, err)
  stills = np.stack([gt[c, t] for c, t in chosen['stills']])
  first = plots.pose_spread(gt[0])
  assert len(chosen['stills']) == plots.STILLS
  assert plots.pose_spread(gt[chosen['clip']]) > 2 * first
  assert plots.pose_spread(stills) > 2 * first
  assert chosen['stills'][-1] == chosen['worst'] == np.unravel_index(err.argmax(), err.shape)
  window = plots._clip_window(held['yaws'], chosen['clip'])
  assert chosen['clip'] in window and len(set(held['yaws'][window])) == 1
  assert list(held['starts'][window]) == sorted(held['starts'][window])
