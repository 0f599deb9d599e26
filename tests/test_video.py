"""Video in without the `video` extra: decoding, the Keypoints2D interface with a scripted
detector, track ids, COCO-results JSON read back through --keypoints, the progress line, and
the one-line error when the extra is missing. The BlazePose detector on real footage is
tests/test_video_blazepose.py."""

import io
import json
import sys

import imageio.v2 as iio
import numpy as np
import pytest

from mbjax.data import keypoint_files, skeletons, tracker
from mbjax.infer import pipeline
from mbjax.infer.model import Lifter
from mbjax.video import detect, keypoints2d, media, progress, source
from tests.conftest import SHARED

VTEST = SHARED / 'data' / 'video' / 'vtest.avi'
MESSI = SHARED / 'data' / 'video' / 'messi5.jpg'
# A standing person, COCO-17, 100 px tall, feet at y = 0 and centred on x = 0.
_STAND = np.array([[0, -95], [3, -97], [-3, -97], [6, -95], [-6, -95], [12, -80], [-12, -80],
                   [15, -62], [-15, -62], [16, -45], [-16, -45], [8, -48], [-8, -48],
                   [8, -25], [-8, -25], [8, 0], [-8, 0]], np.float64)


class Walkers:
  """A scripted Keypoints2D: two people 100 px tall walking apart (one left, one right) on
  every frame, whatever the pixels; the first is found only from frame 2 on."""

  name = 'walkers'
  skeleton = 'coco'

  def __init__(self, **options):
    self.options, self.index = options, 0

  def __call__(self, frame):
    t, self.index = self.index, self.index + 1
    people = [(150 - 3 * t, 200)] if t >= 2 else []
    people.append((170 + 3 * t, 205))
    kp = np.stack([np.concatenate([_STAND + c, np.full((17, 1), 0.9)], axis=1) for c in people])
    boxes = np.stack([[x - 30, y - 110, x + 30, y + 10] for x, y in people]).astype(np.float64)
    return keypoints2d.Poses(kp, boxes, np.full(len(people), 0.8))


def _video(path, frames=24, size=(320, 240), fps=12):
  rng = np.random.default_rng(0)
  with iio.get_writer(path, fps=fps, macro_block_size=16, ffmpeg_log_level='error') as w:
    for _ in range(frames):
      w.append_data(rng.integers(0, 255, (size[1], size[0], 3), np.uint8))
  return str(path)


def _lifter():
  """Identity-like lifter: (x, y, conf) -> (x, y, x * y): deterministic, any length."""
  return Lifter(predict=lambda x: np.concatenate([x[..., :2], x[..., :1] * x[..., 1:2]], -1),
                maxlen=9, rootrel=False, flip=False, gt_2d=False, no_conf=False, config=None,
                source='identity')


@pytest.fixture
def walkers(monkeypatch):
  monkeypatch.setitem(keypoints2d.DETECTORS, 'walkers', f'{__name__}:Walkers')
  return source.Options(detector='walkers', progress=False)


def test_media_kinds_frames_and_folder_order(tmp_path):
  assert media.kind(VTEST) == 'video' and media.kind(MESSI) == 'image'
  assert media.kind(tmp_path / 'a.json') is None and media.kind(tmp_path) is None
  frames = media.open_frames(VTEST)
  assert (frames.size, frames.fps, frames.expected) == ((768, 576), 10.0, 795)
  first = [f for _, f in zip(range(3), frames)]
  assert [i for i, _ in first] == [0, 1, 2] and first[0][1].shape == (576, 768, 3)
  for i, name in enumerate(['f10.png', 'f2.png', 'f1.png']):
    iio.imwrite(tmp_path / name, np.full((8, 6, 3), i * 50, np.uint8))
  assert media.kind(tmp_path) == 'images'
  assert [p.name for p in media.image_files(tmp_path)] == ['f1.png', 'f2.png', 'f10.png']
  folder = media.open_frames(tmp_path)
  assert (folder.size, folder.fps, folder.count) == ((6, 8), None, 3)
  assert [int(f[0, 0, 0]) for _, f in folder] == [100, 50, 0]
  assert folder.get(1)[0, 0, 0] == 50 and folder.get(5) is None
  image = media.open_frames(MESSI)
  assert image.size == (548, 342) and image.count == 1


def test_images_of_two_sizes_fail_naming_the_file(tmp_path):
  iio.imwrite(tmp_path / 'a1.png', np.zeros((8, 6, 3), np.uint8))
  iio.imwrite(tmp_path / 'a2.png', np.zeros((9, 6, 3), np.uint8))
  with pytest.raises(ValueError, match='a2.png: 6x9, but a1.png is 6x8'):
    list(media.open_frames(tmp_path))


def test_to_coco_keeps_the_h36m_map():
  rng = np.random.default_rng(1)
  mp = rng.uniform(0, 1, (4, 33, 3))
  coco = skeletons.to_coco(mp, 'mediapipe')
  np.testing.assert_array_equal(skeletons.to_h36m(coco, 'coco'), skeletons.mediapipe_to_h36m(mp))
  mp[0, 24, 2] = 0  # right hip undetected: pelvis and belly too, in both
  np.testing.assert_array_equal(skeletons.h36m_detected(mp[..., 2], 'mediapipe'),
                                skeletons.h36m_detected(skeletons.to_coco(mp, 'mediapipe')[..., 2],
                                                        'coco'))
  with pytest.raises(ValueError, match="'h36m' lacks the COCO joints"):
    skeletons.to_coco(np.zeros((17, 3)), 'h36m')


def test_video_to_3d_with_a_scripted_detector_and_back_through_keypoints(tmp_path, walkers):
  video = _video(tmp_path / 'walk.mp4')
  request = pipeline.Request(input=video, detection=walkers, render=True, bvh=True)
  summary = pipeline.run(request, _lifter(), str(tmp_path / 'out'))
  assert summary['tracks'] == [0, 1] and summary['format'] == 'coco'
  assert summary['fps'] == 12.0 and summary['size'] == [320, 240]
  assert set(summary['stages']) == {'decode', '2D', 'lift', 'render'}
  assert summary['render']['frames'] == 24
  with np.load(tmp_path / 'out' / 'results.npz') as z:
    first = {k: z[k] for k in z.files}
  # Ids follow the people walking apart: 0 the one seen from frame 0 (moving right).
  assert first['0/frames'].tolist() == list(range(24))
  assert first['1/frames'].tolist() == list(range(2, 24))
  assert np.all(np.diff(first['0/keypoints_px'][:, 0, 0]) > 0)
  assert np.all(np.diff(first['1/keypoints_px'][:, 0, 0]) < 0)
  coco = json.loads((tmp_path / 'out' / 'keypoints2d.json').read_text())
  assert len(coco) == 24 + 22 and {d['track_id'] for d in coco} == {0, 1}
  assert coco[0]['image_id'] == 0 and len(coco[0]['keypoints']) == 51 and len(coco[0]['bbox']) == 4
  again = pipeline.Request(input=video, keypoints=str(tmp_path / 'out' / 'keypoints2d.json'))
  pipeline.run(again, _lifter(), str(tmp_path / 'again'))
  with np.load(tmp_path / 'again' / 'results.npz') as z:
    for k in ('0/joints3d', '1/joints3d', '0/keypoints_px', '1/frames'):
      np.testing.assert_array_equal(z[k], first[k])
  assert not (tmp_path / 'again' / 'keypoints2d.json').exists()


def test_short_tracks_skipped_and_fps_where_the_container_has_none(tmp_path, walkers):
  for i in range(8):
    iio.imwrite(tmp_path / f'{i:03d}.png', np.zeros((240, 320, 3), np.uint8))
  read = source.read(str(tmp_path), walkers, fps=4.0)
  assert read.fps == 4.0 and read.min_frames == 2 and read.detections.size == (320, 240)
  assert read.detections.persons.tolist()[:3] == [0, 0, 1]  # frame 0, 1: one; frame 2: both
  assert source.read(str(tmp_path), walkers).fps == source.DEFAULT_FPS
  assert source.read(str(tmp_path), walkers).min_frames == 8  # half a second, at most all
  with pytest.raises(ValueError, match='goes with a video, image or image folder INPUT'):
    pipeline.prepare(pipeline.Request(input=str(tmp_path / 'x.json'), keypoints='k.json'))


def test_a_missing_extra_is_one_line_naming_the_install(monkeypatch):
  monkeypatch.setitem(sys.modules, 'ai_edge_litert', None)
  monkeypatch.setitem(sys.modules, 'ai_edge_litert.interpreter', None)
  with pytest.raises(keypoints2d.ExtraMissing) as e:
    keypoints2d.make('blazepose')
  assert isinstance(e.value, ValueError)  # mbjax.cli reports it in one line, exit status 1
  assert keypoints2d.INSTALL in str(e.value) and '\n' not in str(e.value)
  with pytest.raises(ValueError, match="--detector='nope'"):
    keypoints2d.make('nope')


def test_stage_progress_rates_and_eta():
  now = [0.0]
  out = io.StringIO()
  bar = progress.StageProgress(4, file=out, use_bar=False, every_s=1.0, clock=lambda: now[0])
  for _ in range(2):
    now[0] += 0.5
    bar.update({'decode': 0.1, '2D': 0.4}, people=3)
  assert bar.rates() == {'decode': 10.0, '2D': 2.5}
  assert out.getvalue() == ('2D keypoints: 2/4 frames, decode 10 f/s, 2D 2.5 f/s, people 3, '
                            'ETA 0:00:01\n')
  assert bar.close() == {'decode': 10.0, '2D': 2.5}
  assert out.getvalue().splitlines()[-1].endswith('ETA 0:00:00')


def test_coco_results_of_the_detector_read_back_exactly(tmp_path, walkers):
  found = detect.detect(_video(tmp_path / 'w.mp4', frames=6), keypoints2d.make('walkers'),
                        progress=False)
  dets = detect.with_track_ids(found.detections, tracker.TrackerOptions())
  back = keypoint_files.read(detect.write_coco(dets, str(tmp_path / 'k.json')))
  np.testing.assert_array_equal(back.keypoints, dets.keypoints)
  np.testing.assert_array_equal(back.persons, dets.persons)
  np.testing.assert_array_equal(back.frames, dets.frames)


def test_bench_video_reports_every_stage(tmp_path, walkers):
  from absl import flags
  from mbjax.bench import video as video_bench
  fv = flags.FlagValues()
  video_bench.define_flags(fv)
  fv(['bench', f'--video={_video(tmp_path / "b.mp4", frames=12)}', '--detector=walkers',
      '--variant=tiny', '--render_size=64'])
  result = video_bench.run(fv)
  assert result['frames'] == 12 and result['people_frames'] == 22
  assert result['tracks_lifted'] == 2 and result['render_frames'] == 12
  for stage in ('decode', 'keypoints_2d', 'lift', 'render', 'end_to_end'):
    assert result[f'{stage}_frames_per_s'] > 0, stage


def test_a_panned_clip_of_an_image_moves_its_window_and_keeps_its_content(tmp_path):
  """bench video --pan_frames: the one-person speed case made from the shipped messi5.jpg."""
  import imageio.v3 as iio
  from mbjax.bench import video as video_bench
  path = video_bench.panned_clip(str(MESSI), 12, str(tmp_path / 'pan.mp4'))
  clip = iio.imread(path)
  image = iio.imread(MESSI)
  margin = video_bench.PAN_MARGIN
  assert clip.shape[0] == 12 and clip.shape[1:3] == tuple(
      (side - 2 * margin) // 16 * 16 for side in image.shape[:2])
  # frame 0 is the crop at (y, x) = (margin, 2 margin); frame 3 (a quarter turn) at (2m, m)
  for frame, (y, x) in ((0, (margin, 2 * margin)), (3, (2 * margin, margin))):
    crop = image[y:y + clip.shape[1], x:x + clip.shape[2]].astype(float)
    assert np.abs(clip[frame].astype(float) - crop).mean() < 6  # lossy encoding only
  assert np.abs(clip[0].astype(float) - clip[3].astype(float)).mean() > 10  # it moved
