"""Pretraining pipelines: corruption per clip, curriculum, determinism, sharding, exact resume."""

import functools

import numpy as np
import pytest

from mbjax.data import pipelines, transforms


def _source_3d(n, T, seed=0):
  rng = np.random.default_rng(seed)
  base = rng.standard_normal((17, 3)).astype(np.float32)
  return list([{'joints3d': (base + 0.1 * rng.standard_normal((T, 17, 3))).astype(
      np.float32), 'id': np.array(i)} for i in range(n)])


def _source_2d(n, T, seed=1):
  rng = np.random.default_rng(seed)
  recs = []
  for i in range(n):
    xy = rng.uniform(100, 400, (T, 17, 2))
    conf = rng.uniform(0.2, 1.0, (T, 17, 1))
    recs.append({'joint_2d': np.concatenate([xy, conf], -1).astype(np.float32)})
  return list(recs)


def _curriculum(epochs=3, k=1, batch=4, noise=True):
  noise_model = transforms.SyntheticNoise.load() if noise else None
  p3 = pipelines.Phase('mocap', pipelines.KIND_3D, _source_3d(10, 27), functools.partial(
      pipelines.pretrain_3d_example, key='joints3d', flip=True, noise=noise_model,
      mask_ratio=0.05, mask_t_ratio=0.1, scale_range=(1, 1)))
  p2 = pipelines.Phase('posetrack', pipelines.KIND_2D, _source_2d(9, 30), functools.partial(
      pipelines.pretrain_2d_example, key='joint_2d', flip=True, noise=noise_model,
      mask_ratio=0.05, mask_t_ratio=0.1))
  return pipelines.Curriculum([p3], [p2], epochs=epochs, curriculum_3d_epochs=k,
                              global_batch=batch)


def test_curriculum_order_and_lengths():
  c = _curriculum(epochs=3, k=1, batch=4)
  # epoch 0: 3D only (10 // 4 = 2 steps); epochs 1, 2: 2D (9 // 4 = 2) then 3D (2).
  kinds = [c.kind_of(s) for s in range(c.total_steps)]
  assert kinds == ['3d', '3d', '2d', '2d', '3d', '3d', '2d', '2d', '3d', '3d']
  assert c.epoch_starts == [0, 2, 6]
  assert [c.epoch_of(s) for s in (0, 1, 2, 5, 6, 9)] == [0, 0, 1, 1, 2, 2]
  with pytest.raises(IndexError):
    c.locate(c.total_steps)


def test_batches_have_one_T_and_the_right_content():
  c = _curriculum()
  hb = pipelines.HostBatches(c, seed=0)
  b3, b2 = hb[0], hb[2]
  assert b3['input'].shape == (4, 27, 17, 3) and b3['target'].shape == (4, 27, 17, 3)
  assert b2['input'].shape == (4, 30, 17, 3) and b2['conf'].shape == (4, 30, 17, 1)
  np.testing.assert_array_equal(b3['target'][:, :, 0], 0.0)  # root-relative target
  np.testing.assert_array_equal(b3['conf'], 1.0)
  assert np.abs(b3['input'][..., :2]).max() <= 1.2  # crop-scaled to [-1, 1] plus noise
  assert (b3['input'][..., 2] >= 0).all() and (b3['input'][..., 2] <= 1).all()
  # 2D target: clean crop-scaled 2D, root-relative (in [-2, 2]), weights = original confidence.
  np.testing.assert_array_equal(b2['target'][:, :, 0], 0.0)
  assert np.abs(b2['target'][..., :2]).max() <= 2.0
  assert b2['conf'].min() > 0.19


def test_deterministic_and_seed_dependent():
  c = _curriculum()
  a, b = pipelines.HostBatches(c, seed=3), pipelines.HostBatches(c, seed=3)
  for step in range(c.total_steps):
    for k in ('input', 'target', 'conf'):
      np.testing.assert_array_equal(a[step][k], b[step][k])
  other = pipelines.HostBatches(c, seed=4)
  assert not np.array_equal(a[0]['input'], other[0]['input'])


def test_process_shards_are_disjoint_and_cover_each_global_batch():
  c = _curriculum(batch=4)
  shards = [pipelines.HostBatches(c, seed=0, process_index=p, process_count=2) for p in range(2)]
  full = pipelines.HostBatches(c, seed=0)
  for step in range(c.total_steps):
    parts = [s.indices(step) for s in shards]
    assert not set(parts[0]) & set(parts[1])
    np.testing.assert_array_equal(np.concatenate(parts), full.indices(step))
    # Rows are the same clips with the same augmentation as in the single-process batch.
    np.testing.assert_array_equal(
        np.concatenate([s[step]['input'] for s in shards]), full[step]['input'])
  # Each epoch visits a clip at most once per phase.
  seen = np.concatenate([full.indices(s) for s in range(2)])
  assert len(set(seen)) == len(seen)
  with pytest.raises(ValueError, match='not divisible'):
    pipelines.HostBatches(c, seed=0, process_count=3)


def test_grain_iterator_restores_exactly():
  c = _curriculum()
  hb = pipelines.HostBatches(c, seed=0)
  it = pipelines.make_iterator(hb)
  for _ in range(3):
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(4)]
  it2 = pipelines.make_iterator(hb)
  it2.set_state(state)
  for want in expected:
    got = next(it2)
    assert int(got['step'][0]) == int(want['step'][0])
    np.testing.assert_array_equal(got['input'], want['input'])
  positioned = pipelines.make_iterator(hb, start=3)
  np.testing.assert_array_equal(next(positioned)['input'], expected[0]['input'])


def test_phase_smaller_than_a_batch_fails_clearly():
  with pytest.raises(ValueError, match='fewer than one global batch'):
    _curriculum(batch=16)


def test_bad_record_names_phase_and_record():
  c = _curriculum()
  c.phases[1].source[5]['joints3d'] = np.zeros((27, 16, 3), np.float32)
  hb = pipelines.HostBatches(c, seed=0)
  step = next(s for s in range(c.total_steps) if c.kind_of(s) == '3d' and 5 in hb.indices(s))
  with pytest.raises(ValueError, match="phase 'mocap', record 5"):
    hb[step]
