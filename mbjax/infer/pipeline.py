"""One keypoint file or video -> 3D of every track, written to a folder: `python -m mbjax.infer`.

read (data.keypoint_files; a video, image or image folder: video.source, which detects 2D
keypoints and tracks people) -> H36M-17 tracks (data.person_tracks) -> normalise + windows +
model (lift, windows) -> results.npz / results.json (outputs), keypoints2d.json (a video's 2D).
Outputs already in the folder are refused unless `Request.overwrite`; each is written under a
temporary name and renamed into place.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from mbjax.data import keypoint_files, person_tracks
from mbjax.data import tracker
from mbjax.files import atomic
from mbjax.infer import bvh, lift, outputs
from mbjax.infer import shared as shared_lib
from mbjax.infer import trajectory as trajectory_lib
from mbjax.infer import windows as windows_lib
from mbjax.infer.model import Lifter
from mbjax.video import media
from mbjax.video import source as video_source

# Default stride: a third of the window, so every frame is predicted by about three windows and
# none is ever predicted only near a window end (except the first and last frames).
STRIDE_FRACTION = 3
ACTION_TOP_K = 5
# --bvh: the model's units are those of the 2D crop, so the skeleton is scaled to a person's height.
BVH_HEIGHT_CM = 170.0


@dataclasses.dataclass(frozen=True)
class Request:
  """What to read and how to lift it (the CLI's flags)."""

  input: str
  skeleton: str | None = None  # --format
  size: tuple[int, int] | None = None  # --size WxH
  pixel: bool = False
  focus: int | None = None
  clip_len: int | None = None  # default: the model's maxlen
  stride: int | None = None  # default: clip_len // STRIDE_FRACTION
  min_frames: int | None = None  # default 1; a video's: half a second (video/source.py)
  batch_size: int = 32
  track_metric: str | None = None  # --track_metric (data/tracker.py): 'oks'; a video's: 'iou'
  track_threshold: float | None = None  # --track_threshold; default: the metric's
  max_gap: int = tracker.DEFAULT_MAX_GAP  # --max_gap
  bvh: bool = False  # DIR/track_<id>.bvh per track (mbjax/infer/bvh.py)
  fps: float | None = None  # frame rate: default the video's, else 30 (BVH Frame Time, render)
  render: bool = False  # --render: DIR/render.mp4 (or .gif), mbjax/infer/render.py
  video: str | None = None  # --video: the input video, under the render's 2D panel
  action: str | None = None  # --action: an action checkpoint; top-5 labels per track
  mesh: str | None = None  # --mesh: a mesh run; SMPL pose and shape per frame (infer/mesh.py)
  shared_backbone: bool = True  # --shared_backbone: one backbone pass for every head where the
                                # weights are equal (mbjax/infer/shared.py)
  trajectory: bool = False  # --trajectory: root trajectory in metres (mbjax/infer/trajectory.py)
  fov: float = trajectory_lib.DEFAULT_FOV_DEG  # --fov: assumed horizontal field of view
  person_height: float = trajectory_lib.DEFAULT_HEIGHT_M  # --person_height, metres
  keypoints: str | None = None  # --keypoints: a video INPUT's 2D from this file, not detected
  detection: video_source.Options = video_source.Options()  # --detector, --detect_every, ...
  overwrite: bool = False  # --overwrite: replace outputs already in the folder


def parse_size(text: str | None) -> tuple[int, int] | None:
  """'1920x1080' -> (1920, 1080); None stays None."""
  if not text:
    return None
  try:
    w, h = (int(v) for v in text.lower().split('x'))
  except ValueError:
    raise ValueError(f'--size={text!r}: expected WIDTHxHEIGHT in pixels, e.g. 1920x1080') from None
  if w < 1 or h < 1:
    raise ValueError(f'--size={text!r}: width and height must be positive')
  return w, h


def check_windows(request: Request) -> None:
  """ValueError naming --clip_len or --stride where one is below 1 (their upper bounds, the
  model's maxlen and clip_len, are checked once the model is loaded)."""
  for flag, value, most in (('clip_len', request.clip_len, "the model's maxlen"),
                            ('stride', request.stride, '--clip_len')):
    if value is not None and value < 1:
      raise ValueError(f'--{flag}={value}: must be between 1 and {most} (leave it out for the '
                       'default)')


def window_options(request: Request, lifter: Lifter) -> lift.Options:
  check_windows(request)
  clip_len = lifter.maxlen if request.clip_len is None else request.clip_len
  if not 1 <= clip_len <= lifter.maxlen:
    raise ValueError(f'--clip_len={clip_len}: must be between 1 and the model maxlen '
                     f'{lifter.maxlen}')
  stride = max(1, clip_len // STRIDE_FRACTION) if request.stride is None else request.stride
  return lift.Options(clip_len=clip_len, stride=stride, flip=lifter.flip, rootrel=lifter.rootrel,
                      gt_2d=lifter.gt_2d, no_conf=lifter.no_conf, batch_size=request.batch_size,
                      pad=lifter.masks_padding)


def _check_size(dets: keypoint_files.Detections, size) -> tuple[tuple[int, int] | None, list[str]]:
  if size and dets.size and tuple(size) != tuple(dets.size):
    return size, [f'--size {size[0]}x{size[1]} used; the file says {dets.size[0]}x{dets.size[1]}']
  return size or dets.size, []


@dataclasses.dataclass
class Prepared:
  """A request's input, read and checked before any model is loaded."""

  request: Request
  detections: keypoint_files.Detections
  tracks: dict[int, person_tracks.Track]
  skipped: list[dict]
  size: tuple[int, int] | None
  notes: list[str]
  fps: float = video_source.DEFAULT_FPS
  video: video_source.Read | None = None  # a video / image INPUT


def prepare(request: Request) -> Prepared:
  """Reads `request.input` into tracks; input mistakes surface here, before the model loads."""
  check_windows(request)
  if request.video and not request.render:
    raise ValueError('--video is drawn only with --render')
  if request.video and not os.path.isfile(request.video):
    raise FileNotFoundError(f'--video={request.video}: no such file')
  video = _read_video(request)
  dets = video.detections if video else keypoint_files.read(request.input, request.skeleton,
                                                              request.size)
  size, notes = _check_size(dets, request.size)
  min_frames = request.min_frames or (video.min_frames if video else 1)
  tracker_options = tracker.TrackerOptions(metric=request.track_metric or 'oks',
                                           threshold=request.track_threshold,
                                           max_gap=request.max_gap)
  tracks, skipped = person_tracks.tracks(dets, min_frames=min_frames, focus=request.focus,
                                         tracker_options=tracker_options, notes=notes)
  if not tracks:
    raise ValueError(f'{request.input}: no track to lift; skipped: {skipped}')
  for flag, path in (('action', request.action), ('mesh', request.mesh)):
    if path and not os.path.exists(path):
      raise FileNotFoundError(f'--{flag}={path}: no such {flag} checkpoint')
  if request.pixel and size is None:
    raise ValueError('--pixel needs the frame size: pass --size WxH (or a file that holds it)')
  if request.trajectory:
    trajectory_lib.check_options(request.fov, request.person_height)
    if size is None:
      raise ValueError('--trajectory needs the frame size (for the camera): pass --size WxH (or '
                       'a file that holds it)')
  fps = video.fps if video else request.fps or video_source.DEFAULT_FPS
  return Prepared(request, dets, tracks, skipped, size, notes, fps, video)


def _read_video(request: Request) -> video_source.Read | None:
  """A video / image / image-folder INPUT read (2D detected, or from --keypoints); else None."""
  if not media.kind(request.input):
    if request.keypoints:
      raise ValueError(f'--keypoints={request.keypoints}: goes with a video, image or image '
                       f'folder INPUT; {request.input} is a keypoint file itself')
    return None
  options = video_source.tracker_options(request.track_metric, request.track_threshold,
                                         request.max_gap)
  return video_source.read(request.input, request.detection, keypoints=request.keypoints,
                           skeleton=request.skeleton, fps=request.fps,
                           options_for_tracker=options)


def output_paths(p: Prepared, out_dir: str) -> list[str]:
  """Every file `run` will write into `out_dir` for `p`."""
  paths = [os.path.join(out_dir, name) for name in outputs.FILES]
  if p.video and p.video.detected:
    paths.append(os.path.join(out_dir, 'keypoints2d.json'))
  if p.request.bvh:
    paths += [os.path.join(out_dir, f'track_{k}.bvh') for k in sorted(p.tracks)]
  if p.request.render:
    from mbjax.infer import render  # Pillow / imageio only when asked for
    paths.append(render.video_path(os.path.join(out_dir, 'render.mp4')))
  return paths


def check_outputs(p: Prepared, out_dir: str) -> None:
  """FileExistsError naming the first output already in `out_dir`, unless --overwrite; before
  any work, so that nothing a user has is replaced unasked."""
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise NotADirectoryError(f'--out={out_dir}: is a file; expected a folder')
  for path in output_paths(p, out_dir):
    atomic.check_new(path, p.request.overwrite)


@dataclasses.dataclass
class Heads:
  """The --action and --mesh models of a run, and their backbone pass shared with the lifting
  model's where it can be (mbjax/infer/shared.py)."""

  classifier: object = None
  mesh: object = None
  shared: shared_lib.Shared | None = None
  report: dict | None = None  # the summary's `backbone`
  windows: dict = dataclasses.field(default_factory=dict)  # track id -> its windows' outputs

  def plan(self, lifter: Lifter, mode: str, enabled: bool) -> None:
    """Whether the heads share the lifter's backbone pass (`shared`, `report`)."""
    if self.classifier or self.mesh:
      self.shared, self.report = shared_lib.plan(lifter, mesh=self.mesh,
                                                 classifier=self.classifier, mode=mode,
                                                 enabled=enabled)


def load_heads(request: Request) -> Heads:
  """The --action / --mesh models of `request`."""
  heads = Heads()
  if request.action:
    from mbjax.infer import action
    heads.classifier = action.load(request.action)
  if request.mesh:
    from mbjax.infer import mesh as mesh_lib
    heads.mesh = mesh_lib.load(request.mesh)
  return heads


def _add_actions(p: Prepared, heads: Heads, per_track: dict) -> None:
  """Each track's top-5 actions (`actions`: [{label, probability}]) from the --action model:
  on the lifting windows' shared representation, else the track alone as the clip
  (`mbjax.data.action_clips.from_tracks`)."""
  from mbjax.data import action_clips
  from mbjax.infer import action
  for k, track in p.tracks.items():
    if heads.shared:
      log_p = shared_lib.action_log_probs(heads.windows[k])
    else:
      log_p = action.log_probs(heads.classifier, action_clips.from_tracks([track], size=p.size))
    best = action.top_k(heads.classifier, log_p, ACTION_TOP_K)
    per_track[k]['actions'] = [dict(label=n, probability=round(q, 6)) for n, q in best]


def _add_meshes(heads: Heads, per_track: dict) -> None:
  """Each track's SMPL pose and shape per frame (mbjax/infer/mesh.py, or shared.mesh_fields)."""
  from mbjax.infer import mesh as mesh_lib
  for k, fields in per_track.items():
    if heads.shared:
      fields.update(shared_lib.mesh_fields(heads.windows[k], fields['windows'],
                                           len(fields['input_2d'])))
    else:
      fields.update(mesh_lib.predict(heads.mesh, fields['input_2d']))


def run(prepared: Prepared | Request, lifter: Lifter, out_dir: str, heads: Heads | None = None
        ) -> dict:
  """Lifts every track of the input and writes `out_dir`/results.{npz,json}; `heads`: the
  action / mesh models (default: those of --action / --mesh).

  Returns:
    The run summary (as in results.json, without the per-track arrays) with `written` paths.
  """
  start = time.perf_counter()
  p = prepared if isinstance(prepared, Prepared) else prepare(prepared)
  check_outputs(p, out_dir)
  options = window_options(p.request, lifter)
  mode = 'pixel' if p.request.pixel else 'crop'
  normalised = {k: lift.normalise(t.keypoints, mode, p.size) for k, t in p.tracks.items()}
  heads = heads or load_heads(p.request)
  heads.plan(lifter, mode, p.request.shared_backbone)
  if heads.shared:  # the action and mesh heads pool over time: no padding frames
    options = dataclasses.replace(options, pad=False)
  lift_start = time.perf_counter()
  joints = lift.lift(heads.shared.predict if heads.shared else lifter.predict,
                     {k: x for k, (x, _) in normalised.items()}, options,
                     mirrored=heads.shared.mirrored if heads.shared else None,
                     extras=heads.windows)
  stages = dict(p.video.rates if p.video else {}, lift=round(
      sum(map(len, joints.values())) / max(time.perf_counter() - lift_start, 1e-9), 2))
  per_track = {}
  for k, track in p.tracks.items():
    x, norm = normalised[k]
    per_track[k] = dict(frames=track.frames, detected=track.detected,
                        keypoints_px=track.keypoints.astype(np.float32), input_2d=x,
                        joints3d=joints[k], joints3d_px=norm.to_pixels(joints[k]),
                        windows=windows_lib.windows(len(x), options.clip_len, options.stride),
                        frames_filled=int((~track.detected).sum()),
                        joints_filled=track.joints_filled, duplicates=track.duplicates,
                        normalisation=dataclasses.asdict(norm))
  summary = dict(input=os.path.abspath(p.request.input), format=p.detections.skeleton,
                 size=list(p.size) if p.size else None, normalisation=mode, model=lifter.source,
                 options=dataclasses.asdict(options), skipped=p.skipped,
                 notes=p.detections.notes + p.notes, fps=p.fps, stages=stages)
  if lifter.dtype:
    summary['dtype'] = lifter.dtype
  if heads.report:
    summary['backbone'] = heads.report
  if heads.classifier:
    _add_actions(p, heads, per_track)
  if heads.mesh:
    _add_meshes(heads, per_track)
  if p.request.trajectory:
    for fields in per_track.values():
      found = trajectory_lib.root_trajectory(fields['keypoints_px'], fields['joints3d_px'], p.size,
                                             fov_deg=p.request.fov,
                                             height_m=p.request.person_height)
      fields.update(root_m=found['root_m'], joints3d_m=found['joints3d_m'])
  if p.request.bvh:
    os.makedirs(out_dir, exist_ok=True)
    summary['bvh'] = {str(k): bvh.write(os.path.join(out_dir, f'track_{k}.bvh'), joints[k],
                                        fps=p.fps, height=BVH_HEIGHT_CM)
                      for k in sorted(p.tracks)}
  if p.request.render:
    from mbjax.infer import render  # Pillow / imageio only when asked for
    background = p.request.video or (p.request.input if p.video else None)
    summary['render'] = render.render_tracks(os.path.join(out_dir, 'render.mp4'), per_track,
                                             p.size, background, fps=p.fps)
    stages['render'] = summary['render']['frames_per_s']
  if p.video and p.video.detected:
    from mbjax.video import detect
    summary['keypoints_2d'] = detect.write_coco(p.detections,
                                                os.path.join(out_dir, 'keypoints2d.json'))
  written = outputs.write(out_dir, dict(summary, seconds=round(time.perf_counter() - start, 2)),
                          per_track)
  if p.request.bvh:
    written = dict(written, bvh=list(summary['bvh'].values()))
  if 'keypoints_2d' in summary:
    written = dict(written, keypoints_2d=summary['keypoints_2d'])
  return dict(summary, tracks=sorted(p.tracks), written=written)
