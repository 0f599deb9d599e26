"""BVH (Biovision Hierarchy) reader and forward kinematics, in numpy.

A BVH file is a HIERARCHY of joints (ROOT / JOINT / End Site, each with an OFFSET from its parent
and CHANNELS in any order and count), then a MOTION block: `Frames: N`, `Frame Time: dt` and N lines
of channel values, one frame per line. Rotations are in degrees; a joint's local rotation is the
product of its rotation channels in file order (Zrotation Xrotation Yrotation => Rz @ Rx @ Ry).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re

import numpy as np

from mbjax.data import mocap_maps

CHANNEL_NAMES = ('Xposition', 'Yposition', 'Zposition', 'Xrotation', 'Yrotation', 'Zrotation')
_CHANNEL_BY_LOWER = {c.lower(): c for c in CHANNEL_NAMES}
_KEYWORDS = ('ROOT', 'JOINT', 'END', 'OFFSET', 'CHANNELS', '{', '}')
_FRAMES = re.compile(r'^\s*Frames:\s*(\S+)\s*$', re.IGNORECASE)
_FRAME_TIME = re.compile(r'^\s*Frame\s+Time:\s*(\S+)\s*$', re.IGNORECASE)


@dataclasses.dataclass
class BvhJoint:
  """One node of the hierarchy.

  Attributes:
    name: joint name; an End Site is named `<parent>_end`.
    parent: index of the parent joint, -1 for the root.
    offset: (3,) translation from the parent in the parent's frame, file units.
    channels: channel names in file order; () for an End Site.
    first_channel: column of the first channel in a frame line.
  """

  name: str
  parent: int
  offset: np.ndarray | None = None
  channels: tuple[str, ...] = ()
  first_channel: int = 0


@dataclasses.dataclass
class Bvh:
  """A parsed BVH file: joints in file (depth-first) order and motion (T, n_channels) in degrees
  and file units."""

  path: pathlib.Path
  joints: list[BvhJoint]
  frame_time: float
  motion: np.ndarray

  @property
  def fps(self) -> float:
    return fps_from_frame_time(self.frame_time)


def fps_from_frame_time(frame_time: float) -> float:
  """1 / frame_time, snapped to the nearest integer when within 0.5%.

  Exporters round the frame time (.0083333 s, or 0.008342 s in AnimatedDrawings' jumping.bvh, for
  120 fps); snapping keeps resampled lengths exact.
  """
  fps = 1.0 / frame_time
  nearest = round(fps)
  return float(nearest) if nearest > 0 and abs(fps - nearest) <= 5e-3 * fps else fps


def _tokens(lines: list[str]) -> list[tuple[str, int]]:
  """Whitespace tokens with 1-based line numbers; braces split off even when glued to a word."""
  out = []
  for lineno, line in enumerate(lines, start=1):
    for tok in line.replace('{', ' { ').replace('}', ' } ').split():
      out.append((tok, lineno))
  return out


def _channel_names(path: pathlib.Path, tokens: list[tuple[str, int]], at: int, count: int
                   ) -> list[str]:
  """The `count` channel names after the CHANNELS token `tokens[at]`. A count that differs from
  the names given is said as such (not as an unknown channel named after the next keyword)."""
  lineno = tokens[at][1]
  given = [tok for tok, line in tokens[at + 2:] if line == lineno]
  mismatch = ValueError(f'{path}: line {lineno}: CHANNELS {count} declared, {len(given)} given '
                        f'({" ".join(given) or "none"})')
  names = []
  for tok, line in tokens[at + 2:at + 2 + count]:
    if tok.lower() not in _CHANNEL_BY_LOWER:
      if line != lineno or tok.upper() in _KEYWORDS:
        raise mismatch
      raise ValueError(f'{path}: line {line}: unknown channel {tok!r}; expected one of '
                       f'{CHANNEL_NAMES}')
    names.append(_CHANNEL_BY_LOWER[tok.lower()])
  if len(names) < count:
    raise ValueError(f'{path}: line {lineno}: hierarchy ends early (truncated file?)')
  if len(given) > count and all(tok.lower() in _CHANNEL_BY_LOWER for tok in given):
    raise mismatch
  return names


def _parse_hierarchy(path: pathlib.Path, lines: list[str]) -> list[BvhJoint]:
  tokens = _tokens(lines)
  end_of_file = f'{path}: line {len(lines)}: hierarchy ends early (truncated file?)'

  def take(i: int) -> tuple[str, int]:
    if i >= len(tokens):
      raise ValueError(end_of_file)
    return tokens[i]

  def expect(i: int, word: str) -> int:
    tok, lineno = take(i)
    if tok.upper() != word.upper():
      raise ValueError(f'{path}: line {lineno}: expected {word!r}, found {tok!r}')
    return i + 1

  def number(i: int, kind=float):
    tok, lineno = take(i)
    try:
      value = kind(tok)
    except ValueError:
      raise ValueError(f'{path}: line {lineno}: expected a number, found {tok!r}') from None
    if kind is float and not np.isfinite(value):
      raise ValueError(f'{path}: line {lineno}: non-finite value {tok!r}')
    return value

  i = expect(0, 'HIERARCHY')
  joints: list[BvhJoint] = []
  stack: list[int] = []  # open joints, innermost last
  end_sites: set[int] = set()
  n_channels = 0
  while i < len(tokens):
    tok, lineno = tokens[i]
    word = tok.upper()
    if word in ('ROOT', 'JOINT'):
      if word == 'ROOT' and (stack or joints):
        raise ValueError(f'{path}: line {lineno}: only one ROOT is supported, found another')
      if word == 'JOINT' and (not stack or stack[-1] in end_sites):
        raise ValueError(f'{path}: line {lineno}: JOINT outside a ROOT/JOINT block')
      name, _ = take(i + 1)
      i = expect(i + 2, '{')
      joints.append(BvhJoint(name=name, parent=stack[-1] if stack else -1))
      stack.append(len(joints) - 1)
    elif word == 'END':
      if not stack or stack[-1] in end_sites:
        raise ValueError(f'{path}: line {lineno}: End Site outside a joint block')
      i = expect(expect(i + 1, 'Site'), '{')
      name = f'{joints[stack[-1]].name}_end'
      taken = {j.name for j in joints}
      suffix = 2
      while name in taken:
        name, suffix = f'{joints[stack[-1]].name}_end{suffix}', suffix + 1
      joints.append(BvhJoint(name=name, parent=stack[-1]))
      end_sites.add(len(joints) - 1)
      stack.append(len(joints) - 1)
    elif word == 'OFFSET':
      if not stack:
        raise ValueError(f'{path}: line {lineno}: OFFSET outside a joint block')
      joints[stack[-1]].offset = np.array([number(i + k) for k in (1, 2, 3)])
      i += 4
    elif word == 'CHANNELS':
      if not stack or stack[-1] in end_sites:
        raise ValueError(f'{path}: line {lineno}: CHANNELS outside a ROOT/JOINT block')
      count = number(i + 1, int)
      names = _channel_names(path, tokens, i, count)
      joint = joints[stack[-1]]
      joint.channels, joint.first_channel = tuple(names), n_channels
      n_channels += count
      i += 2 + count
    elif word == '}':
      if not stack:
        raise ValueError(f'{path}: line {lineno}: unmatched "}}"')
      stack.pop()
      i += 1
    else:
      raise ValueError(f'{path}: line {lineno}: unexpected {tok!r} in HIERARCHY')
  if stack or not joints:
    raise ValueError(end_of_file if stack else f'{path}: HIERARCHY has no ROOT')
  for joint in joints:
    if joint.offset is None:
      raise ValueError(f'{path}: joint {joint.name!r} has no OFFSET')
  return joints


def _parse_motion(path: pathlib.Path, lines: list[str], first_lineno: int,
                  n_channels: int) -> tuple[float, np.ndarray]:
  """Frame time and (T, n_channels) values from the lines after MOTION (line numbers 1-based,
  `first_lineno` is that of lines[0])."""
  body = [(first_lineno + k, line) for k, line in enumerate(lines) if line.strip()]
  if len(body) < 2:
    raise ValueError(f'{path}: MOTION block lacks "Frames:" and "Frame Time:" (truncated file?)')
  (frames_line, frames_text), (time_line, time_text) = body[0], body[1]
  match = _FRAMES.match(frames_text)
  if not match or not match.group(1).isdigit():
    raise ValueError(f'{path}: line {frames_line}: expected "Frames: <count>", found '
                     f'{frames_text.strip()!r}')
  n_frames = int(match.group(1))
  match = _FRAME_TIME.match(time_text)
  try:
    frame_time = float(match.group(1)) if match else float('nan')
  except ValueError:
    frame_time = float('nan')
  if not (np.isfinite(frame_time) and frame_time > 0):
    raise ValueError(f'{path}: line {time_line}: expected "Frame Time: <seconds > 0>", found '
                     f'{time_text.strip()!r}')
  frames = body[2:]
  if n_frames == 0:
    raise ValueError(f'{path}: line {frames_line}: the file declares 0 frames')
  if len(frames) < n_frames:
    last = frames[-1][0] if frames else time_line
    raise ValueError(f'{path}: truncated: "Frames: {n_frames}" but only {len(frames)} frame '
                     f'lines (the file ends after line {last})')
  if len(frames) > n_frames:
    raise ValueError(f'{path}: line {frames[n_frames][0]}: more frame lines than the '
                     f'{n_frames} declared by "Frames:"')
  motion = np.empty((n_frames, n_channels))
  for t, (lineno, line) in enumerate(frames):
    parts = line.split()
    if len(parts) != n_channels:
      raise ValueError(f'{path}: line {lineno} (frame {t}): expected {n_channels} channel values, '
                       f'found {len(parts)}')
    try:
      motion[t] = np.array(parts, dtype=np.float64)
    except ValueError:
      raise ValueError(f'{path}: line {lineno} (frame {t}): a value is not a number') from None
  bad = ~np.isfinite(motion).all(axis=1)
  if bad.any():
    t = int(np.argmax(bad))
    raise ValueError(f'{path}: line {frames[t][0]} (frame {t}): NaN or Inf channel value')
  return frame_time, motion


def parse_bvh(path: str | os.PathLike) -> Bvh:
  """Reads a BVH file.

  Raises:
    OSError / UnicodeDecodeError: the file cannot be read as text.
    ValueError: malformed hierarchy, a frame line with the wrong number of values, NaN/Inf, or
      fewer frame lines than declared; the message names the file and line.
  """
  path = pathlib.Path(path)
  lines = path.read_text(encoding='utf-8').splitlines()
  motion_at = next((k for k, line in enumerate(lines) if line.strip().upper() == 'MOTION'), None)
  if motion_at is None:
    raise ValueError(f'{path}: no MOTION line (truncated file or not a BVH)')
  joints = _parse_hierarchy(path, lines[:motion_at])
  n_channels = sum(len(j.channels) for j in joints)
  frame_time, motion = _parse_motion(path, lines[motion_at + 1:], motion_at + 2, n_channels)
  return Bvh(path=path, joints=joints, frame_time=frame_time, motion=motion)


def forward_kinematics(joints: list[BvhJoint], motion: np.ndarray | None = None) -> np.ndarray:
  """World joint positions.

  Args:
    joints: the hierarchy, parents before children.
    motion: (T, n_channels) channel values (degrees, file units), or None for the rest pose.

  Returns:
    (T, J, 3) positions in file units and axes ((1, J, 3) for the rest pose).
  """
  n_frames = 1 if motion is None else motion.shape[0]
  positions = np.zeros((n_frames, len(joints), 3))
  rotations = np.zeros((n_frames, len(joints), 3, 3))
  for j, joint in enumerate(joints):
    local_t = np.tile(joint.offset, (n_frames, 1))
    local_r = np.broadcast_to(np.eye(3), (n_frames, 3, 3))
    if motion is not None and joint.channels:
      values = motion[:, joint.first_channel:joint.first_channel + len(joint.channels)]
      rot = [k for k, c in enumerate(joint.channels) if c.endswith('rotation')]
      if rot:
        axes = ''.join(joint.channels[k][0] for k in rot)
        local_r = mocap_maps.intrinsic_euler(axes, np.deg2rad(values[:, rot]))
      for k, channel in enumerate(joint.channels):
        if channel.endswith('position'):
          # Position channels give the local translation, replacing OFFSET (files with 6 channels
          # on every joint repeat the offsets there; root offsets are usually zero).
          local_t[:, 'XYZ'.index(channel[0])] = values[:, k]
    if joint.parent < 0:
      positions[:, j], rotations[:, j] = local_t, local_r
    else:
      parent_r = rotations[:, joint.parent]
      positions[:, j] = positions[:, joint.parent] + np.einsum('tij,tj->ti', parent_r, local_t)
      rotations[:, j] = parent_r @ local_r
  return positions


def read_bvh(path: str | os.PathLike) -> mocap_maps.MocapMotion:
  """Parses a BVH file and runs forward kinematics: positions (T, J, 3) in file units."""
  bvh = parse_bvh(path)
  return mocap_maps.MocapMotion(
      path=bvh.path,
      names=[j.name for j in bvh.joints],
      positions=forward_kinematics(bvh.joints, bvh.motion),
      rest=forward_kinematics(bvh.joints)[0],
      fps=bvh.fps,
      metres_per_unit=None,  # BVH does not state its unit; mocap.py infers it from the skeleton
      parents=[j.parent for j in bvh.joints],
  )
