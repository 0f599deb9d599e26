"""Frames of a video file, an image or a folder of images, decoded in order, as RGB arrays.

  frames = media.open_frames('vtest.avi')          # .mp4 .avi .mov .webm .mkv ...
  frames.size, frames.fps, frames.count            # (W, H); fps (None if unknown); count or None
  for index, rgb in frames: ...                    # (H, W, 3) uint8, index 0, 1, ...

Videos decode through imageio's ffmpeg plugin, whose imageio-ffmpeg wheel ships its own ffmpeg
binary (both pinned; no system ffmpeg). A folder's images are its files with an image extension
in name order, numbers compared as numbers (frame_2 before frame_10); they must all have one
size. A single image is a one-frame video. `fps` comes from the container; an image, a folder or
a container without a rate gives None (the caller's --fps, else 30).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import re
import warnings
from collections.abc import Iterator

import numpy as np

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.webm', '.mkv', '.m4v', '.mpg', '.mpeg', '.wmv')
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def kind(path: str | os.PathLike) -> str | None:
  """'video', 'image' or 'images' (a folder holding images and no .json), else None (a keypoint
  file or folder)."""
  path = pathlib.Path(path)
  if path.is_dir():
    names = [p.suffix.lower() for p in path.iterdir() if p.is_file()]
    return 'images' if any(n in IMAGE_EXTENSIONS for n in names) and '.json' not in names else None
  suffix = path.suffix.lower()
  return 'video' if suffix in VIDEO_EXTENSIONS else 'image' if suffix in IMAGE_EXTENSIONS else None


def _natural_key(path: pathlib.Path):
  return [int(t) if t.isdigit() else t.lower() for t in re.split(r'(\d+)', path.name)]


def image_files(folder: str | os.PathLike) -> list[pathlib.Path]:
  """The images of a folder in name order (numbers as numbers)."""
  files = [p for p in pathlib.Path(folder).iterdir()
           if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
  if not files:
    raise ValueError(f'{folder}: no images ({", ".join(IMAGE_EXTENSIONS)}) in the folder')
  return sorted(files, key=_natural_key)


def _read_image(path: pathlib.Path) -> np.ndarray:
  from PIL import Image
  try:
    with Image.open(path) as im:
      return np.asarray(im.convert('RGB'))
  except OSError as e:
    raise ValueError(f'{path}: cannot read the image: {e}') from e


@dataclasses.dataclass
class Frames:
  """The frames of one input, read once in order (iterate, or `get` with rising indices).

  Attributes:
    path: the input.
    kind: 'video', 'image' or 'images'.
    size: (width, height).
    fps: the container's frame rate, None when it has none.
    count: frames, or None where the container does not say (an estimate from its duration is
      `expected`).
  """

  path: str
  kind: str
  size: tuple[int, int]
  fps: float | None
  count: int | None
  expected: int | None
  _open: object = dataclasses.field(repr=False, default=None)
  _iter: Iterator | None = dataclasses.field(repr=False, default=None)
  _at: int = dataclasses.field(repr=False, default=-1)
  _frame: np.ndarray | None = dataclasses.field(repr=False, default=None)

  def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
    for i, frame in enumerate(self._open()):
      yield i, frame

  def get(self, index: int) -> np.ndarray | None:
    """Frame `index` (0-based), None past the end; indices must not decrease between calls."""
    if self._iter is None:
      self._iter = iter(self._open())
    while self._at < index:
      self._frame = next(self._iter, None)
      self._at += 1
      if self._frame is None:
        self._at = math.inf
    return self._frame if self._at == index else None

  def close(self) -> None:
    self._iter = None


def _video_meta(path: str) -> dict:
  import imageio.v2 as iio
  try:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      reader = iio.get_reader(path, format='FFMPEG')
  except Exception as e:  # noqa: BLE001 - imageio raises many kinds; one line naming the file
    raise ValueError(f'{path}: cannot decode the video: {e}') from e
  try:
    return reader.get_meta_data()
  finally:
    reader.close()


def _video_frames(path: str):
  def frames():
    import imageio.v2 as iio
    reader = iio.get_reader(path, format='FFMPEG')
    try:
      for frame in reader:
        yield np.asarray(frame)[..., :3]
    except (RuntimeError, IndexError):  # a truncated file ends the video
      return
    finally:
      reader.close()
  return frames


def open_frames(path: str | os.PathLike) -> Frames:
  """The frames of a video, an image or a folder of images (module docstring)."""
  path = str(path)
  what = kind(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path}: no such file or folder')
  if what == 'video':
    meta = _video_meta(path)
    fps = float(meta.get('fps') or 0) or None
    count = meta.get('nframes')
    count = int(count) if isinstance(count, (int, float)) and math.isfinite(count) else None
    duration = meta.get('duration')
    expected = count or (int(round(duration * fps)) if duration and fps else None)
    size = tuple(int(v) for v in meta['size'])
    return Frames(path, what, size, fps, count, expected, _video_frames(path))
  if what == 'image':
    image = _read_image(pathlib.Path(path))
    return Frames(path, what, image.shape[1::-1], None, 1, 1, lambda: iter([image]))
  if what == 'images':
    files = image_files(path)
    first = _read_image(files[0])

    def frames():
      for f in files:
        image = _read_image(f)
        if image.shape != first.shape:
          raise ValueError(f'{f}: {image.shape[1]}x{image.shape[0]}, but {files[0].name} is '
                           f'{first.shape[1]}x{first.shape[0]}: the images must have one size')
        yield image
    return Frames(path, what, first.shape[1::-1], None, len(files), len(files), frames)
  raise ValueError(f'{path}: not a video ({", ".join(VIDEO_EXTENSIONS)}), an image or a folder '
                   'of images')
