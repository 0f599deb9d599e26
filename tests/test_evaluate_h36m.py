"""Human3.6M evaluation protocol (mbjax.evaluate.h36m) on a tiny official-format test set.

The pickle is consistent the way the official one is: joints_2.5d_image = joint3d_image *
2.5d_factor frame by frame, so the normalised `joint_3d` of a clip, denormalised and scaled, is the
millimetre ground truth. Predictions are built in millimetres and mapped back to normalised
coordinates, so each test knows the error it should get.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

import data_formats
from data_prep import builder
from mbjax.checkpoint import converted, official
from mbjax.data import h36m as h36m_data
from mbjax.data.records import load as load_split
from mbjax.evaluate import h36m
from mbjax.models import DSTformer

# (source, camera, action, frames) of the test split, concatenated in this order.
TEST_SEQUENCES = [
    ('s_09_act_02_subact_01_ca_01', '54138969', 'Directions 1', 500),  # 2 clips, 14-frame tail
    ('s_09_act_02_subact_01_ca_02', '55011271', 'Directions 1', 243),  # 1 clip
    ('s_09_act_05_subact_01_ca_01', '58860488', 'Discussion', 300),  # 1 clip, 57-frame tail
    ('s_09_act_05_subact_02_ca_03', '58860488', 'Sitting 1', 243),  # blocklisted take
    ('s_11_act_04_subact_01_ca_04', '60457274', 'Eating', 100),  # resampled to 243
    ('s_11_act_06_subact_02_ca_01', '54138969', 'Phoning 1', 243),  # last sequence, 1 clip
]
TRAIN_SEQUENCES = [('s_01_act_02_subact_01_ca_01', '54138969', 'Directions', 243)]
# Hand-made H36M left/right pairs, independent of mbjax.data.transforms.
MIRROR = np.arange(17)
MIRROR[[1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16]] = [4, 5, 6, 1, 2, 3, 14, 15, 16, 11, 12, 13]
TINY = dict(dim_in=3, dim_out=3, dim_feat=8, dim_rep=8, depth=1, num_heads=2, mlp_ratio=2,
            maxlen=243)


def _split(sequences, rng) -> dict:
  """One split of the official pickle with random poses and consistent 2.5D ground truth."""
  n = sum(s[3] for s in sequences)
  pixels = np.concatenate([rng.uniform(300, 700, (n, 17, 2)), rng.uniform(-100, 100, (n, 17, 1))],
                          axis=-1)
  factor = rng.uniform(4.0, 5.0, n)
  return {
      'joint_2d': (pixels[..., :2] + rng.normal(0, 3, (n, 17, 2))).astype(np.float32),
      'confidence': rng.uniform(0.3, 1.0, (n, 17)).astype(np.float32),
      'joint3d_image': pixels,
      'camera_name': np.array([c for _, c, _, k in sequences for _ in range(k)]),
      'source': [s for s, _, _, k in sequences for _ in range(k)],
      'action': [a for _, _, a, k in sequences for _ in range(k)],
      '2.5d_factor': factor,
      'joints_2.5d_image': pixels * factor[:, None, None],
  }


@pytest.fixture(scope='module')
def h36m_test(tmp_path_factory):
  """(data_dir, test records as a list) of the tiny h36m built once."""
  root = tmp_path_factory.mktemp('h36m_eval')
  rng = np.random.default_rng(0)
  train = _split(TRAIN_SEQUENCES, rng)
  del train['action'], train['2.5d_factor'], train['joints_2.5d_image']
  source = data_formats.write_h36m(root / 'h36m_sh_conf_cam_source_final.pkl', train,
                                   _split(TEST_SEQUENCES, rng))
  builder.build('h36m', source=source, data_dir=root / 'tfds')
  records = load_split('h36m', 'test', data_dir=root / 'tfds')
  return root / 'tfds', [records[i] for i in range(len(records))]


def _gt_mm(record) -> np.ndarray:
  return np.asarray(record['joints_2_5d_mm'], np.float64)


def _mm_to_normalised(mm: np.ndarray, record) -> np.ndarray:
  """(T, 17, 3) millimetres -> normalised coordinates of this clip (inverse of the protocol)."""
  t = len(mm)
  pixels = mm / np.asarray(record['factor_2_5d'], np.float64)[:, None, None]
  return h36m_data.normalize_3d(pixels, np.full(t, record['res_w']), np.full(t, record['res_h']))


def _predictions(records, offset_mm) -> np.ndarray:
  """Normalised predictions whose mm poses are ground truth + offset_mm(index, record)."""
  return np.stack([_mm_to_normalised(_gt_mm(r) + offset_mm(i, r), r)
                   for i, r in enumerate(records)])


def _source(record) -> str:
  return record['source'].decode()


def _joint_offsets(norms: np.ndarray) -> np.ndarray:
  """(T,) lengths -> (T, 17, 3) offsets of that length on joints 1..16, root untouched."""
  direction = np.array([2.0, -1.0, 2.0]) / 3.0
  out = np.zeros((len(norms), 17, 3))
  out[:, 1:] = norms[:, None, None] * direction
  return out


# ----------------------------------------------------------------------------------------------
# The test set as built.


def test_clips_of_the_tiny_test_set(h36m_test):
  _, records = h36m_test
  assert [_source(r) for r in records] == [s for s, _, _, k in TEST_SEQUENCES
                                           for _ in range(max(1, k // 243))]
  assert [r['action'].decode() for r in records][:3] == ['Directions 1'] * 3
  eating = records[5]['frame_index']
  assert len(np.unique(eating)) < 243  # the resampled clip repeats frames


def test_perfect_predictions_give_zero(h36m_test):
  _, records = h36m_test
  pred = np.stack([r['joint_3d'] for r in records])
  result = h36m.evaluate(pred, records)
  assert result['mpjpe'] < 1e-3 and result['p_mpjpe'] < 1e-3
  assert result['mpjpe_per_frame'] < 1e-3 and result['p_mpjpe_per_frame'] < 1e-3
  eating_frames = len(np.unique(records[5]['frame_index']))
  # Tails dropped: 486 of the first sequence's 500 frames, 243 of the 300 of Discussion.
  assert {a: v['frames'] for a, v in result['per_action'].items()} == {
      'Directions': 486 + 243, 'Discussion': 243, 'Eating': eating_frames, 'Phoning': 243}
  assert result['frames'] == 486 + 243 + 243 + eating_frames + 243
  assert result['clips'] == 6 and result['skipped_clips'] == 1


def test_known_offsets_action_wise_and_per_frame(h36m_test):
  _, records = h36m_test
  base = {'Directions': 10.0, 'Discussion': 20.0, 'Phoning': 40.0}

  def offset(index, record):
    action = record['action'].decode().split(' ')[0]
    if action == 'Eating':  # the error grows along the clip: shows which duplicate is kept
      return _joint_offsets(30.0 + 0.1 * np.arange(243))
    if action == 'Sitting':  # blocklisted: must not count
      return _joint_offsets(np.full(243, 1000.0))
    return _joint_offsets(np.full(243, base[action]))

  result = h36m.evaluate(_predictions(records, offset), records)
  per_joint = 16 / 17  # the root joint has no error
  frames = records[5]['frame_index']
  last = {int(f): p for p, f in enumerate(frames)}  # dict keeps the last position of each frame
  first = {int(f): p for p, f in reversed(list(enumerate(frames)))}
  eating = np.mean([30.0 + 0.1 * p for p in last.values()]) * per_joint
  eating_first = np.mean([30.0 + 0.1 * p for p in first.values()]) * per_joint
  assert abs(eating - eating_first) > 0.01  # the clip tells last from first occurrence
  per_action = result['per_action']
  assert set(per_action) == {'Directions', 'Discussion', 'Eating', 'Phoning'}
  for action, err in base.items():
    np.testing.assert_allclose(per_action[action]['mpjpe'], err * per_joint, atol=1e-3)
  np.testing.assert_allclose(per_action['Eating']['mpjpe'], eating, atol=1e-3)
  action_wise = (10 + 20 + 40) / 4 * per_joint + eating / 4
  n_eat = per_action['Eating']['frames']
  per_frame = ((729 * 10 + 243 * 20 + 243 * 40) * per_joint + n_eat * eating) / (1215 + n_eat)
  np.testing.assert_allclose(result['mpjpe'], action_wise, atol=1e-3)
  np.testing.assert_allclose(result['mpjpe_per_frame'], per_frame, atol=1e-3)
  assert abs(result['mpjpe'] - result['mpjpe_per_frame']) > 1.0
  for v in per_action.values():
    assert 0 < v['p_mpjpe'] < v['mpjpe']


def test_blocklisted_takes_are_skipped_whatever_their_prediction(h36m_test):
  _, records = h36m_test
  assert [h36m.take_name(_source(r)) in h36m.BLOCKLIST for r in records] == [
      False, False, False, False, True, False, False]
  rng = np.random.default_rng(1)
  pred = np.stack([r['joint_3d'] for r in records]) + rng.normal(0, 0.01, (7, 243, 17, 3))
  garbage = pred.copy()
  garbage[4] = rng.normal(0, 5, (243, 17, 3))
  assert h36m.evaluate(pred, records) == h36m.evaluate(garbage, records)
  kept = [r for r in records if h36m.take_name(_source(r)) not in h36m.BLOCKLIST]
  without = h36m.evaluate(np.delete(pred, 4, axis=0), kept)
  assert without['mpjpe'] == h36m.evaluate(pred, records)['mpjpe']
  assert h36m.take_name('s_09_act_13_subact_01_ca_04') in h36m.BLOCKLIST
  assert h36m.take_name('s_09_act_13_subact_02_ca_04') not in h36m.BLOCKLIST


def test_procrustes_removes_rotation_and_scale(h36m_test):
  _, records = h36m_test
  angle = np.deg2rad(30)
  rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                  [-np.sin(angle), 0, np.cos(angle)]])

  def offset(index, record):
    gt = _gt_mm(record)
    rel = gt - gt[:, :1]
    return 1.2 * rel @ rot.T - rel  # about the root, so that the root stays where it is

  result = h36m.evaluate(_predictions(records, offset), records)
  assert result['p_mpjpe'] < 1e-2 and result['p_mpjpe_per_frame'] < 1e-2
  assert result['mpjpe'] > 50


def test_root_offset_counts_only_without_rootrel(h36m_test):
  _, records = h36m_test
  shift = np.array([3.0, 6.0, -2.0])  # 7 mm on every joint, root included
  pred = _predictions(records, lambda i, r: np.broadcast_to(shift, (243, 17, 3)))
  assert h36m.evaluate(pred, records)['mpjpe'] < 1e-3
  absolute = h36m.evaluate(pred, records, rootrel=False)
  np.testing.assert_allclose(absolute['mpjpe'], 7.0, atol=1e-3)
  assert absolute['p_mpjpe'] < 1e-3  # Procrustes removes the translation anyway


def test_frame_in_two_clips_gets_their_mean(h36m_test):
  _, records = h36m_test
  clip = records[0]
  pred = np.stack([_mm_to_normalised(_gt_mm(clip) + _joint_offsets(np.full(243, e)), clip)
                   for e in (10.0, 20.0)])
  result = h36m.evaluate(pred, [clip, clip])
  assert result['frames'] == 243 and result['clips'] == 2
  np.testing.assert_allclose(result['mpjpe'], 15 * 16 / 17, atol=1e-3)


def test_action_names_and_errors():
  assert h36m.action_name('Directions 1') == 'Directions'
  assert h36m.action_name('WalkDog') == 'WalkDog'
  assert h36m.action_name('WalkTogether 2') == 'WalkTogether'
  with pytest.raises(ValueError, match=r'expected \(2, T, 17, 3\)'):
    h36m.evaluate(np.zeros((3, 243, 17, 3)), [{}, {}])
  clip = {'source': 's_01_act_02_subact_01_ca_01', 'frame_index': np.arange(10)}
  with pytest.raises(ValueError, match=r"clip 0 \(s_01_act_02_subact_01_ca_01\): frame_index "
                                       r"has shape \(10,\), expected \(243,\)"):
    h36m.evaluate(np.zeros((1, 243, 17, 3)), [clip])


def test_format_table(h36m_test):
  _, records = h36m_test
  result = h36m.evaluate(np.stack([r['joint_3d'] for r in records]) * 1.01, records)
  table = h36m.format_table(result)
  lines = table.splitlines()
  assert lines[0].split() == ['action', 'MPJPE', 'P-MPJPE', 'frames']
  assert [line.split()[0] for line in lines[2:6]] == ['Directions', 'Discussion', 'Eating',
                                                     'Phoning']
  assert f'{result["mpjpe"]:8.2f}' in next(l for l in lines if 'action-wise' in l)
  assert f'{result["mpjpe_per_frame"]:8.2f}' in next(l for l in lines if 'per frame' in l)


# ----------------------------------------------------------------------------------------------
# predict_clips.


def test_flip_test_averages_a_model_that_is_not_flip_equivariant():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(5, 4, 17, 3)).astype(np.float32)
  weights = np.linspace(0.5, 2.1, 17).astype(np.float32)[:, None]  # left and right differ
  bias = np.array([0.3, 0.2, 0.1], np.float32)
  shapes = []

  def model(batch):
    shapes.append(batch.shape)
    return batch * weights + bias

  out = h36m.predict_clips(model, x, batch_size=2)
  want = x * (weights + weights[MIRROR]) / 2 + np.array([0, 0.2, 0.1], np.float32)
  want[:, :, 0] = 0
  np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
  assert shapes == [(2, 4, 17, 3)] * 6  # 3 batches (last one padded), two calls each
  no_flip = h36m.predict_clips(model, x, flip=False, rootrel=False, batch_size=8)
  np.testing.assert_allclose(no_flip, x * weights + bias, rtol=1e-6)


def test_flip_test_leaves_an_equivariant_model_unchanged():
  x = np.random.default_rng(3).normal(size=(3, 4, 17, 3)).astype(np.float32)
  double = lambda batch: jnp.asarray(batch) * 2  # jax output, as a jitted model gives
  flipped = h36m.predict_clips(double, x, rootrel=False)
  np.testing.assert_allclose(flipped, 2 * x, rtol=1e-6)
  np.testing.assert_allclose(h36m.predict_clips(double, x, flip=False, rootrel=False), flipped)
  rootrel = h36m.predict_clips(double, x)
  assert np.all(rootrel[:, :, 0] == 0)
  np.testing.assert_allclose(rootrel[:, :, 1:], 2 * x[:, :, 1:], rtol=1e-6)
  gt_2d = h36m.predict_clips(double, x, gt_2d=True)
  np.testing.assert_array_equal(gt_2d[..., :2], x[..., :2])
  np.testing.assert_allclose(gt_2d[:, :, 1:, 2], 2 * x[:, :, 1:, 2], rtol=1e-6)
  with pytest.raises(ValueError, match=r'predict returned shape \(3, 4, 17, 2\)'):
    h36m.predict_clips(lambda b: b[..., :2], x)


# ----------------------------------------------------------------------------------------------
# Command line.


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
  """(module, variables, official .bin) of a tiny random DSTformer."""
  module = DSTformer(**TINY)
  # Random weights from the abstract shapes: an eager init of DSTformer takes seconds on CPU.
  abstract = meta.unbox(jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 4, 17, 3))))
  rng = np.random.default_rng(4)
  variables = jax.tree.map(lambda a: rng.normal(0, 0.2, a.shape).astype(np.float32), abstract)
  path = tmp_path_factory.mktemp('tiny') / 'tiny.bin'
  official.save_official(variables, 'pose', path)
  return module, variables, path


def _eval_config(tiny_config, data_dir, *options, **h36m):
  """tests/configs/tiny_pose3d.py with this file's TINY model and `evals.h36m` options."""
  c = tiny_config('tiny_pose3d', ','.join([str(data_dir), *options]))
  with c.unlocked():
    c.model.update({k: v for k, v in TINY.items()})
    c.evals.h36m.update(batch_size=4, **h36m)
  return c


def test_cli_on_a_tiny_official_checkpoint(h36m_test, tiny_checkpoint, tiny_config, tmp_path,
                                           capsys):
  from mbjax.evaluate import __main__ as cli
  data_dir, records = h36m_test
  module, variables, checkpoint = tiny_checkpoint
  out = tmp_path / 'eval' / 'eval.json'
  cli.run(_eval_config(tiny_config, data_dir), str(checkpoint), str(out))
  result = json.loads(out.read_text())
  for key in ('mpjpe', 'p_mpjpe', 'mpjpe_per_frame', 'p_mpjpe_per_frame', 'per_action', 'frames'):
    assert key in result
  assert set(result['per_action']) == {'Directions', 'Discussion', 'Eating', 'Phoning'}
  assert result['flip'] and result['rootrel'] and not result['gt_2d'] and result['clips'] == 6
  printed = capsys.readouterr().out
  assert 'Average (action-wise)' in printed and f'mpjpe {result["mpjpe"]:.2f}' in printed
  # The same numbers by hand: the module on joint_2d, flip averaged, through evaluate.
  inputs = np.stack([r['joint_2d'] for r in records])
  apply = jax.jit(module.apply)
  pred = h36m.predict_clips(lambda x: apply(variables, x), inputs, batch_size=4)
  expected = h36m.evaluate(pred, records)
  assert expected['mpjpe'] > 10  # a random model is far off: the comparison means something
  np.testing.assert_allclose(result['mpjpe'], expected['mpjpe'], rtol=1e-4)
  np.testing.assert_allclose(result['p_mpjpe'], expected['p_mpjpe'], rtol=1e-4)


def test_cli_checkpoint_of_another_size_fails_clearly(h36m_test, tiny_checkpoint, tiny_config,
                                                      tmp_path):
  from mbjax.evaluate import __main__ as cli
  data_dir, _ = h36m_test
  config = _eval_config(tiny_config, data_dir)
  with config.unlocked():
    config.model.update(dim_feat=16, dim_rep=16)
  with pytest.raises(ValueError, match=r'(?s)missing or have another shape.*stored \(8, 24\), '
                                       r'model wants \(16, 48\)'):
    cli.run(config, str(tiny_checkpoint[2]), str(tmp_path / 'eval.json'))
  assert not (tmp_path / 'eval.json').exists()


def test_cli_global_model_keeps_the_predicted_root(h36m_test, tiny_checkpoint, tiny_config,
                                                   tmp_path):
  """A `global` config (official rootrel=False) keeps the predicted root, as the trainer's
  evaluator does; before, the CLI zeroed it whatever the config said. (The protocol's errors are
  root-relative, so MPJPE is the same either way; the option must still reach the evaluator.)"""
  from mbjax.evaluate import __main__ as cli
  data_dir, records = h36m_test
  module, variables, checkpoint = tiny_checkpoint
  out = tmp_path / 'eval.json'
  cli.run(_eval_config(tiny_config, data_dir, 'global'), str(checkpoint), str(out))
  result = json.loads(out.read_text())
  assert not result['rootrel']
  inputs = np.stack([r['joint_2d'] for r in records])
  apply = jax.jit(module.apply)
  kept = h36m.evaluate(h36m.predict_clips(lambda x: apply(variables, x), inputs, rootrel=False,
                                          batch_size=4), records)
  np.testing.assert_allclose(result['mpjpe'], kept['mpjpe'], rtol=1e-4)
  np.testing.assert_allclose(result['p_mpjpe'], kept['p_mpjpe'], rtol=1e-4)


def test_cli_on_a_convert_dir_with_gt_2d_and_no_flip(h36m_test, tiny_checkpoint, tiny_config,
                                                     tmp_path):
  from mbjax.evaluate import __main__ as cli
  data_dir, records = h36m_test
  module, variables, _ = tiny_checkpoint
  converted.save(tmp_path / 'converted', variables, {'model': 'pose', 'backbone': TINY})
  out = tmp_path / 'eval.json'
  cli.run(_eval_config(tiny_config, data_dir, 'noflip', gt_2d=True), str(tmp_path / 'converted'),
          str(out))
  result = json.loads(out.read_text())
  assert not result['flip'] and result['gt_2d']
  # By hand: ground-truth 2D in (x, y of joint_3d, confidence 1), predicted x, y replaced by it.
  xy = np.stack([r['joint_3d'][..., :2] for r in records])
  inputs = np.concatenate([xy, np.ones_like(xy[..., :1])], axis=-1)
  pred = np.array(jax.jit(module.apply)(variables, inputs))
  pred[:, :, 0] = 0
  pred[..., :2] = xy
  expected = h36m.evaluate(pred, records)
  assert expected['mpjpe'] > 1  # the random depths are wrong
  np.testing.assert_allclose(result['mpjpe'], expected['mpjpe'], rtol=1e-4)
  np.testing.assert_allclose(result['p_mpjpe_per_frame'], expected['p_mpjpe_per_frame'], rtol=1e-4)
