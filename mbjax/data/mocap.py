"""Real mocap (BVH, ASF/AMC) -> MotionBERT H36M-17 clips: a dataset source module.

Each recording is parsed (`mocap_bvh`, `mocap_asfamc`), its joints gathered into H36M-17
(`mocap_maps`: a built-in map, else one inferred from the rig's joint names by `mocap_rigs`, or a
user map; where none fits, a build writes a template map beside the file), turned Z-up and
metric, resampled to `fps` and cut into clips of `clip_len` frames every `stride` frames. Clips
are stored in MotionBERT's normalised camera-like units, the convention of the official AMASS
preprocessing: from Z-up metres p, p @ [[1,0,0],[0,0,1],[0,-1,0]]
(x stays, y' = -z points down like image y, z' = y is depth), times 0.298. A camera view is a turn
of the whole scene about the vertical axis through the origin by `yaw` degrees, before that change.

`mbjax.data.writer` wraps NAME / SPLITS / FEATURES / generate() into a TFDS builder; the real
recordings shipped with the checkout are in data_prep/assets/mocap.

  from mbjax.data import mocap
  positions, fps = mocap.load_h36m17('walk.bvh', fps=50)  # (T, 17, 3) metres, Z-up
  clip = mocap.to_motionbert(positions[:243], yaw_deg=90.0)
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tempfile
import types
from typing import Iterator, Sequence

from absl import logging
import numpy as np

from mbjax.data import mocap_asfamc
from mbjax.data import mocap_bvh
from mbjax.data import mocap_maps, mocap_rigs, source_files
from mbjax.data.report import BuildReport

NAME = 'mocap'
SPLITS = ('train', 'test')
# Checked before a build (mbjax.data.build_options); clip_len // 3 frames is the shortest file kept.
OPTION_RANGES = {'clip_len': (3, None), 'stride': (1, None), 'fps': (1, 1000), 'yaws': (-360, 360)}
FEATURES = {  # name -> (shape, numpy dtype name)
    'joints3d': ((243, 17, 3), 'float32'),  # normalised camera-like units (module docstring)
    'source': ((), 'str'),  # file stem, e.g. '131_01_walk'
    'yaw': ((), 'float32'),  # camera yaw of this view, degrees
    'start_frame': ((), 'int32'),  # first frame of the clip after resampling
}

MOTIONBERT_SCALE = 0.298  # official AMASS preprocessing: metres -> normalised units
# Row vectors times this: Z-up world (x, y, z) -> camera-like (x, -z, y).
WORLD_TO_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
MOTION_SUFFIXES = ('.bvh', '.amc')

JointMapError = mocap_maps.JointMapError
# A joint map for all files: {H36M index: name or [names]}, or the path of a JSON map file.
UserMap = mocap_maps.JointMap | str | os.PathLike | None
TEMPLATE_SUFFIX = '.joint_map.json'  # template maps: <recording stem>.joint_map.json beside it


def read_mocap(path: str | os.PathLike) -> mocap_maps.MocapMotion:
  """Parses a .bvh, or an .amc with its .asf (see `mocap_asfamc.find_asf`), in file units/axes."""
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix == '.bvh':
    return mocap_bvh.read_bvh(path)
  if suffix == '.amc':
    asf = mocap_asfamc.find_asf(path)
    if asf is None:
      raise FileNotFoundError(f'{path}: no skeleton beside it (expected '
                              f'{path.stem.split("_", 1)[0]}.asf or a single .asf in the folder)')
    return mocap_asfamc.read_asf_amc(asf, path)
  if suffix == '.asf':
    raise ValueError(f'{path}: an .asf holds a skeleton only; pass its .amc motion file')
  raise ValueError(f'{path}: expected a .bvh or .amc file')


@dataclasses.dataclass
class MappedRecording:
  """A recording as H36M-17 with the joint map it was read with (see `load_mapped`)."""

  positions: np.ndarray  # (T, 17, 3) float64, metres, Z-up
  fps: float
  map_name: str  # 'user', a mocap_maps.BUILTIN_MAPS key or 'inferred:<mocap_rigs.RIGS key>'
  joint_map: mocap_maps.JointMap


def load_h36m17(path: str | os.PathLike, *, joint_map: UserMap = None,
                up: str | None = None, fps: float | None = None,
                metres_per_unit: float | None = None) -> tuple[np.ndarray, float]:
  """A recording as H36M-17 joint positions in metres, Z-up.

  Args:
    path: a .bvh or .amc file.
    joint_map: {H36M index: joint name or list of names to average}, or the path of a JSON map
      (`mocap_rigs.read_user_map`); None picks a built-in map (`mocap_maps.BUILTIN_MAPS`) whose
      joints are all in the file, else one inferred from the joint names (`mocap_rigs`).
    up: 'y' or 'z', the file's up axis; None detects it from the rest pose.
    fps: resample to this rate (linear interpolation); None keeps the recorded rate.
    metres_per_unit: the file's length unit; None uses the ASF `:units`, or for BVH the known unit
      that gives adult limb lengths (else the body is scaled to typical adult limbs).

  Returns:
    (positions (T, 17, 3) float64, metres, Z-up; their frame rate).

  Raises:
    JointMapError: no map fits (the message lists the joints not placed and the file's joints).
    ValueError: malformed, truncated or non-finite input (the message names file and line).
  """
  loaded = load_mapped(path, joint_map=joint_map, up=up, fps=fps,
                       metres_per_unit=metres_per_unit)
  return loaded.positions, loaded.fps


def load_mapped(path: str | os.PathLike, *, joint_map: UserMap = None, up: str | None = None,
                fps: float | None = None,
                metres_per_unit: float | None = None) -> MappedRecording:
  """`load_h36m17` (same arguments), also returning which joint map was used."""
  motion = read_mocap(path)
  where = str(motion.path)
  if isinstance(joint_map, (str, os.PathLike)):
    joint_map = mocap_rigs.read_user_map(joint_map)
  map_name, chosen = mocap_rigs.select_joint_map(motion.names, motion.parents, where, joint_map)
  # The official AMASS preprocessing regresses H36M-17 from SMPL meshes; skeletons are mapped
  # joint by joint here (mocap_maps), with no mesh.
  rest = mocap_maps.to_h36m17(motion.names, motion.rest, chosen)
  joints = mocap_maps.to_h36m17(motion.names, motion.positions, chosen)
  up = up or mocap_maps.detect_up_axis(rest, where)
  if metres_per_unit is None:
    metres_per_unit = motion.metres_per_unit
    unit = 'stated by the file'
    if metres_per_unit is None:
      unit, metres_per_unit = mocap_maps.guess_metres_per_unit(rest)
    logging.info('%s: joint map %s, %s-up, unit %s (%.5f m)', where, map_name, up, unit,
                 metres_per_unit)
  positions = mocap_maps.to_z_up(joints, up) * metres_per_unit
  rate = motion.fps
  if fps is not None and fps != motion.fps:
    positions, rate = resample(positions, motion.fps, fps), float(fps)
  return MappedRecording(positions, rate, map_name, chosen)


def to_motionbert(positions_zup_m: np.ndarray, yaw_deg: float = 0.0) -> np.ndarray:
  """Z-up metres (..., 3) -> MotionBERT normalised camera-like units (..., 3).

  The scene is first turned by `yaw_deg` about the vertical (z) axis through the origin
  (counter-clockwise seen from above: +x goes to +y, i.e. to depth after the axis change).
  """
  yaw = np.deg2rad(yaw_deg)  # yaw views are an option of ours; yaw 0 is the plain official change
  turn = mocap_maps.axis_rotations('Z', np.asarray(yaw))
  return (np.asarray(positions_zup_m) @ turn.T @ WORLD_TO_CAMERA) * MOTIONBERT_SCALE


def resample_to_length(positions: np.ndarray, n_frames: int) -> np.ndarray:
  """Linear interpolation in time of (T, ...) onto n_frames evenly spread over the same span."""
  if len(positions) == 1:
    return np.repeat(positions, n_frames, axis=0)
  times = np.linspace(0.0, len(positions) - 1, n_frames)
  return _interpolate(positions, times)


def resample(positions: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
  """(T, ...) at src_fps -> (T', ...) at dst_fps by linear interpolation in time.

  Output frame k is at time k / dst_fps; T' covers the recording without running past its last
  frame: T' = floor((T - 1) * dst_fps / src_fps) + 1.
  """
  if not (src_fps > 0 and dst_fps > 0):
    raise ValueError(f'frame rates must be positive, got {src_fps} -> {dst_fps}')
  n_out = int(np.floor((len(positions) - 1) * dst_fps / src_fps + 1e-9)) + 1
  return _interpolate(positions, np.arange(n_out) * (src_fps / dst_fps))


def _interpolate(positions: np.ndarray, times: np.ndarray) -> np.ndarray:
  """Values of (T, ...) at fractional frame indices `times` in [0, T - 1]."""
  lower = np.clip(np.floor(times).astype(int), 0, len(positions) - 1)
  upper = np.minimum(lower + 1, len(positions) - 1)
  frac = (times - lower).reshape((-1,) + (1,) * (positions.ndim - 1))
  return positions[lower] * (1.0 - frac) + positions[upper] * frac


def clip_starts(n_frames: int, clip_len: int = 243, stride: int = 81) -> list[int]:
  """First frames of the full clips of `clip_len` frames every `stride` frames."""
  return list(range(0, n_frames - clip_len + 1, stride))


def motion_files(source: str | os.PathLike) -> list[pathlib.Path]:
  """The .bvh and .amc files under `source`, recursively, in a fixed (sorted) order; ValueError
  naming the folder if there are none."""
  return source_files.find_files(source, MOTION_SUFFIXES, 'motion capture recordings')


def generate(source: pathlib.Path, split: str, report: BuildReport, *,
             test_files: Sequence[str] = ('131_03_hop',), yaws: Sequence[float] = (0.0,),
             fps: float = 50.0, clip_len: int = 243, stride: int = 81,
             joint_map: mocap_maps.JointMap | str | None = None,
             up: str | None = None) -> Iterator[tuple[str, dict]]:
  """Yields (key, example) for each clip and camera yaw of the recordings of one split.

  Files whose stem is in `test_files` form 'test', the others 'train'. A recording shorter than
  `clip_len` frames after resampling (but at least clip_len // 3) is stretched to `clip_len`
  frames by linear interpolation, so it plays slower than recorded; shorter ones are skipped.

  Args:
    source: folder searched recursively for .bvh files and .amc files (with their .asf).
    split: 'train' or 'test'.
    report: counts each clip written and each file skipped, with the reason.
    test_files: file stems of the test split.
    yaws: camera yaws in degrees; every clip is written once per yaw.
    fps: frame rate of the clips.
    clip_len: frames per clip.
    stride: frames between clip starts.
    joint_map: for all files: {H36M index: name or [names]} or the path of a JSON map (e.g. a
      filled-in template); None picks a built-in map per file, else infers one from the joint
      names (reported); a file no map fits is skipped and a template map is written beside it.
    up: 'y' or 'z' for all files; None detects it per file.

  Yields:
    ('<path under source>:yaw<yaw>:<start>', {'joints3d': (clip_len, 17, 3) float32, 'source':
    file stem, 'yaw': float32, 'start_frame': int32}).

  Raises:
    ValueError: malformed, truncated or non-finite input (naming file and line), bad arguments.
  """
  if split not in SPLITS:
    raise ValueError(f'{NAME}: split must be one of {SPLITS}, got {split!r}')
  if not yaws:
    raise ValueError(f'{NAME}: yaws is empty; give at least one camera yaw, e.g. yaws=(0,)')
  if len(set(yaws)) != len(yaws):
    raise ValueError(f'{NAME}: yaws must be distinct, got {list(yaws)}')
  source = pathlib.Path(source)
  loader = _BuildLoader(split, report, joint_map, up, fps)
  for path in motion_files(source):
    if ('test' if path.stem in test_files else 'train') != split:
      continue
    relative = path.relative_to(source).as_posix()
    if path.suffix.lower() == '.amc' and mocap_asfamc.find_asf(path) is None:
      logging.warning('%s: skipped, no .asf skeleton beside it', path)
      report.skipped(split, 'no .asf skeleton for the .amc')
      continue
    positions = loader.load(path, relative)
    if positions is None:
      continue
    n_frames = len(positions)
    if n_frames < clip_len // 3:
      logging.warning('%s: skipped, %d frames at %g fps (< %d)', path, n_frames, fps,
                      clip_len // 3)
      report.skipped(split, 'too short after resampling')
      continue
    starts = clip_starts(n_frames, clip_len, stride)
    if not starts:
      logging.warning('%s: %d frames at %g fps, stretched to %d frames (plays %.2fx slower)',
                      path, n_frames, fps, clip_len, clip_len / n_frames)
      positions, starts = resample_to_length(positions, clip_len), [0]
    for yaw in yaws:
      for start in starts:
        clip = to_motionbert(positions[start:start + clip_len], yaw)
        report.written(split)
        yield f'{relative}:yaw{yaw:g}:{start}', {
            'joints3d': clip.astype(np.float32),
            'source': path.stem,
            'yaw': np.float32(yaw),
            'start_frame': np.int32(start),
        }


class _BuildLoader:
  """Loads the files of one split for `generate`, reporting the maps used and the files skipped.

  An inferred map, or a user map read from a file, goes into the report. Where no map fits, a
  template map is written (`write_template`), once per skeleton (the files of one rig share it).
  """

  def __init__(self, split: str, report: BuildReport, joint_map: UserMap, up: str | None,
               fps: float):
    self.split, self.report, self.up, self.fps = split, report, up, fps
    self.user_label = ''
    if isinstance(joint_map, (str, os.PathLike)):
      self.user_label = f'user map {joint_map}'
      joint_map = mocap_rigs.read_user_map(joint_map)  # once, failing before any file is read
    self.joint_map = joint_map
    self.templates: dict[tuple[str, ...], pathlib.Path] = {}  # joint names -> template

  def load(self, path: pathlib.Path, relative: str) -> np.ndarray | None:
    """H36M-17 positions (T, 17, 3) of one file, or None when it is skipped (reported)."""
    try:
      loaded = load_mapped(path, joint_map=self.joint_map, up=self.up, fps=self.fps)
    except (OSError, UnicodeDecodeError) as error:
      logging.warning('%s: skipped, unreadable: %s', path, error)
      self.report.skipped(self.split, 'unreadable')
      return None
    except JointMapError as error:
      self._unmapped(path, relative, error)
      return None
    if loaded.map_name.startswith('inferred:'):
      label = mocap_rigs.RIGS[loaded.map_name.split(':', 1)[1]].label
      self.report.joint_map(relative, f'{label}, inferred from joint names',
                            mocap_rigs.describe_map(loaded.joint_map))
    elif loaded.map_name == 'user' and self.user_label:
      self.report.joint_map(relative, self.user_label, mocap_rigs.describe_map(loaded.joint_map))
    return loaded.positions

  def _unmapped(self, path: pathlib.Path, relative: str, error: JointMapError) -> None:
    message = str(error)
    if error.unplaced:
      skeleton = tuple(error.names)
      if skeleton not in self.templates:
        self.templates[skeleton] = write_template(path, error)
      template = self.templates[skeleton]
      self.report.unmapped_file(relative, error.unplaced, str(template),
                                f'fill in the nulls, then rebuild with --opt joint_map={template}')
      message += f'; a template map is at {template}'
    logging.warning('skipped: %s', message)
    self.report.skipped(self.split, 'no joint map fits')


def write_template(path: pathlib.Path, error: JointMapError) -> pathlib.Path:
  """Writes the template map of a recording no map fits: `<stem>.joint_map.json` beside it, or
  in the temporary folder where that folder is read-only; an existing file is kept as is.

  Returns:
    The template's path.
  """
  for folder in (path.parent, pathlib.Path(tempfile.gettempdir()) / 'mbjax_joint_maps'):
    target = folder / f'{path.stem}{TEMPLATE_SUFFIX}'
    try:
      folder.mkdir(parents=True, exist_ok=True)
      mocap_rigs.write_template(target, str(path), error.names, error.partial)
      return target
    except OSError as write_error:
      logging.warning('%s: cannot write the template map: %s', target, write_error)
  raise OSError(f'{path}: cannot write a template joint map beside it or in '
                f'{tempfile.gettempdir()}')


# `writer.build` passes the build options to `module_for` to get FEATURES (clip_len).
OPTION_DEPENDENT_FEATURES = True


def module_for(clip_len: int = 243, **_) -> types.SimpleNamespace:
  """This source with FEATURES for clips of `clip_len` frames (other options go to generate)."""
  features = dict(FEATURES, joints3d=((int(clip_len), 17, 3), 'float32'))
  return types.SimpleNamespace(NAME=NAME, SPLITS=SPLITS, FEATURES=features, generate=generate)
