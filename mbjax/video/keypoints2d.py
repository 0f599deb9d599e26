"""The one interface between a 2D detector and the rest of mbjax: frames in, people out.

  detector = keypoints2d.make('blazepose', every=10)
  for index, rgb in frames:
    poses = detector(rgb)          # Poses: (P, J, 3) keypoints, (P, 4) boxes, (P,) scores

A detector is called on the frames of one video in order (it may follow people from frame to
frame) and says its joint order by `skeleton`, a `mbjax.data.skeletons.SKELETONS` key, whose map
turns its keypoints into H36M-17. Identities are not its job: the tracker links people across
frames (mbjax/data/tracker.py). A new detector is a class with these members and one line in
`DETECTORS`.

Detectors whose packages are optional (the `video` extra) import them when made; where they are
missing, `make` raises ModuleNotFoundError in one line that says what to install.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Protocol

import numpy as np

INSTALL = 'pip install -e ".[video]" && pip install --no-deps mediapipe==0.10.21'
# name -> 'module:factory' (imported only when the detector is made)
DETECTORS = {'blazepose': 'mbjax.video.people:BlazePosePeople'}


@dataclasses.dataclass
class Poses:
  """The people of one frame.

  Attributes:
    keypoints: (P, J, 3) float64 x, y in frame pixels and confidence in [0, 1] (0: undetected).
    boxes: (P, 4) float64 x0, y0, x1, y1 in pixels: where the detector found each person.
    scores: (P,) float64 person scores in [0, 1].
  """

  keypoints: np.ndarray
  boxes: np.ndarray
  scores: np.ndarray

  @classmethod
  def empty(cls, joints: int) -> 'Poses':
    return cls(np.zeros((0, joints, 3)), np.zeros((0, 4)), np.zeros(0))

  def __len__(self) -> int:
    return len(self.scores)


class Keypoints2D(Protocol):
  """A 2D keypoint detector of every person in a frame."""

  name: str  # the --detector word
  skeleton: str  # joint order of `Poses.keypoints`: a skeletons.SKELETONS key

  def __call__(self, frame: np.ndarray) -> Poses:
    """The people of an (H, W, 3) uint8 RGB frame, the next frame of the video."""
    ...


class ExtraMissing(ModuleNotFoundError, ValueError):
  """A detector's optional packages or model files are not installed. An ImportError, and a
  ValueError so that every command line reports it in one line (mbjax/cli)."""


def make(name: str, **options) -> Keypoints2D:
  """The detector called `name` (a `DETECTORS` key) built with `options`.

  Raises:
    ValueError: an unknown name.
    ExtraMissing: its optional packages or model files are missing (one line: what to install).
  """
  if name not in DETECTORS:
    raise ValueError(f'--detector={name!r}: expected one of {", ".join(sorted(DETECTORS))}')
  module, _, factory = DETECTORS[name].partition(':')
  reason = available(name)
  if reason:
    raise ExtraMissing(reason)
  return getattr(importlib.import_module(module), factory)(**options)


def available(name: str = 'blazepose') -> str | None:
  """None when the detector `name` can be made here, else one line: what is missing and the
  command that installs it."""
  module, _, _ = DETECTORS[name].partition(':')
  try:
    getattr(importlib.import_module(module), 'check_installed', lambda: None)()
  except ModuleNotFoundError as e:
    return (f'the {name} detector of a video INPUT needs the video extra ({e}); install it with: '
            f'{INSTALL}')
  return None
