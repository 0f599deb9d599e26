"""The demo main job end to end, shortened: build, pretrain, evaluate, summary and pictures."""

import json
import os

import pytest

from mbjax import demo


def test_demo_runs_end_to_end(tmp_path):
  overrides = {'total_steps': 4, 'batch_size': 8, 'checkpoint.every_steps': 2,
               'model.dim_feat': 16, 'model.dim_rep': 16, 'model.depth': 1, 'model.num_heads': 2}
  summary = demo.run(str(tmp_path), overrides=overrides)
  assert summary['steps'] == 4
  on_disk = json.loads((tmp_path / 'summary.json').read_text())
  for key in ('mpjpe_mm', 'p_mpjpe_mm', 'baseline_mpjpe_mm', 'zero_depth_mpjpe_mm'):
    assert on_disk[key] == summary[key] and 0.0 < summary[key] < 1e4, key
  # The baselines do not depend on the model: the held-out clip from 4 yaws, 68 clips of 27 frames.
  assert summary['eval_frames'] == 68 * 27
  assert abs(summary['zero_depth_mpjpe_mm'] - 94.3) < 0.1
  assert abs(summary['baseline_mpjpe_mm'] - 166.9) < 0.1
  for kind in ('png', 'gif', 'losses'):
    assert os.path.getsize(summary['pictures'][kind]) > 1000, kind
  assert os.listdir(summary['checkpoint'])


def test_batch_that_does_not_split_over_the_mesh_fails_clearly(tmp_path):
  # conftest gives 8 fake devices: the default mesh puts all of them on the batch axis.
  with pytest.raises(ValueError, match='batch_size=4 does not split over the mesh'):
    demo.run(str(tmp_path), overrides={'total_steps': 1, 'batch_size': 4})
