"""PoseTrack18, InstaVariety and NTU (PYSKL) sources on tiny files in their published formats."""

import json
import pickle

import numpy as np
import pytest

from data_prep import instavariety, ntu, posetrack
from mbjax.data import skeletons
from mbjax.data.report import BuildReport


def _collect(module_generate, *args, **kwargs):
  return dict(module_generate(*args, **kwargs))


# ----------------------------------------------------------------------------------- posetrack

def _pt_pose(rng, visible=None):
  """(17, 3) PoseTrack pose in pixels; `visible` (17,) bool, default all visible."""
  pose = np.concatenate([rng.uniform(10, 600, (17, 2)).round(1), np.ones((17, 1))], axis=1)
  if visible is not None:
    pose[~np.asarray(visible)] = 0
  return pose


def _write_posetrack(folder):
  """Two videos; tracks designed to hit each official filter. Returns the poses of kept tracks."""
  rng = np.random.default_rng(0)
  ann = lambda tid, image_id, pose: {'id': len(anns), 'track_id': tid, 'image_id': image_id,
                                     'keypoints': np.asarray(pose).ravel().tolist()}
  anns = []
  kept = {}
  # Track 7: 35 frames, all visible -> kept, first 30 frames only. Interleaved with track 3.
  # Track 3: 30 frames, head_bottom (neck) invisible in frame 4 -> kept, neck and belly zeroed.
  kept[7] = [_pt_pose(rng) for _ in range(35)]
  no_neck = np.ones(17, bool)
  no_neck[1] = False
  kept[3] = [_pt_pose(rng, no_neck if t == 4 else None) for t in range(30)]
  for t in range(35):
    anns.append(ann(7, 1000 + t, kept[7][t]))
    if t < 30:
      anns.append(ann(3, 1000 + t, kept[3][t]))
  # Track 9: 29 frames -> too short.
  anns += [ann(9, 1000 + t, _pt_pose(rng)) for t in range(29)]
  # Track 11: 18 frames fully visible + 12 empty = visibility sum 306 exactly -> too few visible.
  anns += [ann(11, 1000 + t, _pt_pose(rng, np.full(17, t < 18))) for t in range(30)]
  # Track 12: left hip invisible in frame 10 -> the root (min of hip confidences) is not visible.
  no_lhip = np.ones(17, bool)
  no_lhip[11] = False
  anns += [ann(12, 1000 + t, _pt_pose(rng, no_lhip if t == 10 else None)) for t in range(30)]
  # Track 13: one annotation without keypoints -> a frame with nothing visible -> root filter.
  anns += [ann(13, 1000 + t, _pt_pose(rng)) for t in range(30)]
  del anns[-5]['keypoints']
  images = [{'id': 1000 + t, 'file_name': f'images/a/{t:06d}.jpg', 'width': 1280, 'height': 720}
            for t in range(35)]
  (folder / 'train').mkdir(parents=True)
  (folder / 'train' / '000001_bonn_train.json').write_text(
      json.dumps({'images': images, 'annotations': anns}))
  # Second video: no image sizes; reuses track id 7.
  kept['b7'] = [_pt_pose(rng) for _ in range(30)]
  anns = []
  anns += [ann(7, 5000 + t, kept['b7'][t]) for t in range(30)]
  (folder / 'train' / '000002_mpii_train.json').write_text(
      json.dumps({'images': [{'id': 5000 + t} for t in range(30)], 'annotations': anns}))
  return kept


def test_posetrack_filters_and_values(tmp_path):
  kept = _write_posetrack(tmp_path)
  report = BuildReport('posetrack')
  out = _collect(posetrack.generate, tmp_path, 'train', report)
  assert list(out) == ['000001_bonn_train/7', '000001_bonn_train/3', '000002_mpii_train/7']
  assert report.as_dict()['splits']['train'] == {'written': 3, 'skipped': {
      posetrack.SKIP_SHORT: 1, posetrack.SKIP_FEW_VISIBLE: 1, posetrack.SKIP_ROOT: 2}}
  for key, ex in out.items():
    assert set(ex) == set(posetrack.FEATURES)
    assert ex['joint_2d'].shape == (30, 17, 3) and ex['joint_2d'].dtype == np.float32

  a7 = out['000001_bonn_train/7']
  raw = np.stack(kept[7][:30])
  assert (a7['track_id'], a7['source'], a7['img_width'], a7['img_height']) == (
      7, '000001_bonn_train', 1280, 720)
  np.testing.assert_allclose(a7['joint_2d'][:, 0, :2], (raw[:, 11, :2] + raw[:, 12, :2]) / 2,
                             atol=1e-4)
  np.testing.assert_allclose(a7['joint_2d'][:, 8, :2], raw[:, 1, :2], atol=1e-4)  # head_bottom
  np.testing.assert_allclose(a7['joint_2d'][:, 10], raw[:, 2], atol=1e-4)  # head_top
  assert np.all(a7['joint_2d'][:, :, 2] == 1)

  a3 = out['000001_bonn_train/3']['joint_2d']
  assert np.all(a3[4, [7, 8]] == 0)  # neck invisible: neck and belly zeroed, every channel
  assert np.all(a3[3, [7, 8], 2] == 1)
  b7 = out['000002_mpii_train/7']
  assert (b7['img_width'], b7['img_height'], b7['track_id']) == (0, 0, 7)
  np.testing.assert_allclose(b7['joint_2d'][:, 16, :2], np.stack(kept['b7'])[:, 10, :2], atol=1e-4)


def test_posetrack_errors(tmp_path):
  kept_dir = tmp_path / 'ok'
  _write_posetrack(kept_dir)
  with pytest.raises(ValueError, match='split'):
    list(posetrack.generate(kept_dir, 'val', BuildReport('posetrack')))
  with pytest.raises(ValueError, match='no PoseTrack18'):
    list(posetrack.generate(tmp_path / 'missing', 'train', BuildReport('posetrack')))

  bad = tmp_path / 'bad' / 'train'
  bad.mkdir(parents=True)
  (bad / 'broken.json').write_text('{"annotations": [')
  with pytest.raises(ValueError, match='broken.json'):
    list(posetrack.generate(bad.parent, 'train', BuildReport('posetrack')))

  def write_one(keypoints):
    (bad / 'broken.json').write_text(json.dumps({'images': [], 'annotations': [
        {'id': 41, 'track_id': 2, 'image_id': 1, 'keypoints': keypoints}]}))

  write_one([1.0] * 50)
  with pytest.raises(ValueError, match=r'broken.json: annotation 0 \(id 41, track 2\).*51'):
    list(posetrack.generate(bad.parent, 'train', BuildReport('posetrack')))
  write_one([1.0] * 50 + [float('nan')])
  with pytest.raises(ValueError, match='broken.json.*NaN'):
    list(posetrack.generate(bad.parent, 'train', BuildReport('posetrack')))
  (bad / 'broken.json').write_text(json.dumps({'annotations': [{'id': 1, 'keypoints': []}]}))
  with pytest.raises(ValueError, match='broken.json: annotation 0.*track_id'):
    list(posetrack.generate(bad.parent, 'train', BuildReport('posetrack')))


# -------------------------------------------------------------------------------- instavariety

def _write_insta(folder, nan_row=None):
  """Runs: a 150, b 40 (short), c 120 (first window root invisible), b 30 (repeat), d 20 (last).

  Channel 0 of every joint holds the row index, so a clip's rows can be read back.
  """
  runs = [('a', 150), ('b', 40), ('c', 120), ('b', 30), ('d', 20)]
  ids = np.concatenate([[vid] * n for vid, n in runs])
  n = len(ids)
  motion = np.zeros((n, 17, 3), np.float32)
  motion[..., 0] = np.arange(n)[:, None]
  motion[..., 1] = 0.5
  motion[..., 2] = 1.0
  motion[190, 0, 2] = 0.0  # first frame of video c (rows 190..309)
  if nan_row is not None:
    motion[nan_row, 3, 1] = np.nan
  folder.mkdir(parents=True, exist_ok=True)
  np.save(folder / 'motion_all.npy', motion)
  np.save(folder / 'id_all.npy', ids)
  return motion


def test_instavariety_clips(tmp_path):
  _write_insta(tmp_path)
  report = BuildReport('instavariety')
  out = _collect(instavariety.generate, tmp_path, 'train', report, seed=0)
  assert list(out) == ['a@0', 'a@27', 'a@54', 'b@150', 'c@217']
  assert report.as_dict()['splits']['train'] == {'written': 5, 'skipped': {
      instavariety.SKIP_ROOT: 1, instavariety.SKIP_REPEATED_SHORT: 1,
      instavariety.SKIP_LAST_SHORT: 1}}
  for key, ex in out.items():
    assert set(ex) == set(instavariety.FEATURES)
    assert ex['joint_2d'].shape == (81, 17, 3) and ex['joint_2d'].dtype == np.float32
    assert ex['source'] == key.split('@')[0] and ex['start_frame'] == int(key.split('@')[1])
  for key in ('a@0', 'a@27', 'a@54', 'c@217'):
    st = out[key]['start_frame']
    np.testing.assert_array_equal(out[key]['joint_2d'][:, 5, 0], np.arange(st, st + 81))

  # The 40-frame video: each of 81 even positions rounded down or up at random, sorted, clipped.
  rows = out['b@150']['joint_2d'][:, 0, 0].astype(int) - 150
  even = np.linspace(0, 40, 81, endpoint=False)
  assert np.all((rows == np.floor(even)) | (rows == np.minimum(np.ceil(even), 39)))
  assert np.all(np.diff(rows) >= 0) and rows[0] == 0 and rows.max() <= 39
  again = _collect(instavariety.generate, tmp_path, 'train', BuildReport('x'), seed=0)
  np.testing.assert_array_equal(again['b@150']['joint_2d'], out['b@150']['joint_2d'])
  other = _collect(instavariety.generate, tmp_path, 'train', BuildReport('x'), seed=1)
  assert not np.array_equal(other['b@150']['joint_2d'], out['b@150']['joint_2d'])


def test_instavariety_errors(tmp_path):
  _write_insta(tmp_path / 'nan', nan_row=250)
  with pytest.raises(ValueError, match=r'motion_all.npy: row 250 \(video c\).*NaN'):
    list(instavariety.generate(tmp_path / 'nan', 'train', BuildReport('x')))
  bad = tmp_path / 'bad'
  _write_insta(bad)
  np.save(bad / 'id_all.npy', np.zeros(10, int))
  with pytest.raises(ValueError, match='id_all.npy: expected shape'):
    list(instavariety.generate(bad, 'train', BuildReport('x')))
  np.save(bad / 'motion_all.npy', np.zeros((10, 16, 3), np.float32))
  with pytest.raises(ValueError, match=r'motion_all.npy: expected shape \(N, 17, 3\)'):
    list(instavariety.generate(bad, 'train', BuildReport('x')))
  (bad / 'motion_all.npy').write_bytes(b'not numpy')
  with pytest.raises(ValueError, match='motion_all.npy: cannot read'):
    list(instavariety.generate(bad, 'train', BuildReport('x')))


# --------------------------------------------------------------------------------------- ntu

def _ntu_sample(frame_dir, label, persons=1, frames=3, img_shape=(1080, 1920), value=None):
  rng = np.random.default_rng(label + 7 * persons)
  kp = rng.uniform(0, 1000, (persons, frames, 17, 2)).astype(np.float32)
  if value is not None:
    kp[...] = value
  score = rng.uniform(0.1, 1, (persons, frames, 17)).astype(np.float32)
  return {'frame_dir': frame_dir, 'label': label, 'img_shape': img_shape,
          'original_shape': img_shape, 'total_frames': frames, 'keypoint': kp,
          'keypoint_score': score}


def _write_pickle(path, annotations, split):
  with open(path, 'wb') as f:
    pickle.dump({'split': split, 'annotations': annotations}, f)


@pytest.fixture()
def ntu60_file(tmp_path):
  anns = [
      _ntu_sample('S001C001P001R001A001', 0, value=(960, 540)),
      _ntu_sample('S001C002P003R001A002', 1, persons=2, frames=4),
      _ntu_sample('S002C001P004R002A003', 2, persons=3, frames=5),
      _ntu_sample('S003C003P005R001A060', 59, img_shape=(1920, 1080), value=(540, 960)),
  ]
  a, b = anns[1]['keypoint'][0].copy(), anns[1]['keypoint'][1].copy()
  a[:], b[:] = (100, 100), (900, 900)  # two still people; slots swap at frames 2 and 3
  anns[1]['keypoint'] = np.stack([np.concatenate([a[:2], b[2:]]), np.concatenate([b[:2], a[2:]])])
  names = [x['frame_dir'] for x in anns]
  split = {'xsub_train': [names[0], names[2]],
           'xsub_val': [names[1], names[3], 'S009C001P001R001A009'],
           'xview_train': names[1:], 'xview_val': names[:1]}
  path = tmp_path / 'ntu60_hrnet.pkl'
  _write_pickle(path, anns, split)
  return path, anns


def test_ntu60_splits_and_values(ntu60_file):
  path, anns = ntu60_file
  report = BuildReport('ntu60')
  train = _collect(ntu.generate, path, 'xsub_train', report)
  val = _collect(ntu.generate, path.parent, 'xsub_val', report)  # a folder works too
  assert list(train) == ['S001C001P001R001A001', 'S002C001P004R002A003']
  assert list(val) == ['S001C002P003R001A002', 'S003C003P005R001A060']
  assert report.as_dict()['splits'] == {
      'xsub_train': {'written': 2, 'skipped': {}},
      'xsub_val': {'written': 2, 'skipped': {ntu.SKIP_MISSING: 1}}}
  assert len(_collect(ntu.generate, path, 'xview_train', BuildReport('x'))) == 3
  for ex in list(train.values()) + list(val.values()):
    assert set(ex) == set(ntu.FEATURES)
    assert ex['keypoint'].dtype == np.float32 and ex['keypoint'].shape == (
        2, ex['total_frames'], 17, 3)
    assert ex['label'] == ex['orig_label']
  assert [ex['label'] for ex in val.values()] == [1, 59]

  # Landscape 1920x1080: divide by the width. All joints at pixel (960, 540) -> (0, -0.4375).
  one = train['S001C001P001R001A001']['keypoint']
  np.testing.assert_allclose(one[0, :, :, :2], np.broadcast_to([0.0, -0.4375], (3, 17, 2)))
  # Scores stay the raw PYSKL scores in COCO order (official behaviour).
  np.testing.assert_array_equal(one[0, :, :, 2], anns[0]['keypoint_score'][0])
  assert np.all(one[1] == 0)  # a single person gets a zero second person
  # Portrait 1080x1920: divide by the height.
  portrait = val['S003C003P005R001A060']['keypoint']
  np.testing.assert_allclose(portrait[0, :, :, :2], np.broadcast_to([-0.4375, 0.0], (3, 17, 2)))

  # Three persons: the first two are kept, as the official make_cam + coco2h36m would give them.
  three = train['S002C001P004R002A003']['keypoint']
  raw = anns[2]['keypoint'][:2] / 1920 * 2 - 1
  tracked = ntu.human_tracking(raw)
  np.testing.assert_allclose(three[..., :2], skeletons.coco_to_h36m(tracked), atol=1e-6)
  np.testing.assert_allclose(three[..., 13, :2], tracked[..., 9, :], atol=1e-6)  # lwri

  # Two people whose slots swap in frames 2-3: tracking restores one actor per slot.
  two = val['S001C002P003R001A002']['keypoint']
  np.testing.assert_allclose(two[0, :, :, :2], 100 / 1920 * 2 - 1, atol=1e-6)
  np.testing.assert_allclose(two[1, :, :, :2], 900 / 1920 * 2 - 1, atol=1e-6)
  np.testing.assert_array_equal(two[..., 2], anns[1]['keypoint_score'])  # scores not swapped


def test_ntu_errors(ntu60_file, tmp_path):
  path, anns = ntu60_file
  with pytest.raises(ValueError, match='unknown split'):
    list(ntu.generate(path, 'xset_train', BuildReport('x')))
  with pytest.raises(ValueError, match='unknown version'):
    ntu.module_for('ntu90')
  with pytest.raises(ValueError, match="split 'xset_train' not in the pickle"):
    list(ntu.module_for('ntu120').generate(path, 'xset_train', BuildReport('x')))

  def broken(**changes):
    bad = [dict(a) for a in anns]
    bad[2].update(changes)
    out = tmp_path / f'bad_{sorted(changes)[0]}_{len(list(tmp_path.glob("bad_*")))}.pkl'
    _write_pickle(out, bad, {'xsub_train': [a['frame_dir'] for a in anns]})
    return list(ntu.generate(out, 'xsub_train', BuildReport('x')))

  with pytest.raises(ValueError,
                     match=r'bad_keypoint_0.pkl: S002C001P004R002A003: keypoint.*\(M, T, 17, 2\)'):
    broken(keypoint=np.zeros((1, 5, 16, 2), np.float32))
  with pytest.raises(ValueError, match='S002C001P004R002A003: total_frames'):
    broken(total_frames=6)
  with pytest.raises(ValueError, match='S002C001P004R002A003: keypoint_score must have shape'):
    broken(keypoint_score=np.zeros((3, 5, 16), np.float32))
  with pytest.raises(ValueError, match='S002C001P004R002A003: keypoint or keypoint_score.*NaN'):
    broken(keypoint_score=np.full((3, 5, 17), np.nan, np.float32))
  with pytest.raises(ValueError, match=r'S002C001P004R002A003: label must be .*\[0, 60\)'):
    broken(label=60)
  (tmp_path / 'junk.pkl').write_bytes(b'not a pickle')
  with pytest.raises(ValueError, match='junk.pkl: not a pickle file .* expected the PYSKL pickle'):
    list(ntu.generate(tmp_path / 'junk.pkl', 'xsub_train', BuildReport('x')))


@pytest.fixture()
def ntu120_file(tmp_path):
  anns = []
  for label in range(120):
    name = ntu.OFFICIAL_EXEMPLARS.get(label, f'S001C001P001R001A{label + 1:03d}')
    anns.append(_ntu_sample(name, label, frames=2))
  anns += [_ntu_sample('S002C001P002R001A001', 0, frames=2),
           _ntu_sample('S020C001P001R001A115', 114, frames=2),
           _ntu_sample('S020C002P001R001A120', 119, frames=2)]
  names = [a['frame_dir'] for a in anns]
  split = {'xsub_train': names[::2], 'xsub_val': names[1::2], 'xset_train': names[:60],
           'xset_val': names[60:]}
  path = tmp_path / 'ntu120_hrnet.pkl'
  _write_pickle(path, anns, split)
  return path


def test_ntu120_oneshot(ntu120_file):
  source = ntu.module_for('ntu120')
  assert source.NAME == 'ntu120' and source.SPLITS == ntu.NTU120_SPLITS
  assert ntu.module_for('ntu60').SPLITS == ('xsub_train', 'xsub_val', 'xview_train', 'xview_val')
  assert len(_collect(source.generate, ntu120_file, 'xset_val', BuildReport('x'))) == 63

  aux = _collect(source.generate, ntu120_file, 'oneshot_aux', BuildReport('x'))
  pairs = sorted({(int(ex['orig_label']), int(ex['label'])) for ex in aux.values()})
  assert len(aux) == 101 and len(pairs) == 100
  assert [new for _, new in pairs] == list(range(100))  # relabelled in increasing original order
  assert all(orig % 6 != 0 for orig, _ in pairs)
  assert pairs[:6] == [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4), (7, 5)] and pairs[-1] == (119, 99)

  exemplar = _collect(source.generate, ntu120_file, 'oneshot_exemplar', BuildReport('x'))
  assert list(exemplar)[:2] == ['S001C003P008R001A001', 'S001C003P008R001A007']
  assert list(exemplar)[-1] == 'S018C003P008R001A115' and len(exemplar) == 20
  assert [int(ex['label']) for ex in exemplar.values()] == list(range(20))
  assert [int(ex['orig_label']) for ex in exemplar.values()] == list(range(0, 120, 6))

  evals = _collect(source.generate, ntu120_file, 'oneshot_eval', BuildReport('x'))
  assert {k: (int(ex['label']), int(ex['orig_label'])) for k, ex in evals.items()} == {
      'S002C001P002R001A001': (0, 0), 'S020C001P001R001A115': (19, 114)}

  custom = dict(ntu.OFFICIAL_EXEMPLARS)
  custom[0] = 'S002C001P002R001A001'
  exemplar = _collect(source.generate, ntu120_file, 'oneshot_exemplar', BuildReport('x'),
                      exemplars=custom)
  assert 'S002C001P002R001A001' in exemplar and 'S001C003P008R001A001' not in exemplar
  evals = _collect(source.generate, ntu120_file, 'oneshot_eval', BuildReport('x'),
                   exemplars=custom)
  assert set(evals) == {'S001C003P008R001A001', 'S020C001P001R001A115'}

  custom[0] = 'S001C001P001R001A002'  # a sample of class 1, not novel class 0
  with pytest.raises(ValueError, match='S001C001P001R001A002: expected label 0, got 1'):
    list(source.generate(ntu120_file, 'oneshot_exemplar', BuildReport('x'), exemplars=custom))
  custom[0] = 'S099C001P001R001A001'
  with pytest.raises(ValueError, match='exemplar S099C001P001R001A001 .*not in annotations'):
    list(source.generate(ntu120_file, 'oneshot_eval', BuildReport('x'), exemplars=custom))
  with pytest.raises(ValueError, match='one frame_dir for each novel label'):
    list(source.generate(ntu120_file, 'oneshot_eval', BuildReport('x'), exemplars={0: 'x'}))


# -------------------------------------------------------------------------- through the builder

def test_build_and_load_posetrack_and_ntu60(tmp_path, ntu60_file):
  # These import tensorflow_datasets: only this test pays for it.
  from data_prep import builder
  from mbjax.data.records import load as load_split

  source = tmp_path / 'posetrack_annotations'
  _write_posetrack(source)
  expected = _collect(posetrack.generate, source, 'train', BuildReport('x'))
  report = builder.build('posetrack', source=source, data_dir=tmp_path / 'tfds')
  assert report.as_dict()['splits']['train']['written'] == 3
  records = load_split('posetrack', 'train', data_dir=tmp_path / 'tfds')
  assert len(records) == 3
  for record, (key, ex) in zip((records[i] for i in range(3)), expected.items()):
    np.testing.assert_array_equal(record['joint_2d'], ex['joint_2d'])
    assert record['source'].decode() == ex['source'] and int(record['track_id']) == ex['track_id']

  path, _ = ntu60_file
  expected = _collect(ntu.generate, path, 'xsub_val', BuildReport('x'))
  builder.build('ntu60', source=path, data_dir=tmp_path / 'tfds')
  records = load_split('ntu60', 'xsub_val', data_dir=tmp_path / 'tfds')
  assert len(records) == 2
  for i, ex in enumerate(expected.values()):
    np.testing.assert_array_equal(records[i]['keypoint'], ex['keypoint'])  # variable T kept
    assert records[i]['frame_dir'].decode() == ex['frame_dir']
    assert int(records[i]['label']) == ex['label']


def test_split_clips_agrees_with_transforms():
  from mbjax.data import transforms

  rng = np.random.default_rng(3)
  for _ in range(20):
    runs = [(int(rng.integers(0, 4)), int(rng.integers(1, 200))) for _ in range(6)]
    ids = np.concatenate([[vid] * n for vid, n in runs])
    ours = [rows for _, rows, _ in instavariety.split_clips(ids, np.random.default_rng(5))
            if rows is not None]
    theirs = transforms.split_clips(ids, 81, 27, np.random.default_rng(5))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
      np.testing.assert_array_equal(a, b)
