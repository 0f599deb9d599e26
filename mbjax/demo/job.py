"""The embedded demo, end to end on CPU in a few minutes: python -m mbjax.demo --workdir DIR.

1. builds the `mocap` dataset from the real clips shipped in data_prep/assets (and `wild`, the
   in-the-wild AlphaPose sequence, as the 2D-only source), as ArrayRecord under the workdir;
2. pretrains a small DSTformer with MotionBERT's corruption and 3D-then-3D+2D curriculum
   (mbjax/demo/config.py);
3. evaluates 2D-to-3D lifting on the held-out recording seen from 4 unseen yaws, next to the
   mean-pose and zero-depth baselines;
4. writes summary.json, pictures (PNG, GIF) and loss curves into the workdir.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import ml_collections

from mbjax.data import shipped

# (asset folder, data_dir under the workdir, build options in config.build)
_BUILDS = (('mocap', 'tfds', 'mocap'), ('wild', 'tfds', 'wild'),
           ('mocap', 'tfds_eval', 'mocap_eval'))
_SUMMARY_KEYS = ('mpjpe_mm', 'p_mpjpe_mm', 'baseline_mpjpe_mm', 'zero_depth_mpjpe_mm', 'total_s')


def default_config() -> ml_collections.ConfigDict:
  """The shipped demo config (mbjax/demo/config.py)."""
  from mbjax.demo import config as demo_config
  return demo_config.get_config()


def build_datasets(workdir: str, config, assets: str | pathlib.Path | None = None) -> dict:
  """Builds the demo's datasets from the shipped recordings; returns the build reports.

  Args:
    workdir: the run folder; datasets go to workdir/tfds and workdir/tfds_eval.
    config: the demo config (`config.build` holds the options of each build).
    assets: the folder holding mocap/ and wild/; the checkout's data_prep/assets if None.
  """
  from mbjax.data import mocap, wild, writer
  modules = {'mocap': mocap, 'wild': wild}
  sources = {kind: shipped.assets_dir(kind, assets) for kind in modules}  # fail before building
  reports = {}
  for kind, sub, options in _BUILDS:
    report = writer.build(modules[kind], source=sources[kind],
                          data_dir=os.path.join(workdir, sub), options=dict(config.build[options]))
    print(report)
    reports[f'{sub}/{kind}'] = report.as_dict()
  return reports


def _apply_overrides(config, overrides: dict) -> None:
  """Sets dotted keys ('checkpoint.every_steps') of the config."""
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = value


def run(workdir: str, overrides: dict | None = None, *, config=None,
        assets: str | pathlib.Path | None = None) -> dict:
  """Runs the demo in `workdir` and returns its summary (also written to summary.json); after a
  SIGTERM, which saves and stops training, only {preempted, steps, checkpoint}.

  Args:
    workdir: the run folder.
    overrides: dotted config keys -> values, applied to `config`.
    config: the demo config; `default_config()` if None.
    assets: the folder holding the shipped mocap/ and wild/ recordings; the checkout's
      data_prep/assets if None.
  """
  import jax
  from mbjax import train
  from mbjax.demo import plots

  t0 = time.time()
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  config = default_config() if config is None else config
  config.data.data_dir = os.path.join(workdir, 'tfds')
  config.evals.lifting.data_dir = os.path.join(workdir, 'tfds_eval')
  _apply_overrides(config, overrides or {})
  reports = build_datasets(workdir, config, assets)
  build_s = time.time() - t0
  result = train.train_and_evaluate(config, os.path.join(workdir, 'train'))
  if result.get('preempted'):  # SIGTERM: saved, and the evaluations are step 0's, not this step's
    return dict(preempted=True, steps=result['step'],
                checkpoint=os.path.join(workdir, 'train', 'checkpoints'))
  lifting = {k.split('/', 1)[1]: v for k, v in result.items() if k.startswith('lifting/')}
  summary = dict(
      mpjpe_mm=lifting['mpjpe_mm'], p_mpjpe_mm=lifting['p_mpjpe_mm'],
      baseline_mpjpe_mm=lifting['baseline_mpjpe_mm'],
      baseline_p_mpjpe_mm=lifting['baseline_p_mpjpe_mm'],
      zero_depth_mpjpe_mm=lifting['zero_depth_mpjpe_mm'],
      zero_depth_p_mpjpe_mm=lifting['zero_depth_p_mpjpe_mm'],
      eval_frames=lifting['frames'], steps=result['step'], build_s=round(build_s, 1),
      total_s=None, backend=jax.default_backend(), builds=reports,
      checkpoint=os.path.join(workdir, 'train', 'checkpoints'),
  )
  pictures = plots.write_pictures(workdir, config, result['model'], result['state']['params'],
                                  os.path.join(workdir, 'train', 'metrics.jsonl'))
  summary['pictures'] = pictures
  summary['total_s'] = round(time.time() - t0, 1)
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=2)
  return summary


def describe(summary: dict, workdir: str) -> str:
  """The lines the demo prints at the end: errors, baselines and where the outputs are."""
  if summary.get('preempted'):
    return (f'stopped by SIGTERM at step {summary["steps"]}, saved in {summary["checkpoint"]}; '
            'the same command resumes and finishes the demo')
  lines = [f'{k:>22s}: {summary[k]:.1f}' for k in _SUMMARY_KEYS]
  ratio = summary['baseline_mpjpe_mm'] / summary['mpjpe_mm']
  margin = summary['zero_depth_mpjpe_mm'] - summary['mpjpe_mm']
  lines.append(f'held-out MPJPE: {ratio:.2f}x lower than the mean pose, '
               f'{"%.1f mm lower" % margin if margin > 0 else "%.1f mm higher" % -margin} '
               'than zero depth')
  lines.append(f'wrote {os.path.join(workdir, "summary.json")} and pictures {summary["pictures"]}')
  return '\n'.join(lines)
