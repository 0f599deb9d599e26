"""The tracker (mbjax.data.tracker) on files without track ids: identities through a crossing, gaps
and max_gap, OKS without undetected joints, and the route through person_tracks and the pipeline.
Every check compares with the ground truth that generated the file."""

import json

import numpy as np
import pytest

from mbjax.data import keypoint_files, person_tracks, skeletons, tracker
from mbjax.infer import pipeline

# A standing person in COCO-17 order, x, y relative to the pelvis (image y down), 170 px tall.
_SHAPE = dict(nose=(0, -140), leye=(5, -145), reye=(-5, -145), lear=(10, -140), rear=(-10, -140),
              lsho=(22, -110), rsho=(-22, -110), lelb=(28, -70), relb=(-28, -70), lwri=(30, -35),
              rwri=(-30, -35), lhip=(12, 0), rhip=(-12, 0), lknee=(13, 45), rknee=(-13, 45),
              lankle=(14, 90), rankle=(-14, 90))
FRAMES = 40


def person(x, y, scale=1.0, conf=0.9):
  """(17, 3) COCO-17 pose with its pelvis at x, y."""
  xy = np.array([_SHAPE[n] for n in skeletons.COCO_JOINTS], np.float64) * scale + [x, y]
  return np.concatenate([xy, np.full((17, 1), conf)], axis=1)


def crossing(seed=0, frames=FRAMES):
  """Ground truth {person: (T, 17, 3)}: person 0 walks right, person 1 (farther, smaller) left;
  they pass each other at frame ~20. 2 px noise; a few joints undetected (0, 0, 0 as COCO)."""
  rng = np.random.default_rng(seed)
  t = np.arange(frames)
  paths = {0: (100 + 15 * t, 300, 1.0), 1: (700 - 15 * t, 280, 0.85)}
  out = {}
  for p, (xs, y, scale) in paths.items():
    poses = np.stack([person(x, y, scale) for x in xs])
    poses[..., :2] += rng.normal(0, 2, poses[..., :2].shape)
    drop = rng.random(poses.shape[:2]) < 0.08
    poses[drop] = 0.0
    out[p] = poses
  return out


def write_results(path, truth, skip=None):
  """COCO keypoint results without track ids, each frame in left-to-right order (so the order
  inside a frame swaps when the people cross). Returns the person of each detection, file order.

  skip: {person: frames} where that person is not written.
  """
  skip = skip or {}
  dets, persons = [], []
  for t in range(len(truth[0])):
    here = [p for p in truth if t not in skip.get(p, ())]
    for p in sorted(here, key=lambda p: _pelvis_x(truth[p][t])):
      dets.append(dict(image_id=t, category_id=1, keypoints=truth[p][t].reshape(-1).tolist(),
                       score=0.9))
      persons.append(p)
  path.write_text(json.dumps(dets))
  return np.array(persons)


def _pelvis_x(pose):
  """x of the mean detected joint: the left-to-right order of persons in a frame."""
  return pose[pose[:, 2] > 0, 0].mean()


@pytest.mark.parametrize('metric', ['oks', 'iou'])
def test_identities_survive_a_crossing(tmp_path, metric):
  truth = crossing()
  persons = write_results(tmp_path / 'cross.json', truth)
  dets = keypoint_files.read(tmp_path / 'cross.json')
  assert dets.persons is None and dets.skeleton == 'coco'
  first = [persons[dets.frames == t][0] for t in (0, FRAMES - 1)]
  assert first == [0, 1]  # the file's first detection of a frame is not one person throughout
  ids, notes = tracker.assign(dets, tracker.TrackerOptions(metric=metric))
  np.testing.assert_array_equal(ids, persons)  # person 0 appears first in the file: id 0
  assert 'into 2 tracks' in notes[0]


def test_last_pose_matching_also_crosses(tmp_path):
  persons = write_results(tmp_path / 'cross.json', crossing(seed=1))
  dets = keypoint_files.read(tmp_path / 'cross.json')
  ids, _ = tracker.assign(dets, tracker.TrackerOptions(velocity=False))
  np.testing.assert_array_equal(ids, persons)


@pytest.mark.parametrize('seed', range(3))
def test_velocity_separates_identical_people_on_one_line(seed):
  """Same size, same height: after they coincide (frame 20) only their motion tells them apart,
  so at most that frame may swap (matching the last pose alone swaps them for good)."""
  rng = np.random.default_rng(seed)
  t = np.arange(FRAMES)
  walkers = [np.stack([person(100 + 15 * i, 300) for i in t]),
             np.stack([person(700 - 15 * i, 300) for i in t])]
  for w in walkers:
    w[..., :2] += rng.normal(0, 2, w[..., :2].shape)
  frames = np.repeat(t, 2)
  truth = np.tile([0, 1], FRAMES)
  for metric in tracker.METRICS:
    ids, _ = tracker.assign_ids(frames, np.stack(walkers, 1).reshape(-1, 17, 3), 'coco',
                                tracker.TrackerOptions(metric=metric))
    assert set(frames[ids != truth]) <= {20}, metric
    assert ids.max() == 1


@pytest.mark.parametrize('gap,max_gap,new_id', [(3, 5, False), (5, 5, False), (6, 5, True),
                                                (12, 10, True), (0, 0, False), (1, 0, True)])
def test_a_gap_longer_than_max_gap_starts_a_new_id(tmp_path, gap, max_gap, new_id):
  truth = crossing()
  hidden = range(8, 8 + gap)
  persons = write_results(tmp_path / 'gap.json', truth, skip={1: hidden})
  dets = keypoint_files.read(tmp_path / 'gap.json')
  notes = []
  tracks, _ = person_tracks.tracks(dets, tracker_options=tracker.TrackerOptions(max_gap=max_gap),
                                   notes=notes)
  seen_1 = [t for t in range(FRAMES) if t not in hidden]
  if new_id:
    assert sorted(tracks) == [0, 1, 2]
    assert tracks[1].frames.tolist() == list(range(8))
    assert tracks[2].frames.tolist() == list(range(8 + gap, FRAMES))
    assert '1 closed after more than' in notes[0]
  else:
    assert sorted(tracks) == [0, 1]
    assert tracks[1].frames.tolist() == list(range(FRAMES))
    assert tracks[1].detected.tolist() == [t in seen_1 for t in range(FRAMES)]
    assert '0 closed' in notes[0]
  assert tracks[0].detected.all() and len(tracks[0].frames) == FRAMES
  # Track 0 is the walker to the right: its H36M pelvis follows person 0's hips.
  hips = truth[0][:, [11, 12]]
  np.testing.assert_allclose(tracks[0].keypoints[:, 0, 0][hips[:, :, 2].all(-1)],
                             hips[hips[:, :, 2].all(-1)][:, :, 0].mean(-1), atol=1e-6)
  assert len(persons) == len(dets.frames)


def test_oks_ignores_undetected_joints():
  sigma = tracker.sigmas('coco')
  a = person(300, 300)
  b = a.copy()
  b[::2] = 0.0  # every other joint undetected, written as 0, 0, 0
  assert tracker.oks(a[None], b[None], sigma)[0, 0] == pytest.approx(1.0)
  assert tracker.oks(b[None], a[None], sigma)[0, 0] == pytest.approx(1.0)
  c = a.copy()
  c[5, :2] -= [30, 0]  # a detected joint (left shoulder) 30 px in, inside the box
  c[0] = [5000, 5000, 0]  # an undetected joint far away changes neither distance nor area
  area = 60 * 235  # the keypoint box of a and c: wrists (-30..30) by eyes to ankles (-145..90)
  expected = (15 + np.exp(-30 ** 2 / (2 * area * (2 * 0.079) ** 2))) / 16
  assert tracker.oks(a[None], c[None], sigma)[0, 0] == pytest.approx(expected, rel=1e-3)
  none = np.zeros_like(a)
  assert tracker.oks(a[None], none[None], sigma)[0, 0] == 0.0


def test_oks_sigmas_follow_joint_names():
  halpe = tracker.sigmas('halpe')
  np.testing.assert_allclose(halpe[:17], tracker.sigmas('coco'))
  assert (halpe[17:] == tracker.DEFAULT_SIGMA).all()
  body25 = dict(zip(skeletons.BODY25_JOINTS, tracker.sigmas('body25')))
  assert body25['lhip'] == 0.107 and body25['nose'] == 0.026
  assert body25['neck'] == tracker.DEFAULT_SIGMA


def test_iou_of_keypoint_boxes():
  a = np.array([[[0, 0, 1], [10, 10, 1], [99, 99, 0]]], np.float64)
  b = np.array([[[5, 0, 1], [15, 10, 1], [-50, 3, 0]]], np.float64)
  assert tracker.iou(a, b)[0, 0] == pytest.approx(50 / 150)
  assert tracker.iou(a, np.zeros_like(b))[0, 0] == 0.0


def test_file_ids_and_single_person_files_are_not_tracked(tmp_path):
  truth = crossing()
  persons = write_results(tmp_path / 'cross.json', truth)
  data = json.loads((tmp_path / 'cross.json').read_text())
  order, counts = [], {}
  for d in data:  # id = position in the frame: wrong after the crossing, but the file's ids rule
    order.append(counts.get(d['image_id'], 0))
    counts[d['image_id']] = order[-1] + 1
    d['track_id'] = order[-1]
  order = np.array(order)
  (tmp_path / 'ids.json').write_text(json.dumps(data))
  groups = person_tracks.group_by_id(keypoint_files.read(tmp_path / 'ids.json'))
  np.testing.assert_array_equal(groups[0], np.flatnonzero(order == 0))
  single = [d for d, p in zip(json.loads((tmp_path / 'cross.json').read_text()), persons)
            if p == 1]
  single = [s for i, s in enumerate(single) if i % 7]  # gaps longer than max_gap=0 stay id 0
  (tmp_path / 'one.json').write_text(json.dumps(single))
  groups = person_tracks.group_by_id(keypoint_files.read(tmp_path / 'one.json'),
                                     tracker.TrackerOptions(max_gap=0))
  assert list(groups) == [0] and len(groups[0]) == len(single)


def test_pipeline_prepare_tracks_a_file_without_ids(tmp_path):
  truth = crossing()
  write_results(tmp_path / 'cross.json', truth)
  prepared = pipeline.prepare(pipeline.Request(input=str(tmp_path / 'cross.json')))
  assert sorted(prepared.tracks) == [0, 1]
  for p, track in prepared.tracks.items():
    assert track.frames.tolist() == list(range(FRAMES))
    head = skeletons.to_h36m(truth[p], 'coco')[:, 9]  # H36M nose = COCO nose
    seen = truth[p][:, 0, 2] > 0
    np.testing.assert_allclose(track.keypoints[seen, 9, :2], head[seen, :2], atol=1e-6)
  assert any('into 2 tracks' in n for n in prepared.notes)
  iou = pipeline.prepare(pipeline.Request(input=str(tmp_path / 'cross.json'), track_metric='iou',
                                          track_threshold=0.1, max_gap=2))
  assert sorted(iou.tracks) == [0, 1]
  with pytest.raises(ValueError, match='--track_metric=.box.'):
    pipeline.prepare(pipeline.Request(input=str(tmp_path / 'cross.json'), track_metric='box'))
  with pytest.raises(ValueError, match='--track_threshold=1.5'):
    tracker.TrackerOptions(threshold=1.5)
  with pytest.raises(ValueError, match='--max_gap=-1'):
    tracker.TrackerOptions(max_gap=-1)
