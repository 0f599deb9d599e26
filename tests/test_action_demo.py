"""Action recognition on real motion: the shipped CMU / FAIR recordings (one label each), projected
to 2D from 8 yaws for training and tested from 2 yaws training never sees, through the action
demo's own path (clips as .npy files, the `actions` builder, configs/action_custom.py's recipe).

Chance is 1/6 = 16.7 %; the shortened run here must reach at least 40 % top-1 (the full demo,
python -m mbjax.demo --task action, reaches the README's figure)."""

import json
import os

import numpy as np
import pytest

from mbjax.data import mocap, shipped
from mbjax.demo import action_config, action_job

CHANCE = 100 / 6
WELL_ABOVE_CHANCE = 40.0


def test_projected_clips_are_the_recordings_seen_from_each_yaw(tmp_path):
  config = action_config.get_config()
  config.build.update(train_yaws=(0.0, 90.0), test_yaws=(45.0,), stride=60)
  counts = action_job.write_clips(tmp_path, shipped.assets_dir('mocap'), config.build)
  assert sorted(counts['train']) == sorted(action_job.LABELS.values())
  path = next(iter(mocap.motion_files(shipped.assets_dir('mocap'))))
  positions, _ = mocap.load_h36m17(path, fps=config.build.fps)
  label = action_job.LABELS[path.stem]
  clip = np.load(tmp_path / 'test' / label / f'{label}_yaw45_0060.npy')
  turned = mocap.to_motionbert(positions[60:60 + config.build.clip_len], 45.0)
  np.testing.assert_allclose(clip[..., :2], turned[..., :2] * action_job.PIXELS_PER_UNIT
                             + action_job.FRAME_SIZE / 2, rtol=1e-5, atol=1e-3)
  assert clip.shape == (config.build.clip_len, 17, 3) and np.all(clip[..., 2] == 1)
  assert counts['test'][label] * 2 == counts['train'][label]  # one test yaw, two train yaws


@pytest.mark.slow
def test_real_motion_classifier_beats_chance_on_unseen_yaws(tmp_path):
  config = action_config.get_config()
  config.build.update(stride=15, test_yaws=(22.5, 202.5))
  config.epochs = 6
  summary = action_job.run(str(tmp_path), config=config)
  with open(os.path.join(tmp_path, 'summary.json')) as f:
    assert json.load(f)['top1'] == summary['top1']
  assert summary['chance'] == pytest.approx(CHANCE)
  assert summary['top1'] >= WELL_ABOVE_CHANCE, summary
  assert os.path.isfile(summary['confusion_png'])
