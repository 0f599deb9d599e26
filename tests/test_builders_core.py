"""Dataset builder infrastructure, the build CLI and the h36m / amass builders, on tiny files."""

import contextlib
import io
import pathlib
import pickle
import subprocess
import sys
import types

import grain
import numpy as np
import pytest
import tensorflow_datasets as tfds

import data_formats
from data_prep import amass
from data_prep import build as build_cli
from data_prep import builder
from data_prep import h36m
from mbjax.data import h36m as h36m_screen
from mbjax.data import transforms, writer
from mbjax.data.records import dataset_dir, load as load_split
from mbjax.data.report import BuildReport

# (source, camera, frames). Train: 2 windows + dropped tail, a short sequence (resampled), an
# exact clip, and a short last sequence (dropped by the official rule).
H36M_TRAIN = [('s_01_act_02_subact_01_ca_01', '54138969', 400),
              ('s_01_act_02_subact_01_ca_02', '55011271', 100),
              ('s_01_act_03_subact_01_ca_03', '58860488', 243),
              ('s_01_act_03_subact_01_ca_04', '60457274', 50)]
H36M_TEST = [('s_09_act_02_subact_01_ca_01', '54138969', 500),
             ('s_09_act_05_subact_02_ca_02', '55011271', 120),
             ('s_09_act_05_subact_02_ca_03', '58860488', 260)]


def _h36m_source(path, train=None, test=None):
  train = train if train is not None else data_formats.h36m_split(H36M_TRAIN, test=False)
  test = test if test is not None else data_formats.h36m_split(
      H36M_TEST, test=True, confidence_shape='(N, 17, 1)')
  return data_formats.write_h36m(path, train, test)


@pytest.fixture(scope='module')
def h36m_built(tmp_path_factory):
  """h36m built once through the CLI: (data_dir, what the CLI printed)."""
  root = tmp_path_factory.mktemp('h36m')
  source = _h36m_source(root / 'h36m_sh_conf_cam_source_final.pkl')
  data_dir = root / 'data'
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):  # capsys is function-scoped
    status = build_cli.run(['h36m', '--source', str(source), '--data_dir', str(data_dir),
                             '--opt', 'seed=0'])
  assert status == 0
  return data_dir, printed.getvalue()


# ----------------------------------------------------------------------------------------------
# split_clips / resample (official lib/utils/utils_data.py).


def _frame_walk_split_clips(sources, clip_len, stride, rng):
  """The official loop, frame by frame, as an independent oracle for transforms.split_clips."""
  clips, saved, st, i, n = [], set(), 0, 0, len(sources)
  while i < n:
    i += 1
    if i - st == clip_len:
      clips.append(np.arange(st, i))
      saved.add(sources[i - 1])
      st += stride
    if i == n:
      break
    if sources[i] != sources[i - 1]:
      if sources[i - 1] not in saved:
        clips.append(st + transforms.resample_indices(i - st, clip_len, rng))
        saved.add(sources[i - 1])
      st = i
  return clips


def test_split_clips_matches_the_official_frame_walk():
  draw = np.random.default_rng(7)
  for trial in range(40):
    runs = draw.integers(1, 30, size=draw.integers(1, 8))
    ids = draw.integers(0, 4, size=len(runs))  # repeated ids: non-contiguous runs of one sequence
    sources = np.repeat(ids, runs).tolist()
    clip_len, stride = int(draw.integers(2, 12)), int(draw.integers(1, 12))
    got = transforms.split_clips(np.array(sources), clip_len, stride, np.random.default_rng(trial))
    want = _frame_walk_split_clips(sources, clip_len, stride, np.random.default_rng(trial))
    assert len(got) == len(want), (trial, sources, clip_len, stride)
    for g, w in zip(got, want):
      np.testing.assert_array_equal(g, w)


def test_split_clips_on_named_sequences():
  sources = np.array(['a'] * 10 + ['b'] * 4 + ['c'] * 7 + ['d'] * 3)
  clips = transforms.split_clips(sources, 6, 2, np.random.default_rng(0))
  starts = [int(c[0]) for c in clips]
  # a: windows at 0, 2, 4 (tail 10-frame window at 6 does not fit); b: resampled from frame 10;
  # c: windows at 14 (and 16 would end at 22 > 21); d (last, short): dropped.
  assert starts == [0, 2, 4, 10, 14]
  np.testing.assert_array_equal(clips[0], np.arange(6))
  assert set(clips[3].tolist()) <= set(range(10, 14)) and len(clips[3]) == 6
  assert all(c.dtype == np.int64 for c in clips)


def test_resample_indices_short_and_long():
  even = np.linspace(0, 100, 243, endpoint=False)
  a = transforms.resample_indices(100, 243, np.random.default_rng(0))
  assert a.shape == (243,) and a.dtype == np.int64
  assert np.all(np.diff(a) >= 0) and a.min() == 0 and a.max() <= 99
  assert np.all(np.abs(a - even) <= 1)  # each pick is the floor or ceil of its even position
  np.testing.assert_array_equal(a, transforms.resample_indices(100, 243, np.random.default_rng(0)))
  assert not np.array_equal(a, transforms.resample_indices(100, 243, np.random.default_rng(1)))
  long = transforms.resample_indices(1000, 243, np.random.default_rng(0))
  even = np.linspace(0, 1000, 243, endpoint=False)
  assert np.all(long >= np.floor(even)) and np.all(long < even + 1000 / 243)


# ----------------------------------------------------------------------------------------------
# h36m.


def test_h36m_normalisation_by_hand():
  res_w, res_h = h36m_screen.camera_resolutions(['54138969', '55011271', '60457274', '58860488'])
  np.testing.assert_array_equal(res_w, [1000] * 4)
  np.testing.assert_array_equal(res_h, [1002, 1000, 1002, 1000])
  pixels = np.array([[[500, 501]], [[500, 500]], [[1000, 1002]], [[0, 0]]], np.float32)
  np.testing.assert_allclose(h36m_screen.normalize_2d(pixels, res_w, res_h)[:, 0],
                             [[0, 0], [0, 0], [1, 1.002], [-1, -1]], atol=1e-6)
  xyz = np.array([[[500, 501, 250]], [[750, 500, -100]]], np.float32)
  out = h36m_screen.normalize_3d(xyz, res_w[:2], res_h[:2])
  np.testing.assert_allclose(out[:, 0], [[0, 0, 0.5], [0.5, 0, -0.2]], atol=1e-6)
  np.testing.assert_allclose(h36m_screen.denormalize_3d(out, res_w[:2], res_h[:2]), xyz, atol=1e-4)


def test_h36m_bad_camera_names_the_row():
  with pytest.raises(ValueError, match=r"camera_name\[2\] = '12345678'"):
    h36m_screen.camera_resolutions(['54138969', '55011271', '12345678'])


def test_h36m_cli_report_and_counts(h36m_built):
  data_dir, out = h36m_built
  assert 'h36m train: 4 records' in out and 'records/s' in out
  assert 'train: 4 records written, 1 skipped' in out
  assert 'test: 4 records written, 0 skipped' in out
  assert '1 skipped: ' + h36m.SKIP_SHORT_LAST in out
  assert len(load_split('h36m', 'train', data_dir=data_dir)) == 4
  assert len(load_split('h36m', 'test', data_dir=data_dir)) == 4
  report = (dataset_dir('h36m', data_dir=data_dir) / 'build_report.json').read_text()
  assert '"written": 4' in report and h36m.SKIP_SHORT_LAST in report


def test_h36m_train_clips(h36m_built):
  data_dir, _ = h36m_built
  records = [load_split('h36m', 'train', data_dir=data_dir)[i] for i in range(4)]
  np.testing.assert_array_equal(records[0]['frame_index'], np.arange(0, 243))
  np.testing.assert_array_equal(records[1]['frame_index'], np.arange(81, 324))
  resampled = records[2]['frame_index']
  expected = 400 + transforms.resample_indices(100, 243, np.random.default_rng(0))  # seed=0
  np.testing.assert_array_equal(resampled, expected)
  assert resampled.min() == 400 and resampled.max() <= 499 and np.all(np.diff(resampled) >= 0)
  np.testing.assert_array_equal(records[3]['frame_index'], np.arange(500, 743))
  sources = [r['source'] for r in records]
  cameras = [r['camera'] for r in records]
  assert sources == [s.encode() for s, _, _ in (H36M_TRAIN[0], H36M_TRAIN[0], H36M_TRAIN[1],
                                                 H36M_TRAIN[2])]
  assert cameras == [b'54138969', b'54138969', b'55011271', b'58860488']
  joints = np.arange(17, dtype=np.float32)
  for r in records:
    rows = r['frame_index'].astype(np.float32)[:, None]
    # Pixel x = 500 + row on a 1000-wide image -> row / 500; y = 501 + j.
    np.testing.assert_allclose(r['joint_2d'][..., 0], np.broadcast_to(rows / 500, (243, 17)),
                               atol=1e-5)
    y = (501 + joints) / 500 - r['res_h'] / 1000
    np.testing.assert_allclose(r['joint_2d'][..., 1], np.broadcast_to(y, (243, 17)), atol=1e-5)
    np.testing.assert_allclose(r['joint_2d'][..., 2], np.broadcast_to(0.5 + joints / 100,
                                                                      (243, 17)), atol=1e-6)
    np.testing.assert_allclose(r['joint_3d'][..., :2], r['joint_2d'][..., :2], atol=1e-6)
    np.testing.assert_allclose(r['joint_3d'][..., 2], np.broadcast_to((100 + rows) / 500,
                                                                      (243, 17)), atol=1e-5)
    assert r['action'] == b'' and not r['factor_2_5d'].any() and not r['joints_2_5d_mm'].any()
  assert records[0]['joint_2d'][0, 0, :2].tolist() == [0.0, 0.0]  # pixel (500, 501), 1000x1002
  assert [int(r['res_h']) for r in records] == [1002, 1002, 1000, 1000]
  assert records[0]['res_w'].dtype == np.int32 and records[0]['res_w'] == 1000


def test_h36m_test_clips(h36m_built):
  data_dir, _ = h36m_built
  source = load_split('h36m', 'test', data_dir=data_dir)
  records = [source[i] for i in range(len(source))]
  np.testing.assert_array_equal(records[0]['frame_index'], np.arange(0, 243))
  np.testing.assert_array_equal(records[1]['frame_index'], np.arange(243, 486))  # stride 243
  assert records[2]['frame_index'].min() == 500 and records[2]['frame_index'].max() <= 619
  np.testing.assert_array_equal(records[3]['frame_index'], np.arange(620, 863))
  for r in records:
    rows = r['frame_index'].astype(np.float32)
    assert r['action'] == b'Directions'
    np.testing.assert_allclose(r['factor_2_5d'], 4 + rows / 1000, rtol=1e-6)
    np.testing.assert_allclose(r['joints_2_5d_mm'][..., 0], np.broadcast_to(rows[:, None],
                                                                           (243, 17)))
    np.testing.assert_allclose(r['joints_2_5d_mm'][:, 3, 2], 1000 + rows)
    np.testing.assert_allclose(r['joint_2d'][..., 2], np.broadcast_to(
        0.5 + np.arange(17) / 100, (243, 17)), atol=1e-6)  # (N, 17, 1) confidence read too


def test_h36m_reads_with_grain_and_tfds(h36m_built):
  data_dir, _ = h36m_built
  source = load_split('h36m', 'train', data_dir=data_dir)
  batch = grain.MapDataset.source(source).batch(2)[1]
  assert batch['joint_2d'].shape == (2, 243, 17, 3) and batch['joint_2d'].dtype == np.float32
  assert batch['res_w'].dtype == np.int32 and batch['source'].shape == (2,)
  np.testing.assert_array_equal(batch['frame_index'][:, 0], [400, 500])
  loader = grain.DataLoader(
      data_source=source, worker_count=0, operations=[grain.transforms.Batch(2)],
      sampler=grain.samplers.IndexSampler(len(source), shuffle=True, seed=3, num_epochs=1))
  firsts = sorted(int(i) for b in loader for i in b['frame_index'][:, 0])
  assert firsts == [0, 81, 400, 500]
  restored = pickle.loads(pickle.dumps(source))  # grain worker processes pickle the source
  np.testing.assert_array_equal(restored[3]['joint_3d'], source[3]['joint_3d'])
  with pytest.raises(IndexError, match='out of range'):
    source[4]
  via_tfds = tfds.data_source('h36m', data_dir=str(data_dir))['test']
  via_dir = tfds.builder_from_directory(str(dataset_dir('h36m', data_dir=data_dir)))
  assert len(via_tfds) == 4 and via_dir.info.splits['train'].num_examples == 4
  np.testing.assert_array_equal(via_tfds[1]['joint_2d'],
                                load_split('h36m', 'test', data_dir=data_dir)[1]['joint_2d'])


def _generate_all(path, split='train'):
  report = BuildReport('h36m')
  return list(h36m.generate(path, split, report)), report


def test_h36m_errors_name_file_split_key_and_row(tmp_path):
  train = data_formats.h36m_split(H36M_TRAIN, test=False)
  train['camera_name'][410] = '11111111'
  path = _h36m_source(tmp_path / 'camera.pkl', train=train)
  with pytest.raises(ValueError, match=r"camera\.pkl: train/camera_name\[410\] = '11111111'"):
    _generate_all(path)

  train = data_formats.h36m_split(H36M_TRAIN, test=False)
  train['joint_2d'][7, 3, 1] = np.nan
  path = _h36m_source(tmp_path / 'nan.pkl', train=train)
  with pytest.raises(ValueError, match=r'nan\.pkl: train/joint_2d row 7 has NaN or Inf'):
    _generate_all(path)

  test = data_formats.h36m_split(H36M_TEST, test=True)
  test['joints_2.5d_image'][100, 0, 0] = np.inf
  path = _h36m_source(tmp_path / 'inf.pkl', test=test)
  with pytest.raises(ValueError, match=r'inf\.pkl: test/joints_2.5d_image row 100'):
    _generate_all(path, 'test')

  test = data_formats.h36m_split(H36M_TEST, test=True)
  del test['2.5d_factor']
  path = _h36m_source(tmp_path / 'missing.pkl', test=test)
  with pytest.raises(ValueError, match=r'missing\.pkl: test is missing key\(s\) 2.5d_factor'):
    _generate_all(path, 'test')
  _generate_all(path, 'train')  # train needs no test-only keys

  train = data_formats.h36m_split(H36M_TRAIN, test=False)
  train['joint3d_image'] = train['joint3d_image'][..., :2]
  path = _h36m_source(tmp_path / 'shape.pkl', train=train)
  with pytest.raises(ValueError, match=r'shape\.pkl: train/joint3d_image has shape '
                                       r'\(793, 17, 2\), expected \(793, 17, 3\)'):
    _generate_all(path)
  # Through the builder the error keeps its type and message.
  with pytest.raises(ValueError, match=r'train/joint3d_image has shape'):
    builder.build('h36m', source=path, data_dir=tmp_path / 'data')


def test_h36m_without_confidence_uses_ones(tmp_path):
  train = data_formats.h36m_split(H36M_TRAIN[:1], test=False)
  del train['confidence']
  path = _h36m_source(tmp_path / 'noconf.pkl', train=train)
  clips, report = _generate_all(path)
  assert len(clips) == 2 and report.written_counts['train'] == 2
  np.testing.assert_array_equal(clips[0][1]['joint_2d'][..., 2], np.ones((243, 17)))


# ----------------------------------------------------------------------------------------------
# amass.


def test_amass_axes_and_scale_on_a_known_point():
  point = np.zeros((17, 1, 3))
  point[4, 0] = [1.0, 2.0, 3.0]  # metres, Z up
  out = amass.amass_to_camera(point)
  assert out.shape == (1, 17, 3) and out.dtype == np.float32
  np.testing.assert_allclose(out[0, 4], [0.298, -0.894, 0.596], atol=1e-6)  # (x, -z, y) * 0.298


def test_amass_build_clips_and_report(tmp_path):
  nan = data_formats.amass_sequence(250)
  nan[3, 17, 1] = np.nan
  sequences = [data_formats.amass_sequence(300), data_formats.amass_sequence(100), nan,
               data_formats.amass_sequence(260, joints=16), data_formats.amass_sequence(330),
               data_formats.amass_sequence(40)]
  source = data_formats.write_amass(tmp_path / 'amass_joints_h36m_60.pkl', sequences)
  report = builder.build('amass', source=source, data_dir=tmp_path / 'data')
  assert report.as_dict()['splits']['train'] == {'written': 4, 'skipped': {
      amass.SKIP_NONFINITE: 1, amass.SKIP_JOINTS: 1, amass.SKIP_SHORT_LAST: 1}}
  data = load_split('amass', 'train', data_dir=tmp_path / 'data')
  records = [data[i] for i in range(len(data))]
  assert [(r['source'], int(r['start_frame'])) for r in records] == [
      (b'0', 0), (b'1', 0), (b'4', 0), (b'4', 81)]
  assert records[0]['start_frame'].dtype == np.int32
  joints = np.arange(17, dtype=np.float32)
  # Sequence point (1 + t, 2 + j, 3) -> (1 + t, -3, 2 + j) * 0.298.
  for r, first in ((records[0], 0), (records[3], 81)):
    frames = np.arange(first, first + 243, dtype=np.float32)[:, None]
    np.testing.assert_allclose(r['joints3d'][..., 0], np.broadcast_to((1 + frames) * 0.298,
                                                                      (243, 17)), rtol=1e-6)
    np.testing.assert_allclose(r['joints3d'][..., 1], -3 * 0.298, rtol=1e-6)
    np.testing.assert_allclose(r['joints3d'][..., 2], np.broadcast_to((2 + joints) * 0.298,
                                                                      (243, 17)), rtol=1e-6)
  frames = np.round(records[1]['joints3d'][:, 0, 0] / 0.298 - 1).astype(np.int64)
  np.testing.assert_array_equal(frames, transforms.resample_indices(100, 243,
                                                                 np.random.default_rng(0)))
  # Rebuilding replaces the dataset; another seed changes only the resampled clip.
  builder.build('amass', source=source, data_dir=tmp_path / 'data', options={'seed': 5})
  again = load_split('amass', 'train', data_dir=tmp_path / 'data')
  assert len(again) == 4
  np.testing.assert_array_equal(again[0]['joints3d'], records[0]['joints3d'])
  assert not np.array_equal(again[1]['joints3d'], records[1]['joints3d'])


def test_amass_rejects_a_non_list(tmp_path):
  path = tmp_path / 'dict.pkl'
  path.write_bytes(pickle.dumps({'joints': 1}))
  with pytest.raises(ValueError, match=r'dict\.pkl: expected a pickled list'):
    list(amass.generate(path, 'train', BuildReport('amass')))


# ----------------------------------------------------------------------------------------------
# CLI.


def test_cli_errors(tmp_path, capsys):
  source = data_formats.write_amass(tmp_path / 'a.pkl', [data_formats.amass_sequence(250)] * 2)
  with pytest.raises(SystemExit) as exit_info:
    build_cli.run(['h63m', '--source', str(source), '--data_dir', str(tmp_path)])
  err = capsys.readouterr().err
  assert exit_info.value.code == 2
  assert "unknown dataset 'h63m'" in err and 'amass, h36m' in err
  missing = tmp_path / 'nowhere.pkl'
  with pytest.raises(SystemExit):
    build_cli.run(['amass', '--source', str(missing), '--data_dir', str(tmp_path)])
  assert f'source {missing} does not exist' in capsys.readouterr().err
  assert build_cli.run(['amass', '--source', str(source), '--data_dir', str(tmp_path),
                         '--opt', 'sead=1']) == 2
  assert 'unknown option sead; amass accepts: seed, stride' in capsys.readouterr().err
  assert build_cli.run(['amass', '--source', str(source), '--data_dir', str(tmp_path),
                         '--opt', 'stride=0']) == 2  # used to write empty records, exit 0
  assert 'option stride=0 is out of range; allowed: >= 1' in capsys.readouterr().err
  assert not (tmp_path / 'amass').exists()
  assert build_cli.run(['amass', '--source', str(source), '--data_dir', str(tmp_path),
                         '--opt', 'stride=200']) == 0
  out = capsys.readouterr().out
  assert 'train: 2 records written, 0 skipped' in out  # 2 sequences of 250, one window each


def test_cli_as_a_process(tmp_path):
  """`python -m data_prep.build` from the repository root, as the README runs it (absl flags)."""
  root = pathlib.Path(__file__).resolve().parents[1]
  command = [sys.executable, '-m', 'data_prep.build', 'wild', '--source', 'data_prep/assets/wild',
             '--data_dir', str(tmp_path), '--opt', 'clip_len=27', '--opt=stride=27']
  done = subprocess.run(command, cwd=root, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr
  assert 'train: 11 records written, 0 skipped' in done.stdout  # 301 frames // 27
  missing = subprocess.run(command[:5] + ['nowhere'] + command[6:], cwd=root,
                           capture_output=True, text=True)
  assert missing.returncode == 2 and 'wild: source nowhere does not exist' in missing.stderr


def test_parse_options():
  assert build_cli.parse_options(['seed=3', 'name=abc', 'pair=(1, 2)', 'x=0.5', 'flag=True']) == {
      'seed': 3, 'name': 'abc', 'pair': (1, 2), 'x': 0.5, 'flag': True}
  with pytest.raises(ValueError, match='key=value'):
    build_cli.parse_options(['seed'])


# ----------------------------------------------------------------------------------------------
# Generic builder: any module with the API, aliases with module_for, empty splits, checks.


def _toy_module(bad: str = ''):
  def generate(source, split, report, *, version=1, scale=1.0):
    del source
    n = {'train': 3, 'val': 0, 'test': 2}[split]
    for i in range(n):
      example = {'track': np.full((i + 1, 3), scale * version, np.float64),  # float64 -> float32
                 'label': i, 'name': f'{split}{i}'}
      if bad == 'shape':
        example['track'] = np.zeros((2, 4))
      if bad != 'count':
        report.written(split)
      yield f'{split}-{i}', example
    report.skipped(split, 'toy reason', 2)

  module = types.ModuleType('data_prep.toyset')
  module.NAME = 'toyset'
  module.SPLITS = ('train', 'val', 'test')
  module.FEATURES = {'track': ((None, 3), 'float32'), 'label': ((), 'int64'),
                     'name': ((), 'str')}
  module.generate = generate
  module.module_for = lambda version: types.SimpleNamespace(
      NAME=f'toy{version}', SPLITS=('train', 'test'), FEATURES=module.FEATURES,
      generate=generate)
  return module


def test_generic_builder_alias_variable_length_and_empty_split(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'data_prep.toyset', _toy_module())
  monkeypatch.setitem(builder.ALIASES, 'toy7', ('toyset', {'version': 7}))
  report = builder.build('toy7', source=tmp_path, data_dir=tmp_path / 'data',
                         options={'scale': 2})
  assert report.name == 'toy7'
  assert report.as_dict()['splits']['train'] == {'written': 3, 'skipped': {'toy reason': 2}}
  train = load_split('toy7', 'train', data_dir=tmp_path / 'data')
  assert [train[i]['track'].shape for i in range(3)] == [(1, 3), (2, 3), (3, 3)]
  assert train[2]['track'].dtype == np.float32 and np.all(train[2]['track'] == 14)
  assert train[1]['name'] == b'train1' and train[1]['label'].dtype == np.int64
  # module_for gave ('train', 'test'); plain 'toyset' has an empty 'val' split, which is left out.
  builder.build('toyset', source=tmp_path, data_dir=tmp_path / 'data')
  assert len(load_split('toyset', 'test', data_dir=tmp_path / 'data')) == 2
  with pytest.raises(ValueError, match=r"has no split 'val' \(splits: train, test\)"):
    load_split('toyset', 'val', data_dir=tmp_path / 'data')
  with pytest.raises(FileNotFoundError, match="no built dataset 'toy8'"):
    load_split('toy8', 'train', data_dir=tmp_path / 'data')


def test_generic_builder_checks_records(tmp_path):
  bad_shape = writer.make_builder(_toy_module('shape'), data_dir=tmp_path, source=tmp_path)
  with pytest.raises(ValueError, match=r"toyset train record 'train-0': feature 'track' has "
                                       r"shape \(2, 4\), expected \(None, 3\)"):
    bad_shape.download_and_prepare(file_format='array_record')
  bad_count = writer.make_builder(_toy_module('count'), data_dir=tmp_path / 'c', source=tmp_path)
  with pytest.raises(RuntimeError, match='yielded 3 train records but reported 0'):
    bad_count.download_and_prepare(file_format='array_record')
  features = writer.features_dict(_toy_module().FEATURES)
  assert isinstance(features['name'], tfds.features.Text)
  assert features['track'].shape == (None, 3) and features['label'].shape == ()


# ----------------------------------------------------------------------------------------------
# Broken published files and build options: the message names the file or the option.


def test_broken_pickles_name_the_file_and_what_is_wrong(tmp_path):
  whole = _h36m_source(tmp_path / 'whole.pkl').read_bytes()
  (tmp_path / 'cut.pkl').write_bytes(whole[:len(whole) // 2])
  with pytest.raises(ValueError, match=r'cut\.pkl: truncated pickle .* copy or download it again'):
    _generate_all(tmp_path / 'cut.pkl')
  (tmp_path / 'page.pkl').write_text('<html>404</html>')
  with pytest.raises(ValueError, match=r"page\.pkl: not a pickle file .*expected the H36M pickle"):
    _generate_all(tmp_path / 'page.pkl')
  (tmp_path / 'folder.pkl').mkdir()
  with pytest.raises(ValueError, match=r'folder\.pkl: is a folder; expected the H36M pickle'):
    _generate_all(tmp_path / 'folder.pkl')
  (tmp_path / 'empty.pkl').write_bytes(b'')
  with pytest.raises(ValueError, match=r'empty\.pkl: the file is empty .*AMASS'):
    list(amass.generate(tmp_path / 'empty.pkl', 'train', BuildReport('amass')))


def test_an_empty_source_folder_names_the_file_types_looked_for(tmp_path):
  (tmp_path / 'recordings').mkdir()
  (tmp_path / 'recordings' / 'notes.txt').write_text('no motion here')
  with pytest.raises(ValueError, match=r'recordings: no motion capture recordings found '
                     r'\(looked for \.bvh, \.amc files'):
    builder.build('mocap', source=tmp_path / 'recordings', data_dir=tmp_path / 'tfds')
  assert not (tmp_path / 'tfds' / 'mocap').exists()


@pytest.mark.parametrize('option, message', [
    ({'clip_len': 0}, r'mocap: option clip_len=0 is out of range; allowed: >= 3'),
    ({'yaws': 0}, r'mocap: option yaws=0 \(int\): expected a sequence of numbers'),
    ({'yaws': (0, 400)}, r'yaws=\(0, 400\) is out of range; allowed \(each value\): in '
                         r'\[-360, 360\]'),
    ({'fps': 'fast'}, r"option fps='fast' \(str\): expected a number"),
    ({'stride': 2.5}, r'option stride=2.5 \(float\): expected an integer'),
    ({'yaw': (0,)}, r'unknown option yaw; mocap accepts: test_files, yaws, fps, clip_len'),
])
def test_build_options_are_checked_before_anything_is_read(tmp_path, option, message):
  from mbjax.data import build_options, shipped
  with pytest.raises(build_options.OptionError, match=message):
    builder.build('mocap', source=shipped.assets_dir('mocap'), data_dir=tmp_path, options=option)
  assert not list(tmp_path.iterdir())  # nothing written, not even a temporary folder
