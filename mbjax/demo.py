"""The embedded demo, end to end on CPU in a few minutes: python -m mbjax.demo --workdir DIR.

1. builds the `mocap` dataset from the real clips shipped in data_prep/assets (and `wild`, the
   in-the-wild AlphaPose sequence, as the 2D-only source);
2. pretrains a small DSTformer with MotionBERT's corruption and 3D-then-3D+2D curriculum
   (configs/demo.py);
3. evaluates 2D-to-3D lifting on the held-out recording seen from 4 unseen yaws, next to the
   mean-pose and zero-depth baselines;
4. writes summary.json, pictures (PNG, GIF) and loss curves into the workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _build(workdir: str, config) -> dict:
  from data_prep import builder, mocap, wild
  reports = {}
  plans = [('mocap', 'tfds', mocap.ASSETS, config.build.mocap),
           ('wild', 'tfds', wild.ASSETS, config.build.wild),
           ('mocap', 'tfds_eval', mocap.ASSETS, config.build.mocap_eval)]
  for name, sub, source, options in plans:
    report = builder.build(name, source=source, data_dir=os.path.join(workdir, sub),
                           options=dict(options))
    print(report)
    reports[f'{sub}/{name}'] = report.as_dict()
  return reports


def run(workdir: str, *, overrides: dict | None = None) -> dict:
  import jax
  from configs import demo as demo_config
  from mbjax import train
  from mbjax.demo_plots import write_pictures

  t0 = time.time()
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  config = demo_config.get_config()
  config.data.data_dir = os.path.join(workdir, 'tfds')
  config.evals.lifting.data_dir = os.path.join(workdir, 'tfds_eval')
  for key, value in (overrides or {}).items():
    node = config
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = value
  reports = _build(workdir, config)
  build_s = time.time() - t0
  result = train.train_and_evaluate(config, os.path.join(workdir, 'train'))
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
  pictures = write_pictures(workdir, config, result['model'], result['state']['params'],
                            os.path.join(workdir, 'train', 'metrics.jsonl'))
  summary['pictures'] = pictures
  summary['total_s'] = round(time.time() - t0, 1)
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=2)
  return summary


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m mbjax.demo', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--epochs', type=int, default=None, help='override the demo config')
  args = parser.parse_args(argv)
  overrides = {'epochs': args.epochs} if args.epochs else {}
  summary = run(args.workdir, overrides=overrides)
  keys = ('mpjpe_mm', 'p_mpjpe_mm', 'baseline_mpjpe_mm', 'zero_depth_mpjpe_mm', 'total_s')
  print('\n'.join(f'{k:>22s}: {summary[k]:.1f}' for k in keys))
  ratio = summary['baseline_mpjpe_mm'] / summary['mpjpe_mm']
  margin = summary['zero_depth_mpjpe_mm'] - summary['mpjpe_mm']
  print(f'held-out MPJPE: {ratio:.2f}x lower than the mean pose, '
        f'{"%.1f mm lower" % margin if margin > 0 else "%.1f mm higher" % -margin} than zero depth')
  print(f'wrote {os.path.join(args.workdir, "summary.json")} and pictures {summary["pictures"]}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
