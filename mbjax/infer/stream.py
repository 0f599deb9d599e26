"""Live lifting: one frame of 2D keypoints in, the 3D pose of the frame `latency` frames ago out.

  lifter = StreamLifter('ckpt.bin', latency=10)          # or StreamLifter.from_lifter(loaded)
  for kp in camera:                                       # (17, 3) H36M-17 [x, y, confidence] px
    pose = lifter.push(kp)                                # (17, 3) of frame t - 10, or None

Each `push` runs ONE jitted call on a fixed-shape (2, clip_len, 17, C) batch (the window ending
at the newest frame t and, with flip test, its mirror), so the step compiles once for the whole
stream. The start of the stream is padded by repeating the first frame, so the window never
changes shape. The pose of frame t - k is row clip_len - 1 - k of the window's prediction: a
larger latency k gives the model k frames of future context, at k frames of delay.

Normalisation is causal (no frame after t is used):
- 'pixel' (when `size` = (w, h) is given): as `lift.normalise(..., 'pixel')`, frame by frame, so
  a streamed frame is exactly the offline prediction of the same window.
- 'crop' (otherwise): `transforms.crop_scale_2d` with the box of the frames in the current
  window. Offline inference (`lift.normalise` 'crop') uses the box of the whole track, which
  needs the future; here the box follows the person, so model units change scale from window to
  window. `normalisation` holds the box of the last window (`.to_pixels` maps a pose to pixels).

Test-time options are the lifter's, as `lift.lift` / `h36m.predict_clips` apply them: flip test
(average with the mirrored prediction of the mirrored input), rootrel (root joint set to 0),
gt_2d (x, y replaced by the input's), no_conf (confidence dropped from the input). Models with
rootrel=False predict depth relative to the root depth of the window's first frame (as trained);
that reference moves with the window, and no depth alignment across windows is done.

Input: H36M-17 (17, 3) pixel keypoints [x, y, confidence]; other formats through `h36m_frame`
(e.g. COCO-17 from a detector). A frame of another shape, or with NaN / inf, raises ValueError.
"""

from __future__ import annotations

import numpy as np

from mbjax.data import skeletons, transforms
from mbjax.infer import lift as lift_lib
from mbjax.infer import model as model_lib

# Default window: the model's maxlen, capped here. Every push runs a full clip_len-frame forward
# (twice with flip test), so its cost grows with clip_len: 81 frames (the temporal embedding
# sliced, as for any clip shorter than maxlen) cost about a third of 243 and still give the
# model 2.7 s of context at 30 frames/s. Pass clip_len=243 for the full window.
MAX_DEFAULT_CLIP_LEN = 81


def h36m_frame(keypoints, skeleton: str = 'coco') -> np.ndarray:
  """One frame of `skeleton` keypoints (J, 3) [x, y, confidence] -> H36M-17 (17, 3) float64.

  Any format of `mbjax.data.skeletons.SKELETONS` ('coco', 'halpe', 'body25', 'mediapipe',
  'h36m'); derived joints (pelvis, neck, ...) are means of their source joints.
  """
  kp = np.asarray(keypoints, np.float64)
  if kp.ndim != 2 or kp.shape[-1] != 3:
    raise ValueError(f'h36m_frame: expected one frame (J, 3) [x, y, confidence], got {kp.shape}')
  return skeletons.to_h36m(kp, skeleton)


class StreamLifter:
  """Frame-by-frame 3D lifting with a fixed latency (module docstring).

  Attributes:
    latency: k, frames between the newest pushed frame and the returned pose.
    clip_len: frames in the model's window.
    size: (w, h) for pixel normalisation, or None for the causal crop box.
    lifter: the loaded `mbjax.infer.model.Lifter`.
    normalisation: `lift.Normalisation` of the last window (None before the first push).
    traces: how many times the jitted step was traced (= compiled); 1 after any push.
  """

  def __init__(self, checkpoint: str, latency: int = 0, *, config=None, size=None,
               clip_len: int | None = None):
    """Loads `checkpoint` as `python -m mbjax.infer` does.

    Args:
      checkpoint: an official `.bin`, an `mbjax.convert` directory or a trainer workdir.
      latency: k, 0 <= k < clip_len.
      config: the `--config` of the infer CLI; default `model.DEFAULT_CONFIG`.
      size: (w, h) frame size in pixels: pixel normalisation; None: causal crop box.
      clip_len: window frames; default min(model maxlen, MAX_DEFAULT_CLIP_LEN).
    """
    if config is None:
      config = model_lib.load_config_file(model_lib.DEFAULT_CONFIG)
    self._setup(model_lib.load(config, checkpoint), latency, size, clip_len)

  @classmethod
  def from_lifter(cls, lifter: model_lib.Lifter, latency: int = 0, *, size=None,
                  clip_len: int | None = None) -> 'StreamLifter':
    """A StreamLifter around an already loaded (or randomly initialised) `Lifter`."""
    self = cls.__new__(cls)
    self._setup(lifter, latency, size, clip_len)
    return self

  def _setup(self, lifter, latency, size, clip_len) -> None:
    clip_len = clip_len or min(lifter.maxlen, MAX_DEFAULT_CLIP_LEN)
    if not 1 <= clip_len <= lifter.maxlen:
      raise ValueError(f'clip_len={clip_len}: must be between 1 and the model maxlen '
                       f'{lifter.maxlen}')
    if not 0 <= latency < clip_len:
      raise ValueError(f'latency={latency}: must be between 0 and clip_len - 1 = {clip_len - 1}')
    if size is not None:
      w, h = size
      if w <= 0 or h <= 0:
        raise ValueError(f'size={size}: width and height must be positive')
    self.lifter, self.latency, self.clip_len = lifter, int(latency), int(clip_len)
    self.size = None if size is None else (float(size[0]), float(size[1]))
    self.traces = 0
    self._step = self._make_step()
    self.reset()

  def _make_step(self):
    import jax
    import jax.numpy as jnp
    lifter, row = self.lifter, self.clip_len - 1 - self.latency

    def step(window):  # (clip_len, 17, 3) normalised -> (17, 3) pose of frame t - k
      self.traces += 1  # runs only while tracing, i.e. once per compile
      x = window[None, ..., :2] if lifter.no_conf else window[None]
      if lifter.flip:
        pred = lifter.predict(jnp.concatenate([x, transforms.flip_pose(x)]))
        pose = (pred[0, row] + transforms.flip_pose(pred[1, row])) / 2
      else:
        pose = lifter.predict(x)[0, row]
      if lifter.rootrel:
        pose = pose.at[0].set(0.0)
      if lifter.gt_2d:
        pose = pose.at[:, :2].set(x[0, row, :, :2])
      return pose.astype(jnp.float32)

    return jax.jit(step)

  def reset(self) -> None:
    """Forgets the stream: the next push is frame 0 of a new one (no recompile)."""
    self._buffer = np.zeros((self.clip_len, skeletons.NUM_JOINTS, 3), np.float64)
    self._next = 0  # ring position of the next frame
    self.frames_seen = 0
    self.normalisation = None

  def window(self) -> np.ndarray:
    """(clip_len, 17, 3) pixel keypoints of the current window, oldest first."""
    return np.concatenate([self._buffer[self._next:], self._buffer[:self._next]])

  def push(self, keypoints) -> np.ndarray | None:
    """Adds frame t = `frames_seen` and returns the (17, 3) float32 pose of frame t - latency.

    Args:
      keypoints: (17, 3) H36M-17 [x, y, confidence] in pixels (`h36m_frame` converts others).

    Returns:
      The pose in model units (`normalisation.to_pixels` maps it to pixels), or None while
      frame t - latency does not exist yet (the first `latency` pushes).
    """
    kp = self._check(keypoints)
    if self.frames_seen == 0:
      self._buffer[:] = kp  # the stream's start: the first frame repeated
    self._buffer[self._next] = kp
    self._next = (self._next + 1) % self.clip_len
    self.frames_seen += 1
    x, self.normalisation = self._normalise(self.window())
    pose = self._step(x)
    return np.asarray(pose) if self.frames_seen > self.latency else None

  def _check(self, keypoints) -> np.ndarray:
    kp = np.asarray(keypoints, np.float64)
    if kp.shape != (skeletons.NUM_JOINTS, 3):
      raise ValueError(f'push: expected one H36M-17 frame of shape (17, 3) [x, y, confidence] '
                       f'in pixels, got {kp.shape} (convert other formats with h36m_frame)')
    if not np.all(np.isfinite(kp)):
      raise ValueError('push: keypoints hold NaN or inf; give missing joints confidence 0 '
                       'and any finite position instead')
    return kp

  def _normalise(self, window: np.ndarray):
    if self.size is not None:
      return lift_lib.normalise(window, 'pixel', self.size)
    if (window[..., 2] != 0).sum() < 4 or lift_lib.crop_box(window).scale == 0:
      # crop_scale_2d gives zeros; the last box stays for to_pixels
      return np.zeros(window.shape, np.float32), self.normalisation
    norm = lift_lib.crop_box(window)
    return transforms.crop_scale_2d(window).astype(np.float32), norm
