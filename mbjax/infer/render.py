"""Fast pictures of the 2D input and the 3D output: numpy + Pillow, no matplotlib per frame.

`frames` yields (H, W, 3) uint8 frames: the 2D input in pixels (over the input video's frames
with `video`) beside the 3D skeleton from fixed views (default a 3/4 view and a side view, where
depth errors show), every track its own colour, the person's left limbs lighter than the right.
Scales are fixed once per video so the skeleton fills the view and does not breathe.
`write_video` writes mp4 through imageio-ffmpeg (which ships its own ffmpeg) or, where that is not
installed, a GIF through Pillow. `measure` times both on a synthetic one-person motion.

Coordinates are camera-like: x right, y down, z away from the camera (the keypoints and
`joints3d_px` of mbjax.infer, and the model's output), joints in H36M-17 order.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mbjax.data import skeletons
from mbjax.files import atomic

# H36M-17 bones (as mbjax.losses.pose.LIMBS; repeated so drawing needs no JAX import).
BONES = ((0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
         (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16))
_LEFT = frozenset(i for i, n in enumerate(skeletons.H36M_JOINTS) if n.startswith('l'))
_RIGHT = frozenset(i for i, n in enumerate(skeletons.H36M_JOINTS) if n.startswith('r'))
CENTRE, LEFT, RIGHT = 0, 1, 2

BACKGROUND = (255, 255, 255)
PANEL_2D = (236, 236, 236)  # the 2D panel's plain background (no video, or past its end)
GROUND = (200, 200, 200)
TEXT = (40, 40, 40)
# Base colour of track 0, 1, ...; left limbs are a lighter tint, right limbs a darker shade.
TRACK_COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14),
                 (23, 190, 207), (227, 119, 194), (140, 86, 75), (188, 189, 34))
GREY = ((90, 90, 90), (150, 150, 150), (40, 40, 40))  # e.g. the ground truth under a prediction


def _side(a: int, b: int | None = None) -> int:
  joints = {a} if b is None else {a, b}
  return LEFT if joints & _LEFT else RIGHT if joints & _RIGHT else CENTRE


_BONE_SIDES = tuple(_side(a, b) for a, b in BONES)
_JOINT_SIDES = tuple(_side(j) for j in range(skeletons.NUM_JOINTS))


def _mix(colour, towards, amount: float) -> tuple[int, int, int]:
  return tuple(int(round(c + (t - c) * amount)) for c, t in zip(colour, towards))


def track_colours(index: int) -> tuple[tuple[int, int, int], ...]:
  """(centre, left, right) RGB of the `index`-th track: one hue, left lighter, right darker."""
  base = TRACK_COLOURS[index % len(TRACK_COLOURS)]
  return base, _mix(base, (255, 255, 255), 0.45), _mix(base, (0, 0, 0), 0.35)


@dataclasses.dataclass(frozen=True)
class View:
  """A fixed orthographic view of camera-like 3D joints.

  Attributes:
    title: printed at the top of the panel.
    azimuth: degrees about the vertical axis; 0 is the camera's own view, -90 looks from the
      camera's left so that depth grows to the right.
    elevation: degrees looking down from above.
  """

  title: str
  azimuth: float = 0.0
  elevation: float = 0.0

  def project(self, joints: np.ndarray) -> np.ndarray:
    """(..., 3) camera-like joints -> (..., 2) screen coordinates (x right, y down)."""
    a, e = np.radians(self.azimuth), np.radians(self.elevation)
    x, y, z = joints[..., 0], joints[..., 1], joints[..., 2]
    u = x * np.cos(a) - z * np.sin(a)
    depth = x * np.sin(a) + z * np.cos(a)
    return np.stack([u, y * np.cos(e) - depth * np.sin(e)], axis=-1)


FRONT = View('front (camera) view')
THREE_QUARTER = View('3/4 view', azimuth=-45.0, elevation=15.0)
SIDE = View('side view, depth to the right', azimuth=-90.0)


def _fit(points: np.ndarray, box: tuple[float, float, float, float]) -> tuple[float, np.ndarray]:
  """Scale and offset (pixel = p * scale + offset) putting all finite (..., 2) points in box.

  The box is (x0, y0, width, height); the aspect is kept and the points are centred.
  """
  x0, y0, w, h = box
  centre = np.array([x0 + w / 2, y0 + h / 2])
  p = points.reshape(-1, 2)
  p = p[np.isfinite(p).all(axis=-1)]
  if not len(p):
    return 1.0, centre
  low, high = p.min(axis=0), p.max(axis=0)
  extent = np.maximum(high - low, 1e-9)
  scale = float(min(w / extent[0], h / extent[1]))
  return scale, centre - scale * (low + high) / 2


@functools.lru_cache(maxsize=8)
def _font(px: int):
  try:
    return ImageFont.load_default(size=px)
  except (TypeError, OSError, ImportError):  # Pillow without FreeType: the small bitmap font
    return ImageFont.load_default()


def _round16(n: float) -> int:
  """Video encoders want sides that are multiples of 16 (else imageio resizes)."""
  return max(16, int(round(n / 16)) * 16)


@dataclasses.dataclass
class _Panel:
  """One panel of the frame: where it sits and every track's joints already in panel pixels."""

  title: str
  x0: int
  width: int
  pixels: dict  # track key -> (T, 17, 2) panel pixel coordinates
  ground: list = dataclasses.field(default_factory=list)  # ((x, y), (x, y)) lines
  image_fit: tuple | None = None  # 2D panel: (scale, offset), image pixels -> panel pixels


def _ground_lines(joints: list[np.ndarray], view: View, scale, offset, lines: int = 5) -> list:
  """A square grid on the floor (the lowest joint of the video), in panel pixels."""
  p = np.concatenate([j.reshape(-1, 3) for j in joints])
  p = p[np.isfinite(p).all(axis=-1)]
  if not len(p):
    return []
  floor = p[:, 1].max()
  (x_lo, _, z_lo), (x_hi, _, z_hi) = p.min(axis=0), p.max(axis=0)
  half = 0.6 * max(x_hi - x_lo, z_hi - z_lo, np.ptp(p[:, 1]) / 2)
  cx, cz = (x_lo + x_hi) / 2, (z_lo + z_hi) / 2
  ticks = np.linspace(-half, half, lines)
  out = []
  for t in ticks:
    for a, b in (((cx + t, cz - half), (cx + t, cz + half)), ((cx - half, cz + t),
                                                              (cx + half, cz + t))):
      ends = view.project(np.array([[a[0], floor, a[1]], [b[0], floor, b[1]]])) * scale + offset
      out.append((tuple(ends[0]), tuple(ends[1])))
  return out


def _open_video(path: str):
  """The frames of a video, an image or an image folder (mbjax/video/media.py); `get(i)`."""
  from mbjax.video import media
  return media.open_frames(path)


def _layout(tracks_2d, tracks_3d, size, image_size, views, top):
  """The 2D panel (fitted to the image, or to the keypoints) and one panel per 3D view.

  Pixel coordinates are the panel's own: each panel is drawn apart, so nothing spills over.
  """
  margin = 0.05 * size
  width_2d = size if image_size is None else _round16(size * image_size[0] / image_size[1])
  if image_size is None:
    points = [x[..., :2].reshape(-1, 2) for x in tracks_2d.values()]
    box = (margin, top + margin, width_2d - 2 * margin, size - top - 2 * margin)
    scale, offset = _fit(np.concatenate(points), box)
  else:
    corners = np.array([[0.0, 0.0], image_size], np.float64)
    scale, offset = _fit(corners, (0, 0, width_2d, size))
  panels = [_Panel('2D input', 0, width_2d,
                   {k: x[..., :2] * scale + offset for k, x in tracks_2d.items()},
                   image_fit=(scale, offset))]
  box = (margin, top + margin, size - 2 * margin, size - top - 2 * margin)
  for i, view in enumerate(views):
    projected = {k: view.project(x) for k, x in tracks_3d.items()}
    scale, offset = _fit(np.concatenate([p.reshape(-1, 2) for p in projected.values()]), box)
    ground = _ground_lines(list(tracks_3d.values()), view, scale, offset)
    panels.append(_Panel(view.title, width_2d + i * size, size,
                         {k: p * scale + offset for k, p in projected.items()}, ground))
  return panels


def _panel_bases(panels, size, font) -> list[Image.Image]:
  """What every frame shares, per panel: background, the ground grid, the 3D title."""
  bases = []
  for i, panel in enumerate(panels):
    im = Image.new('RGB', (panel.width, size), PANEL_2D if i == 0 else BACKGROUND)
    draw = ImageDraw.Draw(im)
    for a, b in panel.ground:
      draw.line([a, b], fill=GROUND, width=1)
    if i:
      draw.line([(0, 0), (0, size)], fill=GROUND, width=1)
      draw.text((6, 4), panel.title, fill=TEXT, font=font)
    bases.append(im)
  return bases


def _draw_skeleton(draw: ImageDraw.ImageDraw, xy: np.ndarray, colours, width: int, radius: int):
  """One (17, 2) pose in frame pixels; joints with NaN coordinates are left out."""
  ok = np.isfinite(xy).all(axis=-1)
  pts = [tuple(p) for p in xy.tolist()]
  for (a, b), side in zip(BONES, _BONE_SIDES):
    if ok[a] and ok[b]:
      draw.line([pts[a], pts[b]], fill=colours[side], width=width)
  for j, side in enumerate(_JOINT_SIDES):
    if ok[j]:
      x, y = pts[j]
      draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colours[side])


def _frame_rows(frame_ids: Mapping, first: int, last: int) -> dict:
  """track key -> (last - first + 1,) row of each frame number in the track, -1 where absent."""
  rows = {}
  for k, ids in frame_ids.items():
    r = np.full(last - first + 1, -1, np.int64)
    r[np.asarray(ids, np.int64) - first] = np.arange(len(ids))
    rows[k] = r
  return rows


def frames(tracks_2d: Mapping, tracks_3d: Mapping, size: int = 512, *,
           frame_ids: Mapping | None = None, image_size: tuple[int, int] | None = None,
           video: str | None = None, views: Sequence[View] = (THREE_QUARTER, SIDE),
           colours: Mapping | None = None, only: Iterable[int] | None = None,
           captions: Mapping[int, str] | None = None) -> Iterator[np.ndarray]:
  """Frames showing the 2D input beside the 3D skeleton, one per frame number.

  Args:
    tracks_2d: track key -> (T, 17, >=2) 2D keypoints in pixels (x, y[, confidence]).
    tracks_3d: track key -> (T, 17, 3) camera-like 3D joints (any unit; fitted once per video).
      Its keys may differ from those of `tracks_2d` (e.g. 'pred' and 'gt' over one input).
    size: frame height and 3D panel side in pixels (rounded to a multiple of 16).
    frame_ids: track key -> (T,) frame numbers of its rows; default 0..T-1.
    image_size: (W, H) of the image the 2D is in: the 2D panel shows that whole image. Default:
      the video's, else the 2D panel is fitted to the keypoints.
    video: the input video, image or folder of images: frame i is the 2D panel's background
      for frame number i.
    views: the 3D panels.
    colours: track key -> (centre, left, right) RGB; default `track_colours` by sorted key.
    only: the frame numbers to draw (default every one from the first to the last).
    captions: frame number -> text for the 2D panel (default 'frame N').

  Yields:
    (size, W, 3) uint8 frames.
  """
  size = _round16(size)
  keys = sorted(set(tracks_2d) | set(tracks_3d), key=str)
  colours = colours or {k: track_colours(i) for i, k in enumerate(keys)}
  tracks_2d = {k: np.asarray(x, np.float64) for k, x in tracks_2d.items()}
  tracks_3d = {k: np.asarray(x, np.float64) for k, x in tracks_3d.items()}
  both = {**tracks_2d, **tracks_3d}
  frame_ids = {k: np.arange(len(both[k])) if not frame_ids or k not in frame_ids
               else np.asarray(frame_ids[k], np.int64) for k in both}
  first = int(min(ids.min() for ids in frame_ids.values() if len(ids)))
  last = int(max(ids.max() for ids in frame_ids.values() if len(ids)))
  reader = _open_video(video) if video else None
  if image_size is None and reader is not None:
    image_size = reader.size
  font = _font(max(10, size // 30))
  panels = _layout(tracks_2d, tracks_3d, size, image_size, tuple(views), top=size // 30 + 8)
  bases = _panel_bases(panels, size, font)
  rows = _frame_rows(frame_ids, first, last)
  style = dict(width=max(2, round(size / 160)), radius=max(2, round(size / 130)))
  order = sorted(f for f in (range(first, last + 1) if only is None else only)
                 if first <= f <= last)
  try:
    for f in order:
      caption = captions.get(f, f'frame {f}') if captions else f'frame {f}'
      background = reader.get(f) if reader is not None else None
      yield _draw_frame(panels, bases, {k: r[f - first] for k, r in rows.items()}, colours,
                        style, background, f'2D input, {caption}', font)
  finally:
    if reader is not None:
      reader.close()


def _draw_frame(panels, bases, row, colours, style, background, caption, font) -> np.ndarray:
  """One frame: each panel drawn on a copy of its base (the video frame under the 2D)."""
  im = Image.new('RGB', (panels[-1].x0 + panels[-1].width, bases[0].height))
  for i, (panel, base) in enumerate(zip(panels, bases)):
    sub = base.copy()
    if i == 0 and background is not None:
      _paste_video(sub, background, panel)
    draw = ImageDraw.Draw(sub)
    for k, px in panel.pixels.items():
      if row[k] >= 0:
        _draw_skeleton(draw, px[row[k]], colours[k], **style)
    if i == 0:
      draw.text((6, 4), caption, fill=TEXT, font=font, stroke_width=2, stroke_fill=BACKGROUND)
    im.paste(sub, (panel.x0, 0))
  return np.asarray(im)


def _paste_video(im: Image.Image, frame: np.ndarray | None, panel: _Panel) -> None:
  """The video frame, scaled as the keypoints are, under the 2D panel (plain past its end)."""
  if frame is None:
    return
  scale, offset = panel.image_fit
  picture = Image.fromarray(frame).convert('RGB')
  w, h = max(1, round(picture.width * scale)), max(1, round(picture.height * scale))
  picture = picture.resize((w, h), Image.Resampling.BILINEAR)
  box = (int(round(offset[0])), int(round(offset[1])))
  im.paste(picture, box)


def have_ffmpeg() -> bool:
  """Whether mp4 can be written: imageio and imageio-ffmpeg (its own ffmpeg binary) import."""
  try:
    import imageio  # noqa: F401
    import imageio_ffmpeg  # noqa: F401
  except ImportError:
    return False
  return True


def write_video(path: str, frames: Iterable[np.ndarray], fps: float = 30.0) -> str:
  """Writes frames as mp4 (H.264) or, without imageio-ffmpeg or for a .gif path, a GIF.

  Args:
    path: the file to write; where mp4 is not possible its extension becomes .gif.
    frames: (H, W, 3) uint8 arrays, all one size (sides multiples of 16 for mp4).
    fps: frames per second.

  Returns:
    The path written.
  """
  path = video_path(path)
  with atomic.replacing(path) as tmp:  # tmp ends in path's extension, which ffmpeg reads
    if path.lower().endswith('.gif'):
      _write_gif(tmp, frames, fps, name=path)
    else:
      _write_mp4(tmp, frames, fps)
  return path


def video_path(path: str) -> str:
  """The file `write_video(path, ...)` writes: `path`, or a .gif beside it without mp4."""
  if path.lower().endswith('.gif') or not have_ffmpeg():
    return os.path.splitext(path)[0] + '.gif'
  return path


def _write_mp4(path: str, frames: Iterable[np.ndarray], fps: float) -> None:
  import imageio.v2 as iio
  with warnings.catch_warnings():
    # The ffmpeg subprocess is started before any frame is sent and only reads a pipe: the
    # os.fork warning that JAX's threads provoke does not apply to it.
    warnings.filterwarnings('ignore', message='os.fork', category=RuntimeWarning)
    # veryfast: on 2 cores the default preset would make encoding the bottleneck.
    with iio.get_writer(path, format='FFMPEG', mode='I', fps=fps, codec='libx264', quality=None,
                        pixelformat='yuv420p', macro_block_size=16, ffmpeg_log_level='error',
                        output_params=['-preset', 'veryfast', '-crf', '23']) as writer:
      for frame in frames:
        writer.append_data(frame)


def _write_gif(path: str, frames: Iterable[np.ndarray], fps: float, name: str) -> None:
  """A looping GIF through Pillow (the whole clip is held in memory, one byte a pixel); `name`:
  the file the user asked for, in errors."""
  images = [Image.fromarray(f).convert('P', palette=Image.Palette.ADAPTIVE, colors=128)
            for f in frames]
  if not images:
    raise ValueError(f'{name}: no frames to write')
  images[0].save(path, format='GIF', save_all=True, append_images=images[1:], loop=0,
                 duration=max(20, int(round(1000 / fps))), optimize=False)


def render_tracks(path: str, per_track: Mapping[int, Mapping], image_size=None,
                  video: str | None = None, size: int = 512, fps: float | None = None) -> dict:
  """Writes the render of an mbjax.infer run; returns its path, frame count and frames/s.

  Args:
    path: the mp4 to write (a .gif next to it where mp4 cannot be written).
    per_track: track id -> {'frames', 'keypoints_px', 'joints3d_px'} (as mbjax.infer builds).
    image_size: (W, H) of the input frames, if known.
    video: the input video, drawn under the 2D panel.
    size: frame height in pixels.
    fps: default: the video's, else 30.
  """
  if fps is None and video:
    fps = _open_video(video).fps
  fps = fps or 30.0
  stream = frames({k: t['keypoints_px'] for k, t in per_track.items()},
                  {k: t['joints3d_px'] for k, t in per_track.items()}, size,
                  frame_ids={k: t['frames'] for k, t in per_track.items()},
                  image_size=image_size, video=video)
  count = [0]

  def counted():
    for frame in stream:
      count[0] += 1
      yield frame

  start = time.perf_counter()
  written = write_video(path, counted(), fps)
  seconds = time.perf_counter() - start
  return dict(path=written, frames=count[0], fps=fps,
              frames_per_s=round(count[0] / max(seconds, 1e-9), 1))


# A standing person facing the camera, metres, camera-like axes (y down); the person's right is
# the image's left.
_STANDING = np.array([
    [0, 0, 0], [-0.13, 0, 0], [-0.13, 0.45, 0], [-0.13, 0.9, 0], [0.13, 0, 0], [0.13, 0.45, 0],
    [0.13, 0.9, 0], [0, -0.25, 0], [0, -0.5, 0], [0, -0.6, -0.08], [0, -0.72, 0],
    [0.18, -0.48, 0], [0.22, -0.2, 0], [0.24, 0.05, 0], [-0.18, -0.48, 0], [-0.22, -0.2, 0],
    [-0.24, 0.05, 0]])


def synthetic_motion(n_frames: int, people: int = 1, image_size=(1920, 1080)) -> tuple:
  """A walk in place with swinging limbs: ({id: (T, 17, 3) px + conf}, {id: (T, 17, 3) px})."""
  t = np.arange(n_frames)[:, None]
  swing = 0.5 * np.sin(2 * np.pi * t / 30)  # radians, legs; arms swing the other way
  tracks_2d, tracks_3d = {}, {}
  for person in range(people):
    joints = np.repeat(_STANDING[None], n_frames, axis=0)
    for hip, limb, sign in ((1, (2, 3), 1), (4, (5, 6), -1), (11, (12, 13), -1),
                            (14, (15, 16), 1)):
      rel = joints[:, limb, 1] - joints[:, hip:hip + 1, 1]
      angle = sign * swing
      joints[:, limb, 1] = joints[:, hip:hip + 1, 1] + rel * np.cos(angle)
      joints[:, limb, 2] = rel * np.sin(angle)
    joints[..., 0] += 0.3 * np.sin(2 * np.pi * t / n_frames) + 0.9 * (person - (people - 1) / 2)
    px = joints * 400.0 + np.array([image_size[0] / 2, image_size[1] / 2, 0.0])
    tracks_3d[person] = px.astype(np.float32)
    tracks_2d[person] = np.concatenate([px[..., :2], np.ones_like(px[..., :1])],
                                       axis=-1).astype(np.float32)
  return tracks_2d, tracks_3d


def measure(n_frames: int = 150, size: int = 512, people: int = 1, encode: bool = True) -> float:
  """Render frames/s on a synthetic motion: rasterising, plus writing the mp4 (or GIF) if encode.

  The frames come from `frames` with the default views at `size` px over a 1920x1080 input.
  """
  tracks_2d, tracks_3d = synthetic_motion(n_frames, people)
  stream = frames(tracks_2d, tracks_3d, size, image_size=(1920, 1080))
  start = time.perf_counter()
  if encode:
    with tempfile.TemporaryDirectory() as tmp:
      write_video(os.path.join(tmp, 'measure.mp4'), stream, 30.0)
  else:
    for _ in stream:
      pass
  return n_frames / (time.perf_counter() - start)
