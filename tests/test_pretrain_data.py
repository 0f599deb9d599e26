"""configs/pretrain.py -> the pretraining curriculum: what the official data pipeline feeds.

Sources are in-memory record lists put in place of the built datasets (`records.load_spec`).
"""

import numpy as np
import pytest

from configs import pretrain as pretrain_config
from mbjax.data import pipelines, records, transforms
from mbjax.evaluate import lifting
from mbjax.tasks import pretrain

T = 9


def _clips_3d(n, key, *, offset=0.0, seed=0, key_2d=None):
  """n clips of a body ~0.5 units tall (AMASS: metres x 0.298) at y = offset (a flip keeps y)."""
  rng = np.random.default_rng(seed)
  base = rng.normal(0, 0.15, (17, 3)) + [0.0, offset, 3.0]
  out = []
  for i in range(n):
    clip = (base + 0.01 * rng.standard_normal((T, 17, 3))).astype(np.float32)
    rec = {key: clip, 'id': np.array(i)}
    if key_2d:
      rec[key_2d] = np.concatenate([clip[..., :2] + 0.2, np.full((T, 17, 1), 0.7)], -1).astype(
          np.float32)
    out.append(rec)
  return out


def _clips_2d(n, seed=1):
  rng = np.random.default_rng(seed)
  return [{'joint_2d': np.concatenate([rng.uniform(100, 400, (T, 17, 2)),
                                       rng.uniform(0.2, 1.0, (T, 17, 1))], -1).astype(np.float32)}
          for _ in range(n)]


@pytest.fixture
def sources(monkeypatch):
  """name -> record list, served by `records.load_spec`."""
  table = {'amass': _clips_3d(12, 'joints3d', offset=10.0),
           'h36m': _clips_3d(12, 'joint_3d', offset=-10.0, seed=2, key_2d='joint_2d'),
           'posetrack': _clips_2d(8)}
  monkeypatch.setattr(records, 'load_spec', lambda spec, data_dir: table[spec['name']])
  return table


def _config(*, clean=True, **fields):
  """configs/pretrain.py:tiny on the fake sources; `clean`: no noise and no masks."""
  c = pretrain_config.get_config('tiny')
  c.batch_size = 4
  c.epochs = 2
  c.curriculum_3d_epochs = 1
  c.data.sources_2d = [dict(name='posetrack', split='train', key='joint_2d', noise=True)]
  if clean:
    c.augment.update(noise=False, mask_ratio=0.0, mask_t_ratio=0.0)
  for name, value in fields.items():
    target, _, leaf = name.rpartition('.')
    (c.get(target) if target else c)[leaf] = value
  return c


def _example(curriculum, kind, seed=0):
  """The example of the first record of the first phase of `kind` (as the trainer reads it)."""
  phase = next(p for p in curriculum.phases if p.kind == kind)
  return phase.make_example(phase.source[0], np.random.default_rng(seed))


def _unflipped(x, stored):
  """x, or its mirror image, whichever equals `stored` (a flip may have been drawn)."""
  return x if np.allclose(x, stored, atol=1e-6) else transforms.flip_pose(x)


def _spread(xy):
  return float(np.ptp(xy[..., 0]) + np.ptp(xy[..., 1]))


def test_3d_clips_keep_their_stored_scale_by_default(sources):
  """Official `Augmenter3D` crop-scales only with `scale_range_pretrain`, which no config sets."""
  rec = sources['amass'][0]
  stored = rec['joints3d']
  ex = _example(pretrain.make_curriculum(_config()), '3d')
  xy = _unflipped(ex['input'][..., :2], stored[..., :2])
  np.testing.assert_allclose(xy, stored[..., :2], atol=1e-6)
  np.testing.assert_array_equal(ex['input'][..., 2], 1.0)
  rel = stored - stored[:, :1]
  np.testing.assert_allclose(_unflipped(ex['target'], rel), rel, atol=1e-6)
  # scale_range_3d set: crop-scaled to [-1, 1] as before, several times the stored spread.
  config = _config(**{'augment.scale_range_3d': (1, 1)})
  cropped = _example(pretrain.make_curriculum(config), '3d')
  assert np.abs(cropped['input'][..., :2]).max() == pytest.approx(1.0, abs=1e-5)
  assert _spread(cropped['input'][..., :2]) > 2 * _spread(stored[..., :2])


def test_2d_targets_are_root_relative_with_rootrel(sources):
  """Official train.py subtracts the root from every batch's target when `rootrel`."""
  ex = _example(pretrain.make_curriculum(_config()), '2d')
  np.testing.assert_array_equal(ex['target'][:, 0], 0.0)
  assert pretrain_config.get_config('tiny').rootrel  # official MB_pretrain
  clean = ex['target'][..., :2] + ex['input'][:, :1, :2]  # no noise: input = clean 2D
  np.testing.assert_allclose(clean, ex['input'][..., :2], atol=1e-5)
  absolute = _example(pretrain.make_curriculum(_config(rootrel=False)), '2d')
  np.testing.assert_allclose(absolute['target'][..., :2], absolute['input'][..., :2])
  assert np.abs(absolute['target'][:, 0, :2]).min() > 0


def test_3d_targets_without_rootrel_put_the_first_root_at_depth_0(sources):
  """Official train.py with rootrel False: `batch_gt[..., 2] -= batch_gt[:, 0:1, 0:1, 2]`."""
  stored = sources['amass'][0]['joints3d'].astype(np.float64)
  ex = _example(pretrain.make_curriculum(_config(rootrel=False)), '3d')
  want = np.concatenate([stored[..., :2], stored[..., 2:] - stored[0, 0, 2]], axis=-1)
  np.testing.assert_allclose(_unflipped(ex['target'], want), want, atol=1e-6)
  assert ex['target'][0, 0, 2] == 0.0 and np.abs(ex['target'][1:, 0, 2]).max() > 0
  assert ex['target'][..., 1].mean() > 9  # y as stored (the AMASS clips sit at y ~ +10)


def _source_of(batch):
  """'a' (AMASS, y ~ +10) or 'h' (H36M, y ~ -10) per clip, from the input's root y."""
  return ''.join('a' if y > 0 else 'h' for y in batch['input'][:, 0, 0, 1])


def test_all_3d_sources_are_one_shuffled_phase(sources):
  """AMASS (`joints3d`) and H36M (`joint_3d`) mix in one phase, as one official ConcatDataset."""
  c = pretrain.make_curriculum(_config(epochs=1))
  phases_3d = [p for p in c.phases if p.kind == '3d']
  assert [(p.name, len(p.source)) for p in phases_3d] == [('amass+h36m', 24)]
  hb = pipelines.HostBatches(c, seed=0)
  order = ''.join(_source_of(hb[s]) for s in range(c.total_steps))
  assert sorted(order) == sorted('a' * 12 + 'h' * 12)
  assert any(len(set(_source_of(hb[s]))) == 2 for s in range(c.total_steps)), order


def test_3d_sources_with_different_clip_lengths_fail_clearly(sources):
  sources['h36m'] = [{'joint_3d': r['joint_3d'][:5]} for r in sources['h36m']]
  with pytest.raises(ValueError, match='one phase, so their clips need one length'):
    pretrain.make_curriculum(_config())


def test_synthetic_false_takes_the_stored_2d(sources):
  """Official `synthetic: False`: 3D sources feed their stored 2D (H36M's detections)."""
  c = _config(synthetic=False)
  c.data.sources_3d = [s for s in c.data.sources_3d if s['name'] == 'h36m']
  rec = sources['h36m'][0]
  ex = _example(pretrain.make_curriculum(c), '3d')
  stored = rec['joint_2d']
  flipped = not np.allclose(ex['input'], stored)
  np.testing.assert_allclose(transforms.flip_pose(ex['input']) if flipped else ex['input'], stored)
  gt = transforms.flip_pose(rec['joint_3d']) if flipped else rec['joint_3d']
  np.testing.assert_allclose(ex['target'], gt - gt[:, :1], atol=1e-6)  # flipped together
  # gt_2d (official: synthetic or gt_2d) goes back to the 3D clip's own x, y.
  c.gt_2d = True
  ex = _example(pretrain.make_curriculum(c), '3d')
  np.testing.assert_array_equal(ex['input'][..., 2], 1.0)
  with pytest.raises(ValueError, match="source 'amass' names none"):
    pretrain.make_curriculum(_config(synthetic=False))


def test_masks_need_both_ratios(sources):
  """Official: `mask = mask_ratio > 0 and mask_T_ratio > 0` (train.py)."""
  rec = sources['amass'][0]
  for ratios, masked in (((0.5, 0.0), False), ((0.0, 0.5), False), ((0.5, 0.5), True)):
    c = _config(**{'augment.mask_ratio': ratios[0], 'augment.mask_t_ratio': ratios[1]})
    ex = _example(pretrain.make_curriculum(c), '3d')
    assert (ex['input'][..., 2] == 0).any() == masked, ratios


def test_no_conf_feeds_x_y_to_a_dim_in_2_model(sources):
  """Official `no_conf`: the input's confidence channel is dropped."""
  c = pretrain_config.get_config('tiny,no_conf')
  assert c.no_conf and c.model.dim_in == 2
  c.data.sources_2d = [dict(name='posetrack', split='train', key='joint_2d', noise=True)]
  c.batch_size = 4
  curriculum = pretrain.make_curriculum(c)
  for kind in ('3d', '2d'):
    ex = _example(curriculum, kind)
    assert ex['input'].shape == (T, 17, 2) and ex['target'].shape == (T, 17, 3), kind
  assert pretrain.example_batch(c)['input'].shape[-1] == 2
  assert pretrain.make_model(c).dim_in == 2
  c.model.dim_in = 3
  with pytest.raises(ValueError, match='model.dim_in=2'):
    pretrain.make_model(c)


def test_lifting_evaluator_reads_clips_as_training_does():
  """Stored clips (no crop-scale in training) are scored in stored units: metres x 0.298."""
  clip = np.stack([r['joints3d'] for r in _clips_3d(2, 'joints3d')])
  stored, mm = lifting.normalise_clips(clip, crop_scale=False)
  np.testing.assert_array_equal(stored, clip)
  np.testing.assert_allclose(mm, 1000 / 0.298)
  cropped, _ = lifting.normalise_clips(clip)
  assert np.abs(cropped[..., :2]).max() == pytest.approx(1.0, abs=1e-5)
  rel = clip - clip[..., :1, :]
  flat = lambda x: np.concatenate([x[..., :2], np.zeros_like(x[..., :1])], -1)  # depth 0
  result = lifting.evaluate_lifting(flat, clip, rel.reshape(-1, 17, 3).mean(0), crop_scale=False)
  want = np.linalg.norm(rel[..., 2:], axis=-1).mean() * 1000 / 0.298  # the depth error only
  assert result['mpjpe_mm'] == pytest.approx(want, rel=1e-5)
  assert result['zero_depth_mpjpe_mm'] == pytest.approx(want, rel=1e-5)
