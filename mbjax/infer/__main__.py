"""python -m mbjax.infer INPUT --checkpoint CKPT --out DIR: 3D of every person in a keypoint file.

  python -m mbjax.infer data_prep/assets/wild/boxing2_alphapose-results.json \
      --checkpoint runs/demo --out out/boxing2
  python -m mbjax.infer poses.npy --format coco --checkpoint best_epoch.bin --out out/poses
  python -m mbjax.infer openpose_json/ --checkpoint ckpt --out out --pixel --size 1920x1080
  python -m mbjax.infer alphapose-results.json --checkpoint best_epoch.bin --out out \
      --focus 1 --stride 243            # the official infer_wild.py windows

INPUT: AlphaPose / COCO / MMPose JSON, an OpenPose or MMPose per-frame JSON folder, MediaPipe JSON,
or a .npy / .npz array (mbjax/data/keypoint_files.py); or a video, an image or a folder of images
(2D of every person from --detector, the `video` extra, or from --keypoints FILE; mbjax/video/;
also writes DIR/keypoints2d.json, COCO results with track ids). CKPT: an official .bin (model of
--config, default configs/pose3d_h36m.py:global_lite, the official in-the-wild model), an
mbjax.convert directory, or a trainer / demo workdir (its own model; mbjax/infer/model.py). Writes
DIR/results.npz and DIR/results.json (mbjax/infer/outputs.py); with --bvh also
DIR/track_<id>.bvh (mbjax/infer/bvh.py); with --render also DIR/render.mp4 (mbjax/infer/render.py),
over the frames of --video if given. Outputs already in DIR are replaced only with --overwrite.
"""

from absl import app, flags
from ml_collections import config_flags

from mbjax.data import keypoint_files


FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines this program's flags: called when it runs, so that importing the module
  defines none."""
  config_flags.DEFINE_config_file(
      'config', None, 'Config file (path:variant) for the model and test-time options; default '
      'configs/pose3d_h36m.py:global_lite. A workdir or convert checkpoint brings its own model.',
      lock_config=True)
  flags.DEFINE_string('checkpoint', None, 'official .bin, convert dir or workdir')
  flags.DEFINE_string('out', None, 'output folder: results.npz, results.json')
  flags.DEFINE_enum('format', None, list(keypoint_files.ARRAY_FORMATS),
                    'skeleton of the keypoints (default: from the joint count; needed '
                    'for 17-joint arrays)')
  flags.DEFINE_string('size', None, 'frame size WIDTHxHEIGHT (for --pixel and MediaPipe)')
  flags.DEFINE_bool('pixel', False, 'official --pixel normalisation (needs the frame size)')
  flags.DEFINE_integer('focus', None, 'lift only this track id (official --focus)')
  flags.DEFINE_integer('clip_len', None, 'frames per window (default: model maxlen)')
  flags.DEFINE_integer('stride', None, 'frames between window starts (default: clip_len '
                       '// 3, blended; = clip_len: official non-overlapping windows)')
  flags.DEFINE_integer('min_frames', None, 'skip (and report) shorter tracks (default 1; '
                       'a video: half a second)')
  flags.DEFINE_integer('batch_size', 32, 'windows per model call')
  flags.DEFINE_enum('track_metric', None, ['oks', 'iou'], 'similarity that links '
                    'detections of a file without track ids into tracks (default oks; a video '
                    'INPUT\'s detections: iou, threshold 0.1)')
  flags.DEFINE_float('track_threshold', None, 'least similarity of a match '
                     '(default 0.3); below it a detection starts a new track')
  flags.DEFINE_integer('max_gap', 10, 'frames a track may go undetected; longer: a new '
                       'track id')
  flags.DEFINE_bool('bvh', False,
                    'also write DIR/track_<id>.bvh (H36M-17 skeleton, cm, Y up)')
  flags.DEFINE_float('fps', None, 'frame rate of the input (BVH Frame Time, --render speed); '
                     'default the video\'s, else 30')
  flags.DEFINE_string('keypoints', None, 'with a video / image INPUT: its 2D keypoints from '
                      'this file (e.g. a keypoints2d.json written before) instead of detecting')
  flags.DEFINE_enum('detector', 'blazepose', ['blazepose'], 'the 2D detector of a video INPUT '
                    '(mbjax/video/keypoints2d.py)')
  flags.DEFINE_integer('detect_every', None, 'a video INPUT: frames between person detections '
                       '(people found are followed in between); default: a second\'s frames')
  flags.DEFINE_integer('detect_tile', 256, 'a video INPUT: the detector also runs on tiles of '
                       'this side in pixels, for small people (0: whole frame only)')
  flags.DEFINE_bool('render', False, 'also write DIR/render.mp4 (GIF without '
                    'imageio-ffmpeg): 2D input beside the 3D from two views')
  flags.DEFINE_string('video', None, 'with --render: the input video, frame i under the '
                      '2D of keypoint frame i')
  flags.DEFINE_string('action', None, 'an action checkpoint (workdir of an action run): '
                      'the top-5 labels of each track in results.json')
  flags.DEFINE_string('mesh', None, 'a mesh checkpoint (workdir of a mesh run): SMPL pose '
                      'and shape of each track per frame in results')
  flags.DEFINE_bool('shared_backbone', True, 'with --action / --mesh: one backbone pass on the '
                    'lifting windows for every head whose backbone weights equal the lifting '
                    "model's (mbjax/infer/shared.py); false: each model on its own windows")
  flags.DEFINE_bool('trajectory', False, 'also the root trajectory and pose in metres '
                     '(camera frame; needs the frame size; mbjax/infer/trajectory.py)')
  flags.DEFINE_float('fov', 60.0, '--trajectory: assumed horizontal field of view, degrees')
  flags.DEFINE_float('person_height', 1.7,
                     '--trajectory: assumed standing height, metres')
  flags.DEFINE_bool('overwrite', False, 'replace outputs already in --out (results.npz, '
                    'results.json, track_<id>.bvh, render.mp4)')
  flags.mark_flags_as_required(['checkpoint', 'out'])


def compute_dtype(config, *, heads: bool):
  """(config, why): --config's model dtype where --config.model.dtype or the config file sets
  one other than float32, else this CPU's choice (`mbjax.cli.bf16`: bfloat16 only where it has
  native bf16 dots and ran >= 1.6x fp32 in its trial); --action / --mesh runs stay float32 (their
  heads' accuracy was measured in float32)."""
  import ml_collections
  from mbjax.cli import bf16
  given = FLAGS['config'].value is not None and 'model.dtype' in (
      config_flags.get_override_values(FLAGS['config']))
  if given:
    return config, 'set by --config.model.dtype'
  if str(config.model.dtype) != 'float32':
    return config, 'set by the config file'
  dtype, why = bf16.infer_dtype()
  if dtype == 'float32':
    return config, why
  if heads:
    return config, f'{why}, but --action / --mesh heads run in float32'
  config = ml_collections.ConfigDict(config.to_dict())
  config.model.dtype = dtype
  return config, why


def main(argv) -> int:
  if len(argv) != 2:
    raise app.UsageError('expected one INPUT (a keypoint file or folder)' if len(argv) < 2 else
                         f'expected one INPUT, got {argv[1:]}')
  from mbjax.logs import log_filter
  from mbjax.infer import model, pipeline
  from mbjax.video import source as video_source
  log_filter.quiet_libraries()
  request = pipeline.Request(
      input=argv[1], skeleton=FLAGS.format, size=pipeline.parse_size(FLAGS.size),
      pixel=FLAGS.pixel, focus=FLAGS.focus, clip_len=FLAGS.clip_len, stride=FLAGS.stride,
      min_frames=FLAGS.min_frames, batch_size=FLAGS.batch_size,
      track_metric=FLAGS.track_metric, track_threshold=FLAGS.track_threshold,
      max_gap=FLAGS.max_gap, bvh=FLAGS.bvh, fps=FLAGS.fps, render=FLAGS.render,
      video=FLAGS.video, action=FLAGS.action, mesh=FLAGS.mesh,
      shared_backbone=FLAGS.shared_backbone, trajectory=FLAGS.trajectory,
      fov=FLAGS.fov, person_height=FLAGS.person_height, keypoints=FLAGS.keypoints,
      detection=video_source.Options(detector=FLAGS.detector, every=FLAGS.detect_every,
                                     tile=FLAGS.detect_tile),
      overwrite=FLAGS.overwrite)
  prepared = pipeline.prepare(request)  # input mistakes before the (slower) model load
  pipeline.check_outputs(prepared, FLAGS.out)
  config = FLAGS.config or model.load_config_file(model.DEFAULT_CONFIG)
  config, why = compute_dtype(config, heads=bool(FLAGS.action or FLAGS.mesh))
  lifter = model.load(config, FLAGS.checkpoint)
  lifter.dtype = {'compute': str(config.model.dtype), 'why': why}
  print(f'dtype {config.model.dtype}: {why}')
  summary = pipeline.run(prepared, lifter, FLAGS.out)
  skipped = f', skipped {len(summary["skipped"])}' if summary['skipped'] else ''
  print(f'lifted tracks {summary["tracks"]} ({summary["format"]}, {summary["normalisation"]}, '
        f'clip_len {summary["options"]["clip_len"]} stride {summary["options"]["stride"]}'
        f'{skipped}); wrote {summary["written"]["npz"]} and {summary["written"]["json"]}')
  if summary['written'].get('bvh'):
    print(f'wrote BVH {" ".join(summary["written"]["bvh"])}')
  if summary['written'].get('keypoints_2d'):
    print(f'wrote 2D keypoints {summary["written"]["keypoints_2d"]}')
  if summary.get('backbone'):
    b = summary['backbone']
    print(f'backbone: one pass for {", ".join(b["heads"])}' if b['shared'] else
          f'backbone: a pass per model ({b["why"]})')
  if summary.get('stages'):
    print('frames/s: ' + ', '.join(f'{k} {v:g}' for k, v in summary['stages'].items()))
  if 'render' in summary:
    print(f'rendered {summary["render"]["path"]} ({summary["render"]["frames"]} frames, '
          f'{summary["render"]["frames_per_s"]} frames/s)')
  return 0


if __name__ == '__main__':
  define_flags()
  from mbjax import cli
  cli.run(main, program='mbjax.infer')
