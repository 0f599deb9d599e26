"""python -m mbjax.export --checkpoint=CKPT --format=stablehlo|onnx --out=FILE [options].

CKPT: an official .bin (its model from --config; default configs/pose3d_h36m.py:global_lite, or
an action config for an action .bin), an `mbjax.convert` directory or a trainer workdir (their own
model). Writes FILE and FILE.json (input/output names and shapes, joint order, normalisation,
sha256 of the checkpoint and of FILE), each under a temporary name renamed into place; existing
ones are replaced only with --overwrite. Pose models: --flip_test and --rootrel put the official
test-time options into the graph; mesh models: --flip_test (the official mesh flip test);
--dtype=bfloat16 computes in bfloat16 (StableHLO only).
"""

import json
import os

from absl import flags
from ml_collections import config_flags


FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines this program's flags: called when it runs, so that importing the module
  defines none."""
  config_flags.DEFINE_config_file(
      'config', None, 'config file (path:variant) of an official .bin; a workdir or convert '
      'checkpoint brings its own model', lock_config=True)
  flags.DEFINE_string('checkpoint', None, 'official .bin, convert dir or workdir')
  flags.DEFINE_enum('format', 'stablehlo', ['stablehlo', 'onnx'], 'what to write')
  flags.DEFINE_string('out', None, 'the file to write (and FILE.json beside it)')
  flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'], 'compute dtype')
  flags.DEFINE_bool('flip_test', False, 'average with the mirrored prediction (pose, mesh)')
  flags.DEFINE_bool('rootrel', False, 'set the root joint to 0 (pose)')
  flags.DEFINE_bool('overwrite', False, 'replace an existing FILE and FILE.json')
  flags.mark_flags_as_required(['checkpoint', 'out'])


def main(argv) -> None:
  del argv
  import mbjax.export
  config = FLAGS.config
  if config is not None:
    import ml_collections
    config = ml_collections.ConfigDict(config.to_dict())  # unlocked: the loader sets fields
  meta = mbjax.export.export(FLAGS.checkpoint, FLAGS.out, FLAGS.format, config,
                             overwrite=FLAGS.overwrite, dtype=FLAGS.dtype,
                             flip_test=FLAGS.flip_test, rootrel=FLAGS.rootrel)
  summary = {k: meta[k] for k in ('format', 'kind', 'inputs', 'outputs', 'max_frames')}
  written = ' and '.join(p for p in (FLAGS.out, f'{FLAGS.out}.json') if os.path.exists(p))
  print(f'wrote {written}: {json.dumps(summary)}')


if __name__ == '__main__':
  define_flags()
  from mbjax import cli
  cli.run(main, program='mbjax.export')
