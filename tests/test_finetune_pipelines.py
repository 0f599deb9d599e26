"""Finetuning pipelines: H36M pose examples, action examples, curricula and evaluation batches."""

import functools

import numpy as np
import pytest

import official_action
from mbjax.data import finetune, pipelines, transforms


def _h36m_source(n, T=27, seed=0):
  rng = np.random.default_rng(seed)
  recs = []
  for _ in range(n):
    gt = rng.uniform(-1, 1, (T, 17, 3)).astype(np.float32)
    xy = gt[..., :2] + 0.01 * rng.standard_normal((T, 17, 2))
    conf = rng.uniform(0.3, 1.0, (T, 17, 1))
    recs.append({'joint_2d': np.concatenate([xy, conf], -1).astype(np.float32), 'joint_3d': gt})
  return list(recs)


def _action_record(T, label, rng, second_person=True):
  """(2, T, 17, 3) sequence whose person-0 score encodes the frame: (t + 1) / (T + 1)."""
  kp = np.zeros((2, T, 17, 3), np.float32)
  kp[0, ..., :2] = rng.uniform(-0.6, 0.4, (T, 17, 2))
  kp[0, ..., 2] = ((np.arange(T) + 1) / (T + 1))[:, None]
  if second_person:
    kp[1, ..., :2] = rng.uniform(-0.2, 0.8, (T, 17, 2))
    kp[1, ..., 2] = 0.9
  return {'keypoint': kp, 'label': np.int64(label), 'total_frames': np.int64(T)}


def _action_source(n, seed=0):
  rng = np.random.default_rng(seed)
  return list([_action_record(int(rng.integers(20, 80)), i % 7, rng, second_person=i % 3 != 0)
                     for i in range(n)])


def _frames(example, T):
  """Source frame of each output frame, read back from person 0's score channel."""
  return np.rint(example['input'][0, :, 0, 2] * (T + 1)).astype(np.int64) - 1


# ------------------------------------------------------------------------------------- H36M


@pytest.mark.parametrize('rootrel', [True, False])
def test_h36m_flip_moves_input_and_target_together(rootrel):
  rec = _h36m_source(1)[0]
  flipped_count = 0
  for seed in range(16):
    a = finetune.h36m_example(rec, np.random.default_rng(seed), flip=True, rootrel=rootrel)
    b = finetune.h36m_example(rec, np.random.default_rng(seed), flip=False, rootrel=rootrel)
    flipped = np.random.default_rng(seed).random() < 0.5  # the same draw the example makes
    if flipped:
      flipped_count += 1
      assert not np.allclose(a['input'], b['input'])
      np.testing.assert_allclose(transforms.flip_pose(a['input']), b['input'], atol=1e-6)
      np.testing.assert_allclose(transforms.flip_pose(a['target']), b['target'], atol=1e-6)
    else:
      np.testing.assert_array_equal(a['input'], b['input'])
      np.testing.assert_array_equal(a['target'], b['target'])
    np.testing.assert_array_equal(a['conf'], 1.0)
  assert 0 < flipped_count < 16


def test_h36m_root_relative_target():
  rec = _h36m_source(1)[0]
  ex = finetune.h36m_example(rec, np.random.default_rng(0), flip=False, rootrel=True)
  np.testing.assert_array_equal(ex['input'], rec['joint_2d'])  # detected 2D + conf, untouched
  np.testing.assert_allclose(ex['target'], rec['joint_3d'] - rec['joint_3d'][:, :1], atol=1e-7)
  np.testing.assert_array_equal(ex['target'][:, 0], 0.0)
  assert ex['conf'].shape == (27, 17, 1)
  assert {k: v.dtype for k, v in ex.items()} == {k: np.float32 for k in ('input', 'target', 'conf')}


def test_h36m_rootrel_false_shifts_only_depth_by_first_root():
  rec = _h36m_source(1)[0]
  gt = rec['joint_3d']
  ex = finetune.h36m_example(rec, np.random.default_rng(0), flip=False, rootrel=False)
  np.testing.assert_array_equal(ex['target'][..., :2], gt[..., :2])
  np.testing.assert_allclose(ex['target'][..., 2], gt[..., 2] - gt[0, 0, 2], atol=1e-7)
  assert ex['target'][0, 0, 2] == 0.0
  assert np.abs(ex['target'][1:, 0, 2]).max() > 0.1  # later roots keep their depth offsets


def test_h36m_gt_2d_and_no_conf():
  """Official `gt_2d`: input = the 3D target's x, y with confidence 1; `no_conf`: x, y only."""
  rec = _h36m_source(1)[0]
  gt = rec['joint_3d']
  ex = finetune.h36m_example(rec, np.random.default_rng(0), flip=False, gt_2d=True)
  np.testing.assert_array_equal(ex['input'][..., :2], gt[..., :2])
  np.testing.assert_array_equal(ex['input'][..., 2], 1.0)
  for seed in range(4):  # flipped or not, the input stays the target's own x, y
    ex = finetune.h36m_example(rec, np.random.default_rng(seed), flip=True, rootrel=False,
                               gt_2d=True)
    np.testing.assert_allclose(ex['input'][..., :2], ex['target'][..., :2], atol=1e-6)
  c = finetune.make_h36m_curriculum(_h36m_source(4), epochs=1, global_batch=4, flip=True,
                                    rootrel=True, no_conf=True)
  assert pipelines.HostBatches(c, seed=0)[0]['input'].shape == (4, 27, 17, 2)


def test_h36m_shape_mismatch_fails_clearly():
  rec = _h36m_source(1)[0]
  bad = dict(rec, joint_2d=rec['joint_2d'][:20])
  with pytest.raises(ValueError, match=r'joint_2d has shape \(20, 17, 3\), expected \(27, 17'):
    finetune.h36m_example(bad, np.random.default_rng(0))


def test_h36m_curriculum_batches_and_determinism():
  src = _h36m_source(10)
  c = finetune.make_h36m_curriculum(src, epochs=3, global_batch=4, flip=True, rootrel=True)
  assert c.total_steps == 3 * (10 // 4)
  assert {c.kind_of(s) for s in range(c.total_steps)} == {pipelines.KIND_3D}
  hb = pipelines.HostBatches(c, seed=7)
  again = pipelines.HostBatches(c, seed=7)
  for step in reversed(range(c.total_steps)):  # another access order gives the same batches
    batch = hb[step]
    assert batch['input'].shape == (4, 27, 17, 3) and batch['conf'].shape == (4, 27, 17, 1)
    np.testing.assert_array_equal(batch['target'][:, :, 0], 0.0)
    for k in ('input', 'target'):
      np.testing.assert_array_equal(batch[k], again[step][k])
  # Each row is its record, flipped or not.
  batch = hb[0]
  for row, index in enumerate(hb.indices(0)):
    x = src[int(index)]['joint_2d']
    assert (np.array_equal(batch['input'][row], x) or
            np.allclose(batch['input'][row], transforms.flip_pose(x), atol=1e-6))


# ----------------------------------------------------------------------------------- action


@pytest.mark.parametrize('T', [50, 400])
def test_action_test_resampling_is_even_and_rng_free(T):
  rec = _action_record(T, 3, np.random.default_rng(1))
  make = functools.partial(finetune.action_example, n_frames=243, train=False, random_move=True,
                           scale_range=(1, 1))
  a, b = make(rec, np.random.default_rng(0)), make(rec, np.random.default_rng(1))
  assert a['input'].shape == (2, 243, 17, 3) and a['input'].dtype == np.float32
  np.testing.assert_array_equal(_frames(a, T), np.linspace(0, T, 243, endpoint=False).astype(int))
  # No random_move at test time: only the (fixed) crop-scale of the evenly resampled frames.
  np.testing.assert_array_equal(a['input'], b['input'])
  even = np.linspace(0, T, 243, endpoint=False).astype(int)
  np.testing.assert_array_equal(a['input'],
                                transforms.crop_scale_2d(rec['keypoint'][:, even], (1, 1)))


@pytest.mark.parametrize('T', [50, 400])
def test_action_train_resampling_is_random_around_even(T):
  rec = _action_record(T, 3, np.random.default_rng(1))
  even = np.linspace(0, T, 243, endpoint=False)
  picks = []
  for seed in range(3):
    ex = finetune.action_example(rec, np.random.default_rng(seed), n_frames=243, train=True,
                                 random_move=False)
    frames = _frames(ex, T)
    assert frames.shape == (243,) and frames.min() >= 0 and frames.max() <= T - 1
    assert (np.diff(frames) >= 0).all()
    if T < 243:  # upsampling: each position rounded down or up at random
      assert np.isin(frames - np.floor(even), (0, 1)).all()
      assert (frames == np.floor(even)).any() and (frames == np.minimum(np.ceil(even), T - 1)).any()
    else:  # downsampling: each position moved by U(0, 1) of the spacing
      assert (frames >= np.floor(even)).all()
      assert (frames <= np.floor(even + T / 243)).all()
    assert not np.array_equal(frames, even.astype(int))
    picks.append(frames)
  assert not np.array_equal(picks[0], picks[1])


def test_action_train_transform_equals_the_official_numpy_code():
  """Resample, random_move, crop-scale, against the official code rewritten in plain numpy
  (tests/official_action.py: per-frame matrices, the in-place move, the copying crop) fed the
  same generator (T 60: downsampling, T 20: upsampling)."""
  for T, move in ((60, True), (20, True), (60, False)):
    rec = _action_record(T, 5, np.random.default_rng(2))
    ex = finetune.action_example(rec, np.random.default_rng(11), n_frames=32, train=True,
                                 random_move=move, scale_range=(1, 3))
    rng = np.random.default_rng(11)
    stored = rec['keypoint'][:, official_action.resample(T, 32, rng)].astype(np.float32)
    if move:
      official_action.random_move_in_place(stored, rng)
    want = official_action.crop_scale(stored, (1, 3), rng)
    np.testing.assert_allclose(ex['input'], want, atol=1e-6)
    assert int(ex['label']) == 5 and ex['label'].dtype == np.int32 and ex['label'].shape == ()


def test_action_crop_scale_bounds():
  src = _action_source(6)
  for i in range(len(src)):
    rec = src[i]
    train = finetune.action_example(rec, np.random.default_rng(i), n_frames=40, train=True,
                                    random_move=True, scale_range=(1, 3))
    assert np.abs(train['input']).max() <= 1.0
    test = finetune.action_example(rec, np.random.default_rng(i), n_frames=40, train=False,
                                   scale_range=(1, 1))
    x = test['input']
    valid = x[x[..., 2] != 0][:, :2]
    # Ratio 1: the box of confident joints over both persons fills [-1, 1] along its longer side.
    extent = valid.max(0) - valid.min(0)
    assert np.isclose(extent.max(), 2.0, atol=1e-5) and np.abs(valid).max() <= 1.0
    if not rec['keypoint'][1].any():  # a missing second person keeps zero scores
      np.testing.assert_array_equal(x[1, ..., 2], 0.0)


def test_action_bad_record_fails_clearly():
  rec = _action_record(30, 1, np.random.default_rng(0))
  with pytest.raises(ValueError, match='total_frames is 31 but keypoint has 30 frames'):
    finetune.action_example(dict(rec, total_frames=np.int64(31)), np.random.default_rng(0))
  with pytest.raises(ValueError, match=r'keypoint has shape \(30, 17, 3\)'):
    finetune.action_example(dict(rec, keypoint=rec['keypoint'][0]), np.random.default_rng(0))


def test_action_curriculum_host_batches():
  src = _action_source(10)
  c = finetune.make_action_curriculum(src, epochs=2, global_batch=4, n_frames=16,
                                      random_move=True, scale_range=(1, 3))
  assert c.total_steps == 2 * (10 // 4)
  assert {c.kind_of(s) for s in range(c.total_steps)} == {finetune.KIND_ACTION}
  hb = pipelines.HostBatches(c, seed=3)
  same = pipelines.HostBatches(c, seed=3)
  shards = [pipelines.HostBatches(c, seed=3, process_index=p, process_count=2) for p in range(2)]
  for step in range(c.total_steps):
    batch = hb[step]
    assert batch['input'].shape == (4, 2, 16, 17, 3) and batch['input'].dtype == np.float32
    assert batch['label'].dtype == np.int32
    np.testing.assert_array_equal(batch['label'], [src[int(i)]['label'] for i in hb.indices(step)])
    np.testing.assert_array_equal(batch['input'], same[step]['input'])
    np.testing.assert_array_equal(
        np.concatenate([s[step]['input'] for s in shards]), batch['input'])
  assert not np.array_equal(hb[0]['input'], pipelines.HostBatches(c, seed=4)[0]['input'])
  # Resampling and moves are drawn per step: a clip seen in both epochs differs between them.
  # Each epoch covers 8 of the 10 clips, so at least 6 appear in both.
  epoch0 = {int(i): (s, r) for s in (0, 1) for r, i in enumerate(hb.indices(s))}
  both = [(epoch0[int(i)], (s, r)) for s in (2, 3) for r, i in enumerate(hb.indices(s))
          if int(i) in epoch0]
  assert len(both) >= 6
  for (s0, r0), (s1, r1) in both:
    assert not np.allclose(hb[s0]['input'][r0], hb[s1]['input'][r1])


def _rotation_deg(before, after):
  """Rotation in degrees of the 2D points `after` (J, 2) relative to `before`, each centred."""
  p, q = before - before.mean(0), after - after.mean(0)
  return float(np.degrees(np.arctan2(np.sum(p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]),
                                     np.sum(p * q))))


def _moving_curriculum(src, *, workers, epochs=12, resample_once=True):
  """2 clips a step, frames as stored (n_frames = T), crop ratio 1 (a draw that changes nothing)."""
  T = src[0]['keypoint'].shape[1]
  return finetune.make_action_curriculum(src, epochs=epochs, global_batch=2, n_frames=T,
                                         random_move=True, scale_range=(1, 1),
                                         resample_once=resample_once, compounding_workers=workers)


def test_official_compounding_equals_the_official_in_place_code():
  """augment.official_compounding: official random_move writes into the stored clip, so each
  persistent DataLoader worker's copy of a clip carries every move that worker made to it. The
  pipeline replays that per worker (batch b of an epoch: worker b % W) and per clip from
  (seed, step) alone; the official code rewritten in numpy (tests/official_action.py), one copy
  of the data per worker, gets the same outputs and the same drift of every clip."""
  T, W, seed = 8, 2, 5
  src = [_action_record(T, i % 3, np.random.default_rng(i)) for i in range(6)]
  c = _moving_curriculum(src, workers=W)  # 3 steps an epoch: batches 0, 2 -> worker 0, 1 -> 1
  hb = pipelines.HostBatches(c, seed=seed)
  # n_frames = T: the once-drawn positions are every frame (even + U(0, 1) spacing, truncated).
  copies = [official_action.NTURGBDTrain([r['keypoint'] for r in src], scale_range=(1, 1))
            for _ in range(W)]
  drift = np.zeros((W, len(src)))  # the angle each worker's copy of each clip has turned so far
  per_epoch = c.epoch_steps(0)
  for step in range(c.total_steps):
    batch, worker = hb[step], (step % per_epoch) % W
    for row, index in enumerate(hb.indices(step)):
      move_rng = np.random.default_rng([seed, 3, step, row])  # the Visit.moves seeding
      drift[worker, index] += np.random.default_rng([seed, 3, step, row]).uniform(-10, 10, 2)[0]
      want = copies[worker].getitem(int(index), move_rng, np.random.default_rng(0))
      np.testing.assert_allclose(batch['input'][row], want, atol=1e-5)
      turned = _rotation_deg(src[int(index)]['keypoint'][0, 0, :, :2],
                             batch['input'][row][0, 0, :, :2])
      assert turned == pytest.approx((drift[worker, index] + 180) % 360 - 180, abs=1e-3)
  assert np.abs(drift).max() > 20  # far beyond one draw's +-10 degrees
  # Nothing is kept between batches: another instance, read backwards, gives the same batches.
  again = pipelines.HostBatches(c, seed=seed)
  for step in reversed(range(c.total_steps)):
    np.testing.assert_array_equal(again[step]['input'], hb[step]['input'])
  shards = [pipelines.HostBatches(c, seed=seed, process_index=p, process_count=2)
            for p in range(2)]
  np.testing.assert_array_equal(np.concatenate([h[7]['input'] for h in shards]), hb[7]['input'])


def test_default_random_move_draws_fresh_on_every_visit():
  T = 8
  src = [_action_record(T, i % 3, np.random.default_rng(i)) for i in range(6)]
  stored = [r['keypoint'].copy() for r in src]
  hb = pipelines.HostBatches(_moving_curriculum(src, workers=0), seed=5)
  turned = []
  for step in range(len(hb)):
    batch = hb[step]
    for row, index in enumerate(hb.indices(step)):
      turned.append(_rotation_deg(src[int(index)]['keypoint'][0, 0, :, :2],
                                  batch['input'][row][0, 0, :, :2]))
  assert np.abs(turned).max() <= 10 + 1e-6 and np.std(turned) > 3  # one draw in [-10, 10] each
  for record, copy in zip(src, stored):
    np.testing.assert_array_equal(record['keypoint'], copy)  # the records are never written


def test_resample_once_fixes_each_clips_frames():
  """augment.resample_once: official `ActionDataset` resamples every clip once, when built."""
  T, n, seed = 50, 16, 3
  src = [_action_record(T, i % 3, np.random.default_rng(i)) for i in range(6)]
  frames = {}
  for once in (True, False):
    c = finetune.make_action_curriculum(src, epochs=4, global_batch=2, n_frames=n,
                                        random_move=False, scale_range=(1, 1), resample_once=once)
    hb = pipelines.HostBatches(c, seed=seed)
    seen = {}
    for step in range(c.total_steps):
      batch = hb[step]
      for row, index in enumerate(hb.indices(step)):
        seen.setdefault(int(index), []).append(tuple(_frames({'input': batch['input'][row]}, T)))
    frames[once] = seen
  for index, visits in frames[True].items():
    assert len(visits) == 4 and len(set(visits)) == 1
    want = official_action.resample(T, n, np.random.default_rng([seed, 4, index]))
    np.testing.assert_array_equal(visits[0], want)  # the Visit.clip_rng seeding
  assert len({v[0] for v in frames[True].values()}) > 1  # a draw per clip
  assert all(len(set(v)) > 1 for v in frames[False].values())  # by default: fresh every epoch
  with pytest.raises(ValueError, match='resample_once draws from the clip'):
    finetune.action_example(src[0], np.random.default_rng(0), n_frames=n, resample_once=True)


# ------------------------------------------------------------------------------------- eval


def test_eval_batches_cover_every_record_once_with_padding_mask():
  src = _action_source(10)
  make = functools.partial(finetune.action_example, n_frames=24, train=False, scale_range=(2, 2))
  batches = finetune.eval_batches(src, make, 4)
  assert len(batches) == 3
  listed = list(batches)
  np.testing.assert_array_equal([b['valid'].sum() for b in listed], [4, 4, 2])
  np.testing.assert_array_equal(listed[2]['valid'], [True, True, False, False])
  seen = np.concatenate([b['index'][b['valid']] for b in listed])
  np.testing.assert_array_equal(seen, np.arange(10))
  for b in listed:
    assert b['input'].shape == (4, 2, 24, 17, 3) and b['valid'].dtype == bool
    for row, index in enumerate(b['index']):
      want = make(src[int(index)], np.random.default_rng(99))
      np.testing.assert_array_equal(b['input'][row], want['input'])
      assert b['label'][row] == src[int(index)]['label']
  # Padding repeats the final record.
  np.testing.assert_array_equal(listed[2]['index'], [8, 9, 9, 9])
  np.testing.assert_array_equal(listed[2]['input'][3], listed[2]['input'][1])
  np.testing.assert_array_equal(list(batches)[1]['input'], listed[1]['input'])  # same every pass
  with pytest.raises(IndexError):
    batches[3]


def test_eval_batches_h36m_exact_and_oversized():
  src = _h36m_source(8)
  make = functools.partial(finetune.h36m_example, flip=False)
  exact = list(finetune.eval_batches(src, make, 4))
  assert len(exact) == 2 and all(b['valid'].all() for b in exact)
  for b in exact:
    for row, index in enumerate(b['index']):
      gt = src[int(index)]['joint_3d']
      np.testing.assert_allclose(b['target'][row], gt - gt[:, :1], atol=1e-7)
  (big,) = list(finetune.eval_batches(src, make, 16))
  assert big['input'].shape == (16, 27, 17, 3)
  np.testing.assert_array_equal(big['valid'], np.arange(16) < 8)
  np.testing.assert_array_equal(big['index'], [0, 1, 2, 3, 4, 5, 6, 7] + [7] * 8)
  np.testing.assert_array_equal(big['input'][8:], np.broadcast_to(big['input'][7], (8, 27, 17, 3)))


def test_eval_batches_errors_name_the_record():
  src = _h36m_source(5)
  src[3] = dict(src[3], joint_3d=np.zeros((27, 16, 3), np.float32))
  batches = finetune.eval_batches(src, finetune.h36m_example, 2)
  with pytest.raises(ValueError, match='record 3: h36m_example: joint_3d has shape'):
    batches[1]
  with pytest.raises(ValueError, match='no records'):
    finetune.eval_batches(list([]), finetune.h36m_example, 2)
