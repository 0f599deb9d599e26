"""mesh_h36m / mesh_pw3d / mesh_coco builders, mesh examples (flip) and the mesh schedule."""

import numpy as np
import pytest

import data_formats
from data_prep import builder
from mbjax.data import build_options, mesh, mesh_clips, pipelines, records
from mbjax.data.report import BuildReport
from mbjax.data import rotations

# (source, frames). Train: 4 windows of 16 at stride 8 (+ no tail), a short sequence (resampled),
# an exact clip, a short last sequence (dropped). Test: stride 16.
PW3D_TRAIN = [('a', 40), ('b', 10), ('c', 16), ('d', 5)]
PW3D_TEST = [('e', 33), ('f', 16)]
H36M_TRAIN = [('s_01_act_02_subact_01_ca_01', 20), ('s_01_act_02_subact_01_ca_03', 16)]
H36M_CAMERAS = ['54138969', '58860488']  # 1000 x 1002, 1000 x 1000
COCO_HW = [(480, 640), (640, 427), (100, 200)]
LEFT, RIGHT = (4, 5, 6, 11, 12, 13), (1, 2, 3, 14, 15, 16)


def _build(tmp, name, splits, **options):
  source = data_formats.write_mesh_pickle(tmp / f'{name}.pkl', splits)
  report = builder.build(name, source=source, data_dir=tmp / 'tfds', options=options)
  return report, tmp / 'tfds'


def _load(data_dir, name, split):
  source = records.load(name, split, data_dir=data_dir)
  return [source[i] for i in range(len(source))]


@pytest.fixture(scope='module')
def pw3d(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('pw3d')
  report, data_dir = _build(tmp, 'mesh_pw3d', {
      'train': data_formats.mesh_split(PW3D_TRAIN),
      'test': data_formats.mesh_split(PW3D_TEST, confidence_shape='(N, 17, 1)')})
  return report, _load(data_dir, 'mesh_pw3d', 'train'), _load(data_dir, 'mesh_pw3d', 'test')


def _expected_2d(rows, res_w, res_h, conf_row0_16=True):
  """The official normalisation of data_formats.mesh_split, written out by hand."""
  rows = np.asarray(rows, np.float64)[:, None]
  joints = np.arange(17, dtype=np.float64)[None, :]
  x = (10 + rows) / res_w * 2 - 1 + 0 * joints
  y = (20 + joints) / res_w * 2 - res_h / res_w + 0 * rows
  conf = 0.5 + joints / 100 + 0 * rows
  if conf_row0_16:
    conf[np.asarray(rows[:, 0]) == 0, 16] = 1.25
  return np.stack([x, y, conf], -1)


def test_pw3d_clips_and_normalisation(pw3d):
  report, train, test = pw3d
  starts = [int(r['start_frame']) for r in train]
  assert starts[:4] == [0, 8, 16, 24] and starts[5] == 50 and len(train) == 6
  resampled = train[4]['frame_index']
  assert resampled.min() >= 40 and resampled.max() <= 49 and np.all(np.diff(resampled) >= 0)
  assert [r['source'] for r in train] == [b'a'] * 4 + [b'b', b'c']
  assert report.skipped_counts['train'][mesh.SKIP_SHORT_LAST] == 1
  for r in train[:4] + train[5:]:
    np.testing.assert_array_equal(r['frame_index'], np.arange(16) + int(r['start_frame']))
  assert [int(r['start_frame']) for r in test] == [0, 16, 33]  # test stride = clip_len
  for r in train + test:
    assert r['joint_2d'].shape == (16, 17, 3) and r['joint_2d'].dtype == np.float32
    np.testing.assert_allclose(r['joint_2d'], _expected_2d(r['frame_index'], 1920, 1920),
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(r['smpl_pose'], r['frame_index'][:, None] / 100
                               + np.arange(72) / 1000, atol=1e-6)
    np.testing.assert_allclose(r['smpl_shape'], r['frame_index'][:, None]
                               + np.arange(10) / 10, atol=1e-5)
    np.testing.assert_array_equal(r['res'], [1920, 1920])
    assert r['camera'] == b''


def test_h36m_uses_each_camera_size(tmp_path):
  test = data_formats.mesh_split([('s_09_act_02_subact_01_ca_01', 16)], cameras=['54138969'])
  del test['confidence']  # optional for H36M (official DataReaderH36M: ones)
  _, data_dir = _build(tmp_path, 'mesh_h36m', {
      'train': data_formats.mesh_split(H36M_TRAIN, cameras=H36M_CAMERAS), 'test': test})
  train = _load(data_dir, 'mesh_h36m', 'train')
  assert [int(r['start_frame']) for r in train] == [0, 20]  # 20 frames: one window at stride 8
  np.testing.assert_allclose(train[0]['joint_2d'], _expected_2d(np.arange(16), 1000, 1002),
                             atol=1e-6)
  np.testing.assert_allclose(train[1]['joint_2d'], _expected_2d(np.arange(20, 36), 1000, 1000),
                             atol=1e-6)
  assert [r['camera'] for r in train] == [b'54138969', b'58860488']
  np.testing.assert_array_equal(train[0]['res'], [1000, 1002])
  (only,) = _load(data_dir, 'mesh_h36m', 'test')
  np.testing.assert_array_equal(only['joint_2d'][..., 2], np.ones((16, 17)))


@pytest.mark.parametrize('per_image', [False, True])
def test_coco_single_frames(tmp_path, per_image):
  # Two people in img2: one clip each (stride 1).
  train = data_formats.mesh_split([('img1', 1), ('img2', 2), ('img3', 1)], img_hw=COCO_HW)
  options = {'per_image_res': True} if per_image else {}
  _, data_dir = _build(tmp_path, 'mesh_coco', {'train': train}, **options)  # no test: train only
  built = _load(data_dir, 'mesh_coco', 'train')
  assert [r['source'] for r in built] == [b'img1', b'img2', b'img2', b'img3']
  sides = [640, 640, 640, 200] if per_image else [640] * 4
  for row, (r, side) in enumerate(zip(built, sides)):
    assert r['joint_2d'].shape == (1, 17, 3) and r['smpl_pose'].shape == (1, 72)
    np.testing.assert_allclose(r['joint_2d'], _expected_2d([row], side, side), atol=1e-6)
    np.testing.assert_array_equal(r['res'], [side, side])
  with pytest.raises(ValueError, match='has no split'):
    records.load('mesh_coco', 'test', data_dir=data_dir)


def test_registry_lists_the_three_and_rejects_the_bare_name():
  assert {'mesh_h36m', 'mesh_pw3d', 'mesh_coco'} <= set(builder.available_datasets())
  assert builder.resolve('mesh_coco')[0].FEATURES['joint_2d'][0] == ((1, 17, 3))
  with pytest.raises(ValueError, match='unknown dataset'):
    builder.resolve('mesh')


def _seed(flips: bool) -> int:
  return next(s for s in range(100) if (np.random.default_rng(s).random() < 0.5) == flips)


def test_mesh_example_flip(pw3d):
  record = pw3d[1][0]
  plain = mesh_clips.mesh_example(record, np.random.default_rng(_seed(True)), flip=False)
  assert plain['input'].shape == (16, 17, 3) and plain['theta'].shape == (16, 82)
  assert plain['input'][0, 16, 2] == 1.0  # confidence 1.25 clipped, as official
  np.testing.assert_array_equal(plain['input'][..., :2], record['joint_2d'][..., :2])
  np.testing.assert_array_equal(plain['theta'], np.concatenate(
      [record['smpl_pose'], record['smpl_shape']], -1))
  same = mesh_clips.mesh_example(record, np.random.default_rng(_seed(False)))
  np.testing.assert_array_equal(same['theta'], plain['theta'])
  flipped = mesh_clips.mesh_example(record, np.random.default_rng(_seed(True)))
  x, fx = plain['input'], flipped['input']
  for left, right in zip(LEFT, RIGHT):
    np.testing.assert_array_equal(fx[:, left, 0], -x[:, right, 0])
    np.testing.assert_array_equal(fx[:, right, 1:], x[:, left, 1:])
  np.testing.assert_array_equal(fx[:, 0], x[:, 0] * [-1, 1, 1])
  pose = plain['theta'][:, :72].reshape(16, 24, 3)
  fpose = flipped['theta'][:, :72].reshape(16, 24, 3)
  for a, b in rotations.SMPL_FLIP_PAIRS:
    np.testing.assert_array_equal(fpose[:, a], pose[:, b] * [1, -1, -1])
    np.testing.assert_array_equal(fpose[:, b], pose[:, a] * [1, -1, -1])
  np.testing.assert_array_equal(fpose[:, 0], pose[:, 0] * [1, -1, -1])  # root: negated only
  np.testing.assert_array_equal(flipped['theta'][:, 72:], plain['theta'][:, 72:])
  np.testing.assert_allclose(flipped['theta'][:, :72],
                             np.asarray(rotations.flip_thetas_batch(plain['theta'][:, :72])))


def _layout_error(tmp_path, dataset, splits, match, **options):
  path = data_formats.write_mesh_pickle(tmp_path / 'bad.pkl', splits)
  with pytest.raises(ValueError, match=match):
    for split in ('train', 'test'):
      list(mesh.generate(path, split, BuildReport('x'), dataset=dataset, **options))


def test_bad_layouts_say_what_is_wrong(tmp_path):
  good = lambda: data_formats.mesh_split(PW3D_TEST)  # noqa: E731
  no_shape = good()
  del no_shape['smpl_shape']
  _layout_error(tmp_path, 'pw3d', {'train': no_shape, 'test': good()},
                r'train is missing key\(s\) smpl_shape')
  short_pose = good()
  short_pose['smpl_pose'] = short_pose['smpl_pose'][:, :69]
  _layout_error(tmp_path, 'pw3d', {'train': good(), 'test': short_pose},
                r'test/smpl_pose has shape \(49, 69\), expected \(N, 72\)')
  joints = good()
  joints['joint_2d'] = joints['joint_2d'][:, :16]
  _layout_error(tmp_path, 'pw3d', {'train': joints, 'test': good()},
                r'train/joint_2d has shape \(49, 16, 2\), expected \(N, 17, any\) with N = 49')
  no_conf = good()
  del no_conf['confidence']
  _layout_error(tmp_path, 'pw3d', {'train': no_conf, 'test': good()},
                r'train is missing key\(s\) confidence')
  _layout_error(tmp_path, 'pw3d', {'train': good()}, r"expected a dict with a 'test' entry")
  nan = good()
  nan['smpl_pose'][3, 5] = np.nan
  _layout_error(tmp_path, 'pw3d', {'train': nan, 'test': good()},
                r'train/smpl_pose row 3 has NaN')
  _layout_error(tmp_path, 'coco', {'train': good()}, r'missing key\(s\) img_hw',
                per_image_res=True)
  cams = data_formats.mesh_split(PW3D_TEST, cameras=['54138969', 'nope'])
  _layout_error(tmp_path, 'h36m', {'train': cams, 'test': cams}, 'not a Human3.6M camera')
  (tmp_path / 'text.pkl').write_text('hello')
  with pytest.raises(ValueError, match='not a pickle file'):
    list(mesh.generate(tmp_path / 'text.pkl', 'train', BuildReport('x'), dataset='pw3d'))


def test_bad_options_fail_before_reading(tmp_path):
  with pytest.raises(build_options.OptionError, match='single frames'):
    builder.build('mesh_coco', source=tmp_path, data_dir=tmp_path / 'tfds',
                  options={'clip_len': 4})
  with pytest.raises(build_options.OptionError, match='train_stride'):
    builder.build('mesh_pw3d', source=tmp_path, data_dir=tmp_path / 'tfds',
                  options={'train_stride': 0})


def _records(count, frames):
  return [{'joint_2d': np.full((frames, 17, 3), i, np.float32),
           'smpl_pose': np.zeros((frames, 72), np.float32),
           'smpl_shape': np.zeros((frames, 10), np.float32)} for i in range(count)]


def test_mesh_curriculum_follows_the_official_epoch_order():
  plan = mesh_clips.mesh_schedule(3, h36m=True, coco=True, pw3d=True, warmup_h36m=1,
                                  warmup_coco=2)
  assert plan == [['h36m', 'coco', 'pw3d'], ['coco', 'pw3d'], ['pw3d']]
  curriculum = mesh_clips.make_mesh_curriculum(
      h36m=_records(8, 16), coco=_records(6, 1), pw3d=_records(4, 16), epochs=3,
      global_batch=2, warmup_h36m=1, warmup_coco=2)
  assert isinstance(curriculum, pipelines.Curriculum)
  assert [p.name for p in curriculum.phases] == ['h36m', 'coco', 'pw3d']
  assert curriculum.total_steps == (4 + 3 + 2) + (3 + 2) + 2
  assert [curriculum.epoch_steps(e) for e in range(3)] == [9, 5, 2]
  assert curriculum.locate(4) == (0, 1, 0) and curriculum.locate(14) == (2, 2, 0)
  assert curriculum.kind_of(0) == mesh_clips.KIND_MESH
  batches = pipelines.HostBatches(curriculum, seed=0)
  assert batches[0]['input'].shape == (2, 16, 17, 3)
  assert batches[4]['input'].shape == (2, 1, 17, 3) and batches[4]['theta'].shape == (2, 1, 82)
  assert batches[9]['input'].shape == (2, 1, 17, 3)  # epoch 1 starts with COCO
