"""python -m mbjax.evaluate --checkpoint=PATH [--config=configs/pose3d_h36m.py:ft] [--out=FILE]

  python -m mbjax.evaluate --checkpoint=runs/demo            # a workdir brings its config
  python -m mbjax.evaluate --config=configs/pose3d_h36m.py:ft \
      --checkpoint=checkpoint/pose3d/FT_MB_release_MB_ft_h36m/best_epoch.bin

Runs the evaluators of a config (`config.evals`, the same ones the trainer runs) on the weights in
PATH: a training run's workdir (also a demo workdir, whose run is `DIR/train`, and `RUN/best`), an
official `.bin` (e.g. FT_MB_release_MB_ft_h36m/best_epoch.bin) or an `mbjax.convert` directory.
A workdir is evaluated with the config it was trained with (its `config.json`), its data folders
found relative to the run when they have moved; --config replaces it, and a `.bin` or convert
directory needs one (`configs/pose3d_h36m.py:lite` for the Lite weights). Every option is a config
field, e.g. `--config.evals.h36m.gt_2d=True`, `--config.flip_test=False`,
`--config.data.data_dir=...`; `--evals=test` runs only the named evaluators. Writes FILE (default:
`eval.json` in the workdir, else in the current folder) with the checkpoint and its training step.
Evaluators that give a confusion matrix (`action`) also get a picture of it, `confusion_<name>.png`
beside the JSON; with `--save_smpl`, mesh evaluators also write every clip's predicted `theta`,
`betas` and `kp_3d` to `smpl_<name>.npz` beside it.
"""

import json
import os
import time

from absl import app, flags
from ml_collections import config_flags

from mbjax.tasks.loading import load_model


FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines this program's flags: called when it runs, so that importing the module
  defines none."""
  config_flags.DEFINE_config_file('config', None, 'Config file (path:variant); default: the '
                                  "config.json of a workdir checkpoint", lock_config=True)
  flags.DEFINE_string('checkpoint', None, 'official .bin, convert dir or workdir')
  flags.DEFINE_string('out', None, 'where to write the results (JSON); default: eval.json in '
                      'the workdir, or in the current folder for a .bin or convert dir')
  flags.DEFINE_list('evals', None, 'names of the config.evals entries to run (default: all)')
  flags.DEFINE_bool('save_smpl', False, 'mesh evaluators: also write the predicted '
                    'theta, betas and kp_3d per clip (smpl_<name>.npz beside --out)')


# Required flags are checked in main, not with mark_flags_as_required: tests define them beside
# other programs' flags, and absl would then demand these of every parse.


def _chosen(evaluators: dict, names, config) -> dict:
  if not names:
    return evaluators
  unknown = sorted(set(names) - set(evaluators))
  if unknown:
    raise ValueError(f'--evals: no evaluator {", ".join(unknown)} in config.evals of task '
                     f'{config.task} (it has {", ".join(evaluators) or "none"})')
  return {name: evaluators[name] for name in names}


def _ask_for_smpl(config, out: str) -> None:
  """Points every mesh evaluator's `save_smpl` at smpl_<name>.npz beside `out`."""
  directory = os.path.dirname(os.path.abspath(out))
  with config.unlocked():
    for name, spec in config.evals.items():
      if spec.get('type', name) == 'mesh':
        spec['save_smpl'] = os.path.join(directory, f'smpl_{name}.npz')


def _data_dirs(node, path: tuple = ()):
  """(path of keys, container, key) of every `data_dir` field of a config, in lists too."""
  items = node.items() if hasattr(node, 'items') else enumerate(node)
  for key, value in items:
    if key == 'data_dir' and isinstance(value, str):
      yield (*path, key), node, key
    elif hasattr(value, 'items') or isinstance(value, (list, tuple)):
      yield from _data_dirs(value, (*path, key))


def _lookup(tree, path: tuple):
  for key in path:
    try:
      tree = tree[key]
    except (KeyError, IndexError, TypeError):
      return None
  return tree


def _moved(data_dir: str, run_dir: str) -> str:
  """Where a data folder of a run is: as stored if it is there, else the same folder relative to
  the run or to the folder above it (a demo workdir keeps tfds/ beside train/)."""
  if not data_dir or os.path.isdir(data_dir):
    return data_dir
  tails = [] if os.path.isabs(data_dir) else [data_dir]
  tails.append(os.path.basename(os.path.normpath(data_dir)))
  for base in (run_dir, os.path.dirname(os.path.abspath(run_dir))):
    for tail in tails:
      if os.path.isdir(os.path.join(base, tail)):
        return os.path.join(base, tail)
  return data_dir


def _trained_config(stored: dict):
  """A run's config.json as a ConfigDict, with the fields added since it ran at the values it
  ran with (`config_diff.ADDED_FIELDS`)."""
  import copy
  import ml_collections
  from mbjax.train import config_diff
  stored = copy.deepcopy(stored)
  for key, value in config_diff.ADDED_FIELDS.items():
    *parents, leaf = key.split('.')
    node = stored
    for name in parents:
      node = node.setdefault(name, {})
    node.setdefault(leaf, value)
  return ml_collections.ConfigDict(stored)


def resolve(checkpoint: str, config=None):
  """(config, the weights to read, the run's folder or None) for `checkpoint`: `config`, else the
  config.json of the run the checkpoint belongs to; data folders that moved with the run are found
  relative to it, and a blank data_dir of `config` is the run's."""
  from mbjax.checkpoint import describe
  weights, run_dir = describe.find_run(checkpoint)
  if run_dir is None:
    if config is None:
      raise ValueError(f'{checkpoint}: not a trainer workdir, so it brings no config; pass the '
                       'config its weights go with, e.g. --config=configs/pose3d_h36m.py:ft')
    return config, weights, None
  stored = describe.read_config(run_dir)
  config = _trained_config(stored) if config is None else config
  for path, node, key in _data_dirs(config):
    node[key] = _moved(node[key] or _lookup(stored, path) or '', run_dir)
  return config, weights, run_dir


def run(config, checkpoint: str, out: str | None = None, evals=None, *,
        save_smpl: bool = False) -> dict:
  """{evaluator name: results} of the config's evaluators (or those named in `evals`) on
  `checkpoint`, written to `out`; `save_smpl`: mesh evaluators also write their predictions.
  `config` None: the config of the run `checkpoint` belongs to (`resolve`)."""
  from mbjax.checkpoint import describe
  from mbjax.evaluate import h36m, registry
  config, weights, run_dir = resolve(checkpoint, config)
  out = out or os.path.join(run_dir or '.', 'eval.json')
  if save_smpl:
    _ask_for_smpl(config, out)
  task, model, variables = load_model(config, weights)
  step = describe.latest_step(weights) if run_dir else None
  evaluators = _chosen(task.make_evaluators(config, model), evals, config)
  if not evaluators:
    raise ValueError(f'config.evals of task {config.task} is empty: nothing to evaluate')
  print(f'evaluating {weights}' + (f' at step {step}' if step is not None else ''), flush=True)
  results = {}
  for name, (_, evaluate) in evaluators.items():
    start = time.perf_counter()
    result = dict(evaluate(variables), seconds=round(time.perf_counter() - start, 2))
    if 'per_action' in result:
      print(h36m.format_table(result))
    scalars = {k: v for k, v in result.items() if isinstance(v, (int, float))}
    print(f'{name}: ' + '  '.join(f'{k} {v:.2f}' if isinstance(v, float) else f'{k} {v}'
                                  for k, v in scalars.items()), flush=True)
    directory = os.path.dirname(os.path.abspath(out))
    for path in registry.save_artifacts(config, name, result, directory):
      print(f'wrote {path}')
    results[name] = result
  summary = dict(checkpoint=os.path.abspath(checkpoint), weights=os.path.abspath(weights),
                 step=step, task=config.task, **results)
  if len(results) == 1:  # one evaluator: its metrics at the top level too
    summary.update(next(iter(results.values())))
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out, 'w') as f:
    json.dump(summary, f, indent=2)
  print(f'wrote {out}')
  return summary


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')
  if not FLAGS.checkpoint:
    raise app.UsageError('--checkpoint required (see --help)')
  run(FLAGS.config, FLAGS.checkpoint, FLAGS.out, FLAGS.evals,  # mistakes: cli prints 1 line
      save_smpl=FLAGS.save_smpl)
  return 0


if __name__ == '__main__':
  define_flags()
  from mbjax import cli
  cli.run(main, program='mbjax.evaluate')
