"""python -m mbjax.infer.seams INPUT --checkpoint CKPT: jitter at window seams, official vs blended.

  python -m mbjax.infer.seams data_prep/assets/wild/boxing2_alphapose-results.json \
      --checkpoint runs/demo

Lifts every track twice, with the official non-overlapping windows (stride = clip_len) and with
overlapping blended windows (--stride, default clip_len // 3), and prints one JSON line per
track: mean acceleration magnitude (`windows.seam_jitter`, model units / frame^2) at the official
seams (frames k * clip_len) and elsewhere, for both, and for the blended run also at its own
window boundaries.
"""

import json

from absl import app, flags
from ml_collections import config_flags


FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines this program's flags: called when it runs, so that importing the module
  defines none."""
  config_flags.DEFINE_config_file('config', None, 'Config file (see mbjax.infer)',
                                  lock_config=True)
  flags.DEFINE_string('checkpoint', None, 'official .bin, convert dir or workdir')
  flags.DEFINE_integer('stride', None, 'stride of the blended run')
  flags.DEFINE_integer('clip_len', None, 'frames per window (default: model maxlen)')
  flags.mark_flags_as_required(['checkpoint'])


def compare(request, lifter) -> dict:
  """{track id: {official: jitter, blended: jitter, blended_own_seams: jitter}}."""
  import dataclasses
  from mbjax.data import keypoint_files, person_tracks
  from mbjax.infer import lift, pipeline, windows
  dets = keypoint_files.read(request.input, request.skeleton, request.size)
  tracks, _ = person_tracks.tracks(dets, min_frames=request.min_frames, focus=request.focus)
  inputs = {k: lift.normalise(t.keypoints)[0] for k, t in tracks.items()}
  blended_options = pipeline.window_options(request, lifter)
  official_options = dataclasses.replace(blended_options, stride=blended_options.clip_len)
  official = lift.lift(lifter.predict, inputs, official_options)
  blended = lift.lift(lifter.predict, inputs, blended_options)
  result = {}
  for k, x in inputs.items():
    clip_len, stride = blended_options.clip_len, blended_options.stride
    seams = [s for s, _ in windows.official_windows(len(x), clip_len)[1:]]
    bounds = windows.windows(len(x), clip_len, stride)
    own = sorted({s for s, _ in bounds[1:]} | {e for _, e in bounds[:-1]})
    result[k] = dict(frames=len(x), clip_len=clip_len, stride=stride,
                     official=windows.seam_jitter(official[k], seams),
                     blended=windows.seam_jitter(blended[k], seams),
                     blended_own_seams=windows.seam_jitter(blended[k], own))
  return result


def main(argv) -> int:
  if len(argv) != 2:
    raise app.UsageError('expected one INPUT (a keypoint file or folder)')
  from mbjax.logs import log_filter
  from mbjax.infer import model, pipeline
  log_filter.quiet_libraries()
  request = pipeline.Request(input=argv[1], clip_len=FLAGS.clip_len, stride=FLAGS.stride)
  config = FLAGS.config or model.load_config_file(model.DEFAULT_CONFIG)
  lifter = model.load(config, FLAGS.checkpoint)
  for k, r in compare(request, lifter).items():
    print(json.dumps(dict(track=k, **r)))
  return 0


if __name__ == '__main__':
  define_flags()
  from mbjax import cli
  cli.run(main, program='mbjax.infer.seams')
