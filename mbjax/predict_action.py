"""Predicts the action of one clip with a trained action model: the top-5 labels and probabilities.

  python -m mbjax.predict_action --checkpoint=runs/my_actions --input=clip.json
  python -m mbjax.predict_action clip.json --checkpoint=runs/my_actions   # the same
  python -m mbjax.predict_action --checkpoint=runs/my_actions --input=clip.npy --format=coco \\
      --embed=clip_embedding.npy
  python -m mbjax.predict_action --config=configs/action_ntu60.py:xsub \\
      --checkpoint=checkpoint/action/FT_MB_release_MB_ft_NTU60_xsub/best_epoch.bin --input=clip.json

--checkpoint: a trainer workdir of an action run (its config.json gives the model and label
names; `RUN/best` and `RUN/snapshots/N` too), or an official .bin / convert directory with the
--config it was trained with. --input: any keypoint file `python -m mbjax.infer` reads (AlphaPose,
COCO / MMPose JSON, OpenPose folder, MediaPipe, .npy / .npz), read as the `actions` dataset builder
reads a clip (mbjax/data/action_clips.py). Prints one line per label, most probable first, and
with --json writes them as JSON; --embed writes the clip's L2-normalised embedding (.npy format,
to exactly the name given) for retrieval. An existing --json or --embed file is replaced only
with --overwrite.
"""

from __future__ import annotations

import json

from absl import app, flags
from ml_collections import config_flags


FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines this program's flags: called when it runs, so that importing the module
  defines none."""
  config_flags.DEFINE_config_file(
      'config', None, 'the action config of an official .bin or convert dir (a workdir has its own)',
      lock_config=False)
  flags.DEFINE_string('checkpoint', None,
                      'action workdir, official .bin or convert dir')
  flags.DEFINE_string('input', None, 'the clip: a keypoint file or per-frame JSON folder')
  flags.DEFINE_string('format', None, 'skeleton of .npy / .npz input (coco, halpe, h36m, '
                      'body25, mediapipe)')
  flags.DEFINE_string('size', None, 'frame size WIDTHxHEIGHT when the file lacks it')
  flags.DEFINE_integer('top_k', 5, 'labels to print')
  flags.DEFINE_integer('num_clips', 1, 'test clips averaged (pyskl multi-clip)')
  flags.DEFINE_string('embed', None, 'write the clip embedding (.npy format) to this file')
  flags.DEFINE_string('json', None, 'write the top-k predictions to this JSON file')
  flags.DEFINE_bool('overwrite', False, 'replace an existing --embed or --json file')


PROGRAM = 'mbjax.predict_action'


def main(argv) -> int:
  if len(argv) == 2 and not FLAGS.input:  # the clip as INPUT, as python -m mbjax.infer takes it
    FLAGS.input, argv = argv[1], argv[:1]
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}: the clip is --input')
  missing = [f'--{name}' for name in ('checkpoint', 'input') if not FLAGS[name].value]
  if missing:
    raise app.UsageError(f'{" and ".join(missing)} required')
  if FLAGS.top_k < 1 or FLAGS.num_clips < 1:
    raise app.UsageError('--top_k and --num_clips must be at least 1')
  from mbjax.files import atomic
  for flag in ('embed', 'json'):
    if FLAGS[flag].value:
      atomic.check_new(FLAGS[flag].value, FLAGS.overwrite)
  from mbjax.logs import log_filter
  from mbjax.data import action_clips
  from mbjax.infer import action, pipeline
  log_filter.quiet_libraries()
  keypoint, notes = action_clips.read_clip(FLAGS.input, skeleton=FLAGS.format,
                                           size=pipeline.parse_size(FLAGS.size))
  classifier = action.load(FLAGS.checkpoint, FLAGS.config)
  for note in notes:
    print(f'note: {note}')
  if FLAGS.embed:
    _write_embedding(FLAGS.embed, action.embedding(classifier, keypoint))
    print(f'wrote the {classifier.version} embedding of {FLAGS.input} to {FLAGS.embed}')
  if classifier.version == 'embed':
    return 0
  log_p = action.log_probs(classifier, keypoint, num_clips=FLAGS.num_clips)
  best = action.top_k(classifier, log_p, FLAGS.top_k)
  print(f'{FLAGS.input}: {keypoint.shape[1]} frames, top {len(best)} of '
        f'{len(classifier.label_names)} labels')
  for name, p in best:
    print(f'{100 * p:6.2f}%  {name}')
  if FLAGS.json:
    atomic.write_text(FLAGS.json, json.dumps([dict(label=n, probability=p) for n, p in best],
                                             indent=1), overwrite=FLAGS.overwrite)
    print(f'wrote the top {len(best)} labels to {FLAGS.json}')
  return 0


def _write_embedding(path: str, embedding) -> None:
  """`embedding` in .npy format into exactly `path` (np.save of a name would add .npy to it)."""
  import numpy as np
  from mbjax.files import atomic
  with atomic.replacing(path, overwrite=FLAGS.overwrite) as tmp, open(tmp, 'wb') as f:
    np.save(f, np.asarray(embedding))


if __name__ == '__main__':
  define_flags()
  from mbjax import cli
  cli.run(main, program=PROGRAM)
