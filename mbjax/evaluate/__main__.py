"""python -m mbjax.evaluate --config=configs/pose3d_h36m.py:ft --checkpoint=PATH [--out=eval.json]

Runs the evaluators of a config (`config.evals`, the same ones the trainer runs) on the weights in
PATH: an official `.bin` (e.g. FT_MB_release_MB_ft_h36m/best_epoch.bin), an `mbjax.convert`
directory, or a training run's workdir. The model is the config's (`configs/pose3d_h36m.py:lite`
for the Lite weights); every option is a config field, e.g. `--config.evals.h36m.gt_2d=True`,
`--config.flip_test=False`, `--config.data.data_dir=...`; `--evals=test` runs only the named
evaluators. Evaluators that give a confusion matrix (`action`) also get a picture of it,
`confusion_<name>.png` beside the JSON; with `--save_smpl`, mesh evaluators also write every
clip's predicted `theta`, `betas` and `kp_3d` to `smpl_<name>.npz` beside it.
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
  config_flags.DEFINE_config_file('config', None, 'Config file (path:variant).',
                                  lock_config=True)
  flags.DEFINE_string('checkpoint', None, 'official .bin, convert dir or workdir')
  flags.DEFINE_string('out', 'eval.json', 'where to write the results (JSON)')
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


def run(config, checkpoint: str, out: str, evals=None, *, save_smpl: bool = False) -> dict:
  """{evaluator name: results} of the config's evaluators (or those named in `evals`) on
  `checkpoint`, written to `out`; `save_smpl`: mesh evaluators also write their predictions."""
  from mbjax.evaluate import h36m, registry
  if save_smpl:
    _ask_for_smpl(config, out)
  task, model, variables = load_model(config, checkpoint)
  evaluators = _chosen(task.make_evaluators(config, model), evals, config)
  if not evaluators:
    raise ValueError(f'config.evals of task {config.task} is empty: nothing to evaluate')
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
  summary = dict(checkpoint=os.path.abspath(checkpoint), task=config.task, **results)
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
  missing = [f'--{name}' for name in ('config', 'checkpoint') if not FLAGS[name].value]
  if missing:
    raise app.UsageError(f'{" and ".join(missing)} required (see --help)')
  from mbjax.logs import log_filter
  log_filter.quiet_libraries()
  run(FLAGS.config, FLAGS.checkpoint, FLAGS.out, FLAGS.evals,  # mistakes: cli prints 1 line
      save_smpl=FLAGS.save_smpl)
  return 0


if __name__ == '__main__':
  define_flags()
  from mbjax import cli
  cli.run(main, program='mbjax.evaluate')
