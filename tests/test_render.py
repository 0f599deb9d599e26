"""mbjax.infer.render: where the skeleton lands, colours per track, mp4 and the GIF fallback."""

import sys

import numpy as np
import pytest
from PIL import Image

from mbjax.infer import render

SIZE = 256


def _pose_2d(dx=0.0, scale=1.0):
  """(17, 3) pixel keypoints of the standing pose, 1:1 in a SIZE x SIZE image."""
  xy = render._STANDING[:, :2] * 120 * scale + [SIZE / 2 + dx, SIZE / 2]
  return np.concatenate([xy, np.ones((17, 1))], axis=-1)


def _colour_at(frame, xy):
  return tuple(int(c) for c in frame[int(round(xy[1])), int(round(xy[0]))])


def _one_frame(tracks_2d, tracks_3d=None, **kw):
  tracks_3d = tracks_3d or {k: np.asarray(render._STANDING)[None] for k in tracks_2d}
  return next(render.frames(tracks_2d, tracks_3d, SIZE, image_size=(SIZE, SIZE), **kw))


def test_frames_shape_dtype_and_count():
  tracks_2d, tracks_3d = render.synthetic_motion(7)
  out = list(render.frames(tracks_2d, tracks_3d, SIZE, image_size=(SIZE, SIZE)))
  assert len(out) == 7
  assert all(f.shape == (SIZE, 3 * SIZE, 3) and f.dtype == np.uint8 for f in out)
  wide = next(render.frames(tracks_2d, tracks_3d, SIZE, image_size=(1920, 1080)))
  assert wide.shape == (SIZE, 448 + 2 * SIZE, 3)  # 2D panel 256 * 16 / 9, to a multiple of 16


def test_2d_joints_drawn_where_the_keypoints_are_left_lighter_than_right():
  pose = _pose_2d()
  frame = _one_frame({0: pose[None]})
  centre, left, right = render.track_colours(0)
  assert _colour_at(frame, pose[0]) == centre  # pelvis
  assert _colour_at(frame, pose[13]) == left  # lwri
  assert _colour_at(frame, pose[16]) == right  # rwri
  assert left != right
  # Away from the skeleton: the plain 2D background.
  assert _colour_at(frame, (10, SIZE - 10)) == render.PANEL_2D
  assert _colour_at(frame, (SIZE / 2 + 90, SIZE / 2)) == render.PANEL_2D


def test_two_tracks_get_different_colours():
  a, b = _pose_2d(-60, 0.5), _pose_2d(60, 0.5)
  frame = _one_frame({3: a[None], 7: b[None]})
  assert _colour_at(frame, a[0]) == render.track_colours(0)[0]
  assert _colour_at(frame, b[0]) == render.track_colours(1)[0]
  assert render.track_colours(0)[0] != render.track_colours(1)[0]


def _ink_box(panel):
  """Bounding box (x0, y0, x1, y1) of the skeleton's colours (not background, grid or text)."""
  colours = np.array(render.track_colours(0))
  ink = (panel[..., None, :] == colours).all(axis=-1).any(axis=-1)
  ys, xs = np.nonzero(ink)
  return xs.min(), ys.min(), xs.max(), ys.max()


def test_3d_fills_the_view_keeps_its_aspect_and_is_scaled_once_per_video():
  pose3d = np.asarray(render._STANDING)
  clip = np.stack([pose3d, pose3d * 0.5])
  out = list(render.frames({0: np.stack([_pose_2d()] * 2)}, {0: clip}, SIZE,
                           image_size=(SIZE, SIZE), views=(render.FRONT,)))
  x0, y0, x1, y1 = _ink_box(out[0][:, SIZE:])
  height, width = y1 - y0, x1 - x0
  assert height > 0.8 * SIZE  # fills the view (the old demo picture: a fifth of it)
  extent = np.ptp(pose3d, axis=0)
  assert abs(width / height - extent[0] / extent[1]) < 0.05
  assert abs((x0 + x1) / 2 - SIZE / 2) < 4  # centred
  # The half-size pose in the same video is drawn at half the size, not refitted.
  hx0, hy0, hx1, hy1 = _ink_box(out[1][:, SIZE:])
  assert abs((hy1 - hy0) - height / 2) < 6


def test_side_view_shows_depth():
  pose3d = np.asarray(render._STANDING).copy()
  flat = next(render.frames({0: _pose_2d()[None]}, {0: pose3d[None]}, SIZE,
                            image_size=(SIZE, SIZE), views=(render.SIDE,)))
  pose3d[13, 2] = 0.5  # the left wrist reaches away from the camera: to the right in side view
  reach = next(render.frames({0: _pose_2d()[None]}, {0: pose3d[None]}, SIZE,
                             image_size=(SIZE, SIZE), views=(render.SIDE,)))
  assert _ink_box(reach[:, SIZE:])[2] - _ink_box(flat[:, SIZE:])[2] > 20


def _write_frames(n):
  tracks_2d, tracks_3d = render.synthetic_motion(n)
  return render.frames(tracks_2d, tracks_3d, 128, image_size=(SIZE, SIZE))


def test_mp4_writes_and_reads_back(tmp_path):
  import imageio.v2 as iio
  assert render.have_ffmpeg()
  path = render.write_video(str(tmp_path / 'out.mp4'), _write_frames(9), fps=25)
  assert path.endswith('.mp4')
  reader = iio.get_reader(path)
  got = [f for f in reader]
  assert reader.get_meta_data()['fps'] == 25
  reader.close()
  assert len(got) == 9 and got[0].shape == (128, 3 * 128, 3)


def test_gif_fallback_without_imageio_ffmpeg(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'imageio_ffmpeg', None)  # import now raises ImportError
  assert not render.have_ffmpeg()
  path = render.write_video(str(tmp_path / 'out.mp4'), _write_frames(6), fps=10)
  assert path == str(tmp_path / 'out.gif')
  with Image.open(path) as gif:
    assert gif.format == 'GIF' and gif.n_frames == 6 and gif.size == (3 * 128, 128)


def test_video_frames_under_the_2d_until_the_video_ends(tmp_path):
  colour = np.array([30, 200, 90], np.uint8)
  video = render.write_video(str(tmp_path / 'in.mp4'),
                             [np.broadcast_to(colour, (SIZE, SIZE, 3)).copy()] * 2, fps=10)
  pose = _pose_2d()[None].repeat(4, axis=0)
  out = list(render.frames({0: pose}, {0: np.asarray(render._STANDING)[None].repeat(4, 0)}, SIZE,
                           video=video))
  assert len(out) == 4 and out[0].shape == (SIZE, 3 * SIZE, 3)  # image size from the video
  corner = (10, SIZE - 10)
  assert np.abs(np.array(_colour_at(out[1], corner)) - colour).max() <= 8
  assert _colour_at(out[3], corner) == render.PANEL_2D  # past the video's end
  assert _colour_at(out[3], pose[0, 0]) == render.track_colours(0)[0]


def test_frame_ids_place_tracks_in_time():
  a = np.stack([_pose_2d(-60, 0.5)] * 2)
  b = np.stack([_pose_2d(60, 0.5)] * 2)
  s3d = np.asarray(render._STANDING)[None].repeat(2, 0)
  out = list(render.frames({0: a, 1: b}, {0: s3d, 1: s3d}, SIZE, image_size=(SIZE, SIZE),
                           frame_ids={0: [5, 6], 1: [6, 7]}))
  assert len(out) == 3  # frames 5, 6, 7
  assert _colour_at(out[0], b[0, 0]) == render.PANEL_2D
  assert _colour_at(out[1], b[0, 0]) == render.track_colours(1)[0]
  assert _colour_at(out[2], a[0, 0]) == render.PANEL_2D


def test_measure_reports_frames_per_second():
  fps = render.measure(n_frames=5, size=128, encode=False)
  assert np.isfinite(fps) and fps > 0


def test_pipeline_render_records_path_and_speed(tmp_path):
  from mbjax.infer import pipeline
  from mbjax.infer.model import Lifter
  keypoints = np.stack([_pose_2d(0, 1 + 0.01 * t) for t in range(12)])
  np.save(tmp_path / 'poses.npy', keypoints)
  lifter = Lifter(predict=lambda x: np.asarray(x)[..., :3] * [1, 1, 0], maxlen=8, rootrel=False,
                  flip=False, gt_2d=False, no_conf=False, config=None, source='identity')
  request = pipeline.Request(input=str(tmp_path / 'poses.npy'), skeleton='h36m', render=True)
  summary = pipeline.run(request, lifter, str(tmp_path / 'out'))
  assert summary['render']['path'] == str(tmp_path / 'out' / 'render.mp4')
  assert summary['render']['frames'] == 12 and summary['render']['frames_per_s'] > 0
  assert (tmp_path / 'out' / 'render.mp4').stat().st_size > 1000


def test_video_needs_render():
  from mbjax.infer import pipeline
  with pytest.raises(ValueError, match='--video is drawn only with --render'):
    pipeline.prepare(pipeline.Request(input='x.npy', video='in.mp4'))
