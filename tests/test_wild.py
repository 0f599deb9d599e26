"""In-the-wild AlphaPose (Halpe-26) source: conversion, tracks, clips, real boxing2 file, build."""

import filecmp
import json

import numpy as np
import pytest

from data_prep import builder
from mbjax.data import shipped, skeletons, transforms, wild
from mbjax.data.records import load as load_split
from mbjax.data.report import BuildReport

BOXING2 = 'boxing2_alphapose-results.json'
ASSETS = shipped.CHECKOUT_ASSETS / 'wild'


def _halpe_pose(offset=0.0):
  """(26, 3): Halpe joint j holds (offset + j, 200 + 3j, 0.02 + 0.03j), so each is recognisable."""
  j = np.arange(26.0)
  return np.stack([offset + j, 200 + 3 * j, 0.02 + 0.03 * j], axis=-1)


def _detection(frame, idx, pose, score=2.0):
  return {'image_id': f'{frame}.jpg', 'category_id': 1, 'keypoints': pose.reshape(-1).tolist(),
          'score': score, 'box': [0.0, 0.0, 10.0, 20.0], 'idx': idx}


def _write(path, detections):
  path.write_text(json.dumps(detections))
  return path


# ------------------------------------------------------------------------------ joints, screen

def test_normalize_screen_and_wild_pixels():
  w, h = 640, 360
  pts = np.array([[0, 0, 0.5], [w / 2, h / 2, 0.7], [w, h, 0.9]], np.float32)
  before = pts.copy()
  out = wild.normalize_screen(pts, w, h)
  np.testing.assert_allclose(out, [[-1, -h / w, 0.5], [0, 0, 0.7], [1, h / w, 0.9]], atol=1e-6)
  assert out.dtype == np.float32
  np.testing.assert_array_equal(out[:, 2], pts[:, 2])  # confidence kept exactly
  np.testing.assert_array_equal(pts, before)  # input untouched
  # The official --pixel input scales by the shorter side: landscape differs by w / h ...
  np.testing.assert_allclose(wild.normalize_wild_pixels(pts, w, h)[:, :2],
                             [[-w / h, -1], [0, 0], [w / h, 1]], atol=1e-6)
  # ... portrait video gives the same as normalize_screen.
  np.testing.assert_allclose(wild.normalize_wild_pixels(pts, h, w),
                             wild.normalize_screen(pts, h, w), atol=1e-6)
  with pytest.raises(ValueError, match='positive'):
    wild.normalize_screen(pts, 0, h)


# ------------------------------------------------------------------------------ reading tracks

def test_read_alphapose_groups_orders_and_fills(tmp_path):
  a = {f: _halpe_pose(offset=10.0 * f) for f in (0, 1, 3, 4)}  # person 1 misses frame 2
  b = {f: _halpe_pose(offset=-100.0 - f) for f in (2, 3)}
  weak = _halpe_pose(offset=999.0)
  detections = [
      _detection(3, 1, a[3]), _detection(3, [7, 2], b[3]),  # person 7 given as an idx list
      _detection(0, 1, a[0]), _detection(4, 1, a[4]), _detection(1, 1, a[1]),
      _detection(2, [7], b[2]), _detection(1, 1, weak, score=0.5),  # duplicate, lower score
  ]
  path = _write(tmp_path / 'two_alphapose-results.json', detections)

  raw = wild.read_alphapose(path, fill_gaps=False)
  assert list(raw) == [1, 7]
  np.testing.assert_array_equal(raw[1][0], [0, 1, 3, 4])
  np.testing.assert_array_equal(raw[7][0], [2, 3])
  np.testing.assert_allclose(raw[1][1][1], skeletons.halpe_to_h36m(a[1]), rtol=1e-6)  # higher score

  tracks = wild.read_alphapose(path)
  frames, kp = tracks[1]
  np.testing.assert_array_equal(frames, [0, 1, 2, 3, 4])
  assert kp.shape == (5, 17, 3) and kp.dtype == np.float32
  for i, f in ((0, 0), (1, 1), (3, 3), (4, 4)):
    np.testing.assert_allclose(kp[i], skeletons.halpe_to_h36m(a[f]), rtol=1e-6)
  # Frame 2 is the mean of frames 1 and 3 in x, y; its confidence is 0.
  np.testing.assert_allclose(kp[2, :, :2], (kp[1, :, :2] + kp[3, :, :2]) / 2, rtol=1e-6)
  np.testing.assert_array_equal(kp[2, :, 2], 0)
  assert kp[2, 0, 0] == pytest.approx(20.0 + 19)  # pelvis = Halpe hip (19) of offset 10 * 2
  np.testing.assert_array_equal(tracks[7][0], [2, 3])
  np.testing.assert_allclose(tracks[7][1], raw[7][1])


def test_fill_missing_frames_uneven_gap():
  kp = np.zeros((2, 1, 3))
  kp[:, 0] = [[0.0, 10.0, 0.8], [30.0, 40.0, 0.6]]
  frames, out = wild.fill_missing_frames(np.array([5, 8]), kp)
  np.testing.assert_array_equal(frames, [5, 6, 7, 8])
  np.testing.assert_allclose(out[:, 0], [[0, 10, 0.8], [10, 20, 0], [20, 30, 0], [30, 40, 0.6]])
  with pytest.raises(ValueError, match='increasing'):
    wild.fill_missing_frames(np.array([3, 3]), kp)


@pytest.mark.parametrize('content, match', [
    ({'image_id': '0.jpg'}, 'expected a json list'),
    ([_detection(0, 1, _halpe_pose()),
      {**_detection(1, 1, _halpe_pose()), 'keypoints': [1.0] * 75}],
     r'detection 1 .*78 keypoint numbers'),
    ([_detection(0, 1, _halpe_pose()), _detection(1, 1, np.full((26, 3), np.nan))],
     'detection 1 .*NaN'),
    ([{**_detection(0, 1, _halpe_pose()), 'image_id': 'frame.jpg'}], 'detection 0 .*frame number'),
    ([{**_detection(0, 'a', _halpe_pose())}], 'detection 0 .*idx'),
    ([[1, 2, 3]], 'detection 0: expected an object'),
])
def test_bad_input_names_file_and_detection(tmp_path, content, match):
  path = _write(tmp_path / 'bad.json', content)  # json.dumps writes NaN, json.load reads it back
  with pytest.raises(ValueError, match=match) as info:
    wild.read_alphapose(path)
  assert str(path) in str(info.value)


# ------------------------------------------------------------------------------ clips

def test_clip_counts_keys_and_features(tmp_path):
  detections = [_detection(f, 1, _halpe_pose(f)) for f in range(100)]      # 100 frames
  detections += [_detection(f, 2, _halpe_pose(-f)) for f in range(50, 80)]  # 30 frames
  detections += [_detection(f, 3, _halpe_pose()) for f in range(10)]       # too short
  _write(tmp_path / 'clip_alphapose-results.json', detections)
  module = wild.module_for(clip_len=27, version='ignored')
  assert module.FEATURES['joint_2d'] == ((27, 17, 3), 'float32') and module.NAME == 'wild'
  report = BuildReport('wild')
  clips = dict(module.generate(tmp_path, 'train', report, stride=10, img_size=(1280, 720)))

  # Person 1: starts 0, 10, ..., 70 (8 clips); person 2: one clip at frame 50; person 3 skipped.
  expected_keys = [f'clip_alphapose-results.json/1@{s}' for s in range(0, 71, 10)]
  expected_keys.append('clip_alphapose-results.json/2@50')
  assert list(clips) == expected_keys
  assert report.written_counts['train'] == 9
  assert report.skipped_counts['train'] == {wild.SKIP_SHORT: 1}
  clip = clips['clip_alphapose-results.json/1@30']
  assert clip['source'] == 'clip/1' and clip['start_frame'] == 30
  assert (clip['img_width'], clip['img_height']) == (1280, 720)
  assert clip['joint_2d'].shape == (27, 17, 3)
  np.testing.assert_allclose(clip['joint_2d'][:, 9, 0], np.arange(30, 57))  # nose x = offset
  assert clips['clip_alphapose-results.json/2@50']['source'] == 'clip/2'

  # The module-level FEATURES hold 81 frames: another clip_len must go through module_for.
  with pytest.raises(ValueError, match='module_for'):
    wild.generate(tmp_path, 'train', BuildReport('wild'), clip_len=27)
  defaults = dict(wild.generate(tmp_path, 'train', BuildReport('wild')))
  assert list(defaults) == ['clip_alphapose-results.json/1@0']
  assert defaults['clip_alphapose-results.json/1@0']['img_width'] == 0
  assert list(wild.clip_starts(301)) == [0, 27, 54, 81, 108, 135, 162, 189, 216]


# ------------------------------------------------------------------------------ real boxing2 file

def test_boxing2_matches_official_output(shared_data_dir):
  folder = shared_data_dir / 'wild' / 'boxing2'
  tracks = wild.read_alphapose(folder / BOXING2)
  assert list(tracks) == [1]
  frames, kp = tracks[1]
  np.testing.assert_array_equal(frames, np.arange(301))
  assert kp.shape == (301, 17, 3) and np.all(np.isfinite(kp))
  assert np.all(kp[..., 2] > 0)  # every frame detected: nothing interpolated

  official = np.load(folder / 'boxing2_X3D.npy')
  assert official.shape == (301, 17, 3)
  # The official script feeds crop_scale(scale_range=[1, 1]) input; its 3D x, y follow that input.
  ours = transforms.crop_scale_2d(kp)[..., :2]
  per_joint = np.abs(ours - official[..., :2]).mean(axis=(0, 2))
  assert per_joint.max() < 0.05, per_joint
  swapped = [0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13]  # left <-> right
  assert np.abs(ours[:, swapped] - official[..., :2]).mean(axis=(0, 2)).max() > 0.2
  # Left/right shoulders and hips lie on the same image side as in the official 3D x.
  for left, right in ((11, 14), (4, 1)):
    same = np.sign(kp[:, left, 0] - kp[:, right, 0]) == np.sign(
        official[:, left, 0] - official[:, right, 0])
    assert same.mean() > 0.85, (left, right, same.mean())
  assert np.all(kp[:, 10, 1] < kp[:, 0, 1])  # head above pelvis (image y grows downwards)
  assert np.all(kp[:, 8, 1] < kp[:, 7, 1])   # neck above belly


def test_shipped_asset_is_the_shared_file(shared_data_dir):
  shared = shared_data_dir / 'wild' / 'boxing2' / BOXING2
  assert filecmp.cmp(ASSETS / BOXING2, shared, shallow=False)
  sources = (ASSETS / 'SOURCES.md').read_text()
  for fact in ('Walter0807/MotionBERT', 'pull request 144', '638e8dd', 'Apache-2.0', 'unknown'):
    assert fact in sources, fact
  assert wild.alphapose_files(ASSETS) == [ASSETS / BOXING2]


def test_build_and_load(tmp_path):
  report = builder.build('wild', source=ASSETS, data_dir=tmp_path,
                         options={'img_size': (1920, 1080)})
  assert report.written_counts['train'] == 9  # (301 - 81) // 27 + 1
  records = load_split('wild', 'train', data_dir=tmp_path)
  assert len(records) == 9
  _, kp = wild.read_alphapose(ASSETS / BOXING2)[1]
  for i in (0, 8):
    record = records[i]
    assert record['start_frame'] == 27 * i and record['source'] == b'boxing2/1'
    assert record['img_width'] == 1920 and record['img_height'] == 1080
    np.testing.assert_array_equal(record['joint_2d'], kp[27 * i:27 * i + 81])
  # FEATURES follow the clip_len option through `module_for`.
  builder.build('wild', source=ASSETS, data_dir=tmp_path / 'other',
                options={'clip_len': 27, 'stride': 27})
  short = load_split('wild', 'train', data_dir=tmp_path / 'other')
  assert len(short) == 301 // 27 and short[0]['joint_2d'].shape == (27, 17, 3)


def test_shipped_assets_are_found_and_a_missing_folder_is_named(tmp_path):
  from data_prep import mocap as mocap_module
  from data_prep import wild as wild_module
  assert shipped.assets_dir('wild') == wild_module.ASSETS.resolve() == ASSETS
  assert shipped.assets_dir('mocap') == mocap_module.ASSETS.resolve()
  with pytest.raises(FileNotFoundError, match=f'looked for the folder {tmp_path / "wild"}'):
    shipped.assets_dir('wild', tmp_path)
