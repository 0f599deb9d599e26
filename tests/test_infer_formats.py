"""Keypoint file readers (mbjax.data.keypoint_files) and maps: every input format, written here in
its published layout, read back to H36M-17 with left and right in place (a figure raising its LEFT
hand), and bad inputs."""

import json

import numpy as np
import pytest

from mbjax.data import skeletons
from mbjax.data import keypoint_files, person_tracks

# The published joint orders, written out independently of mbjax (COCO keypoints, AlphaPose
# Halpe-26, OpenPose BODY_25 `pose_keypoints_2d`, MediaPipe Pose landmarks).
COCO = ('nose', 'leye', 'reye', 'lear', 'rear', 'lsho', 'rsho', 'lelb', 'relb', 'lwri', 'rwri',
        'lhip', 'rhip', 'lknee', 'rknee', 'lankle', 'rankle')
HALPE = COCO + ('head', 'neck', 'midhip', 'ltoe', 'rtoe', 'ltoe', 'rtoe', 'lheel', 'rheel')
BODY25 = ('nose', 'neck', 'rsho', 'relb', 'rwri', 'lsho', 'lelb', 'lwri', 'midhip', 'rhip', 'rknee',
          'rankle', 'lhip', 'lknee', 'lankle', 'reye', 'leye', 'rear', 'lear', 'ltoe', 'ltoe',
          'lheel', 'rtoe', 'rtoe', 'rheel')
MEDIAPIPE = ('nose', 'leye', 'leye', 'leye', 'reye', 'reye', 'reye', 'lear', 'rear', 'nose',
             'nose', 'lsho', 'rsho', 'lelb', 'relb', 'lwri', 'rwri', 'lwri', 'rwri', 'lwri',
             'rwri', 'lwri', 'rwri', 'lhip', 'rhip', 'lknee', 'rknee', 'lankle', 'rankle',
             'lheel', 'rheel', 'ltoe', 'rtoe')
H36M = ('midhip', 'rhip', 'rknee', 'rankle', 'lhip', 'lknee', 'lankle', 'belly', 'neck', 'nose',
        'head', 'lsho', 'lelb', 'lwri', 'rsho', 'relb', 'rwri')
ORDERS = {'coco': COCO, 'halpe': HALPE, 'body25': BODY25, 'mediapipe': MEDIAPIPE, 'h36m': H36M}

# A person facing the camera (their left on the image's right, image y down), LEFT hand raised
# above the head, right arm hanging.
FIGURE = dict(head=(200, 60), nose=(200, 90), leye=(210, 82), reye=(190, 82), lear=(220, 88),
              rear=(180, 88), neck=(200, 140), lsho=(240, 140), rsho=(160, 140), lelb=(262, 88),
              lwri=(270, 30), relb=(150, 200), rwri=(146, 262), midhip=(200, 270),
              lhip=(226, 270), rhip=(174, 270), lknee=(228, 370), rknee=(172, 370),
              lankle=(230, 460), rankle=(170, 460), lheel=(232, 470), rheel=(168, 470),
              ltoe=(240, 475), rtoe=(160, 475), belly=(200, 200))
SIZE = (640, 480)


def figure(order, frames=5, conf=0.9):
  """(T, J, 3) of FIGURE in joint `order`, drifting right 2 px a frame."""
  pose = np.array([FIGURE[name] + (conf,) for name in order], np.float64)
  return np.stack([pose + [2.0 * t, 0, 0] for t in range(frames)])


def _check_left_hand_raised(h36m, what):
  """H36M-17 (T, 17, 3) pixels of FIGURE: left wrist highest, left joints on the image right."""
  names = skeletons.H36M_JOINTS
  j = {n: names.index(n) for n in names}
  assert np.all(np.argmin(h36m[..., 1], axis=-1) == j['lwri']), what
  for left, right in (('lwri', 'rwri'), ('lsho', 'rsho'), ('lhip', 'rhip'), ('lknee', 'rknee')):
    assert np.all(h36m[:, j[left], 0] > h36m[:, j[right], 0]), (what, left)
  np.testing.assert_allclose(h36m[0, j['lwri'], :2], FIGURE['lwri'], atol=1e-6, err_msg=what)
  np.testing.assert_allclose(h36m[0, j['pelvis'], :2], FIGURE['midhip'], atol=1e-6, err_msg=what)
  np.testing.assert_allclose(h36m[0, j['neck'], :2], FIGURE['neck'], atol=1e-6, err_msg=what)


def _read_tracks(path, **kw):
  tracks, skipped = person_tracks.tracks(keypoint_files.read(path, **kw))
  assert not skipped
  return tracks


# ------------------------------------------------------------------------------ writers

def write_alphapose(path, order, poses, ids=None, frame=lambda t: f'{t}.jpg'):
  dets = [dict(image_id=frame(t), category_id=1, keypoints=pose.reshape(-1).tolist(), score=2.5,
               box=[0, 0, 10, 10], **({'idx': ids[t]} if ids else {'idx': 1}))
          for t, pose in enumerate(poses)]
  path.write_text(json.dumps(dets))
  return path


def write_coco_results(path, poses):
  dets = [dict(image_id=t, category_id=1, keypoints=pose.reshape(-1).tolist(), score=0.8)
          for t, pose in enumerate(poses)]
  path.write_text(json.dumps(dets))
  return path


def write_mmpose(path, poses, wrapped=False):
  frames = [dict(frame_id=t, instances=[dict(keypoints=pose[:, :2].tolist(),
                                             keypoint_scores=pose[:, 2].tolist(),
                                             bbox=[[0, 0, 10, 10]], bbox_score=0.9, track_id=3)])
            for t, pose in enumerate(poses)]
  data = dict(meta_info=dict(dataset_name='coco'), instance_info=frames) if wrapped else frames
  path.write_text(json.dumps(data))
  return path


def write_openpose(folder, poses):
  folder.mkdir()
  for t, pose in enumerate(poses):
    people = [dict(person_id=[-1], pose_keypoints_2d=pose.reshape(-1).tolist(),
                   face_keypoints_2d=[], hand_left_keypoints_2d=[])]
    (folder / f'clip_{t:012d}_keypoints.json').write_text(json.dumps(dict(version=1.3,
                                                                          people=people)))
  return folder


def write_mediapipe(path, poses, size):
  frames = [[dict(x=p[0] / size[0], y=p[1] / size[1], z=-0.1, visibility=p[2]) for p in pose]
            for pose in poses]
  path.write_text(json.dumps(frames))
  return path


# ------------------------------------------------------------------------------ every format

def test_every_json_format_keeps_left_and_right(tmp_path):
  cases = {
      'alphapose halpe': (write_alphapose(tmp_path / 'a.json', HALPE, figure(HALPE)), {}),
      'alphapose coco': (write_alphapose(tmp_path / 'b.json', COCO, figure(COCO)), {}),
      'coco results': (write_coco_results(tmp_path / 'c.json', figure(COCO)), {}),
      'mmpose': (write_mmpose(tmp_path / 'd.json', figure(COCO)), {}),
      'mmpose demo': (write_mmpose(tmp_path / 'e.json', figure(COCO), wrapped=True), {}),
      'openpose': (write_openpose(tmp_path / 'op', figure(BODY25)), {}),
      'mediapipe': (write_mediapipe(tmp_path / 'f.json', figure(MEDIAPIPE), SIZE),
                    dict(size=SIZE)),
  }
  expected = {'alphapose halpe': 'halpe', 'openpose': 'body25', 'mediapipe': 'mediapipe'}
  for name, (path, kw) in cases.items():
    dets = keypoint_files.read(path, **kw)
    assert dets.skeleton == expected.get(name, 'coco'), name
    tracks = _read_tracks(path, **kw)
    assert len(tracks) == 1, name
    (track,) = tracks.values()
    assert track.frames.tolist() == list(range(5)) and track.detected.all(), name
    _check_left_hand_raised(track.keypoints, name)
  assert list(_read_tracks(cases['mmpose'][0])) == [3]  # MMPose track_id


@pytest.mark.parametrize('skeleton', sorted(ORDERS))
@pytest.mark.parametrize('persons', [False, True])
def test_every_array_format_keeps_left_and_right(tmp_path, skeleton, persons):
  order = ORDERS[skeleton]
  poses = figure(order)
  if skeleton == 'mediapipe':
    poses = poses / [SIZE[0], SIZE[1], 1.0]  # MediaPipe's normalised coordinates
    poses = np.concatenate([poses[..., :2], np.full(poses.shape[:-1] + (1,), -0.2),
                            poses[..., 2:]], axis=-1)  # (x, y, z, visibility)
  array = np.stack([poses, poses + [1.0, 0, 0, 0][:poses.shape[-1]]]) if persons else poses
  path = tmp_path / ('k.npz' if persons else 'k.npy')
  if persons:
    np.savez(path, keypoints=array, size=np.array(SIZE))
  else:
    np.save(path, array)
  kw = dict(skeleton=skeleton) if len(order) == 17 else {}
  if skeleton == 'mediapipe' and not persons:
    kw['size'] = SIZE  # the .npz gives it
  tracks = _read_tracks(path, **kw)
  assert sorted(tracks) == ([0, 1] if persons else [0])
  _check_left_hand_raised(tracks[0].keypoints, skeleton)


def test_two_channel_arrays_get_confidence_one_and_maps_are_documented(tmp_path):
  np.save(tmp_path / 'xy.npy', figure(HALPE)[..., :2])
  (track,) = _read_tracks(tmp_path / 'xy.npy').values()
  assert np.all(track.keypoints[..., 2] == 1.0)
  for name, (joints, convert, sources) in skeletons.SKELETONS.items():
    assert convert.__doc__ and len(sources) == 17, name
    assert len(joints) == len(ORDERS[name]), name


# ------------------------------------------------------------------------------ tracks, gaps

def test_ids_gaps_duplicates_and_undetected_joints(tmp_path):
  poses = figure(HALPE, frames=6)
  poses[2, HALPE.index('lwri'), 2] = 0.0  # an undetected joint: interpolated, confidence 0
  dets = [dict(image_id=f'{t}.jpg', keypoints=poses[t].reshape(-1).tolist(), score=2.0, idx=7)
          for t in (0, 1, 2, 4, 5)]  # frame 3 missing
  dets.insert(2, dict(dets[1], score=9.0, keypoints=(poses[1] + [5, 0, 0]).reshape(-1).tolist()))
  dets += [dict(image_id=f'{t}.jpg', keypoints=poses[t].reshape(-1).tolist(), score=1.0,
                idx=[2, 0.9]) for t in (1, 2)]
  (tmp_path / 'a.json').write_text(json.dumps(dets))
  tracks, skipped = person_tracks.tracks(keypoint_files.read(tmp_path / 'a.json'), min_frames=3)
  assert list(tracks) == [7] and skipped == [dict(person=2, frames=2,
                                                  reason=person_tracks.SKIP_SHORT)]
  t = tracks[7]
  assert t.frames.tolist() == list(range(6)) and t.detected.tolist() == [1, 1, 1, 0, 1, 1]
  assert t.duplicates == 1 and t.joints_filled == 1
  lwri = skeletons.H36M_JOINTS.index('lwri')
  np.testing.assert_allclose(t.keypoints[1, lwri, 0], poses[1, 9, 0] + 5)  # the higher score
  np.testing.assert_allclose(t.keypoints[3, :, :2], (t.keypoints[2, :, :2] + t.keypoints[4, :, :2])
                             / 2)
  assert np.all(t.keypoints[3, :, 2] == 0)
  np.testing.assert_allclose(t.keypoints[2, lwri], [(t.keypoints[1, lwri, 0] +
                                                     t.keypoints[3, lwri, 0]) / 2, 30, 0])


def test_a_derived_joint_is_detected_only_when_all_its_sources_are(tmp_path):
  poses = figure(COCO, frames=3)
  poses[1, COCO.index('lhip')] = 0  # COCO writes an undetected joint as 0, 0, 0
  write_coco_results(tmp_path / 'c.json', poses)
  (t,) = _read_tracks(tmp_path / 'c.json').values()
  pelvis, belly, lhip = 0, 7, 4
  assert t.keypoints[1, pelvis, 2] == 0 and t.keypoints[1, belly, 2] == 0
  assert t.keypoints[1, lhip, 2] == 0 and t.keypoints[1, 1, 2] > 0  # the right hip is fine
  np.testing.assert_allclose(t.keypoints[1, pelvis, :2], FIGURE['midhip'] + np.array([2.0, 0]))


def test_no_ids_and_several_persons_per_frame_are_tracked(tmp_path):
  poses = figure(BODY25, frames=2)
  folder = tmp_path / 'op'
  folder.mkdir()
  for t, pose in enumerate(poses):
    people = [dict(person_id=[-1], pose_keypoints_2d=p.reshape(-1).tolist())
              for p in (pose, pose + [300, 0, 0])]
    (folder / f'{t}_keypoints.json').write_text(json.dumps(dict(people=people)))
  tracks, _ = person_tracks.tracks(keypoint_files.read(folder))
  assert sorted(tracks) == [0, 1]  # OpenPose person_id -1 is no id: the tracker links them
  left = tracks[0].keypoints[..., 0].mean() < tracks[1].keypoints[..., 0].mean()
  np.testing.assert_allclose(tracks[0 if left else 1].keypoints[:, 0, 0] + 300,
                             tracks[1 if left else 0].keypoints[:, 0, 0])


# ------------------------------------------------------------------------------ bad input

def _bad(tmp_path, name, content):
  path = tmp_path / name
  if isinstance(content, np.ndarray):
    np.save(path, content)
  else:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
  return path


def _det(frame, n_joints=26, **kw):
  return dict(image_id=f'{frame}.jpg', keypoints=[1.0, 2.0, 0.5] * n_joints, score=1.0, idx=1,
              **kw)


@pytest.mark.parametrize('name,content,match', [
    ('empty.json', '', r'empty\.json: the file is empty'),
    ('none.json', [], r'none\.json: no detections'),
    ('joints.json', [_det(0), _det(1, n_joints=20)],
     r'joints\.json: detection 1 \(image_id .1\.jpg.\): 20 joints'),
    ('nan.json', '[{"image_id": "0.jpg", "keypoints": [NaN' + ', 1' * 77 + '], "idx": 1}]',
     r'nan\.json: detection 0 .*NaN'),
    ('order.json', [_det(0), _det(1), _det(3), _det(2)],
     r'order\.json: person 1: detection 3 is frame 2 but comes after frame 3'),
    ('ids.json', [_det(0), dict(_det(1), idx='a')], r'ids\.json: detection 1 .*idx must be'),
    ('partial_nan.npy', np.where(np.arange(26)[None, :, None] == 4, np.nan,
                                 np.ones((3, 26, 3))) * [[[1, 1, 1]], [[1, 1, 1]], [[1, 1, 1]]],
     r'partial_nan\.npy: person 0 frame 0 joint 4 channel 0: NaN'),
    ('seventeen.npy', np.ones((3, 17, 3)), 'pass --format coco or --format h36m'),
    ('depth.npy', np.full((3, 26, 3), -0.5), 'negative keypoint confidence'),
    ('channels.npy', np.ones((3, 26, 4)), '4 channels per joint'),
])
def test_bad_input_names_file_and_record(tmp_path, name, content, match):
  with pytest.raises(ValueError, match=match):
    person_tracks.tracks(keypoint_files.read(_bad(tmp_path, name, content)))


def test_all_nan_frames_are_reported_gaps_and_wrong_format_counts(tmp_path):
  x = figure(HALPE, frames=4)
  x[1] = np.nan
  np.save(tmp_path / 'gap.npy', x)
  dets = keypoint_files.read(tmp_path / 'gap.npy')
  assert dets.notes == ['1 person-frames all NaN: read as missing']
  (t,) = person_tracks.tracks(dets)[0].values()
  assert t.detected.tolist() == [True, False, True, True]
  with pytest.raises(ValueError, match='26 joints per person, but --format=coco has 17'):
    keypoint_files.read(tmp_path / 'gap.npy', skeleton='coco')
  with pytest.raises(ValueError, match='pass --size'):
    keypoint_files.read(write_mediapipe(tmp_path / 'm.json', figure(MEDIAPIPE), SIZE))
  with pytest.raises(ValueError, match='pose_keypoints_2d has 54 numbers'):
    folder = tmp_path / 'coco18'
    folder.mkdir()
    (folder / '0_keypoints.json').write_text(json.dumps(dict(people=[dict(
        pose_keypoints_2d=[1.0] * 54)])))
    keypoint_files.read(folder)
  with pytest.raises(ValueError, match='--focus=5: no such track; track ids: \\[1\\]'):
    person_tracks.tracks(
        keypoint_files.read(write_alphapose(tmp_path / 'a.json', HALPE, x[[0, 2]])), focus=5)
