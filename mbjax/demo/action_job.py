"""The embedded action demo, end to end on CPU: python -m mbjax.demo --task action --workdir DIR.

1. cuts each shipped mocap recording (data_prep/assets/mocap; one recording = one label) into
   clips of `build.clip_len` frames every `build.stride` frames at `build.fps`, and projects them
   to 2D from the training yaws and, for the test split, from other yaws: `.npy` files in the
   layout `python -m data_prep.build actions` reads (DIR/clips/{train,test}/<label>/...);
2. builds the `actions` dataset from them (`mbjax.data.actions`, as the builder CLI does);
3. trains the action model of mbjax/demo/action_config.py from scratch;
4. evaluates on the unseen yaws: top-1 / top-5 / mean class accuracy against chance, the
   confusion matrix picture (DIR/train/confusion_test_<step>.png), DIR/summary.json.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import time

import ml_collections
import numpy as np

from mbjax.data import mocap, shipped

FRAME_SIZE = 1000  # the projected clips are drawn on a 1000 x 1000 px frame
PIXELS_PER_UNIT = 400.0  # normalised mocap units (a body is ~0.5) -> pixels
# Label (folder) names of the shipped recordings (data_prep/assets/mocap/SOURCES.md); another
# recording's label is its file name.
LABELS = {'131_01_walk': 'walk', '131_03_hop': 'hop', 'jumping_jacks': 'jumping_jacks',
          '11_01': 'kick', 'dab': 'dab', 'jumping': 'jump'}


def default_config() -> ml_collections.ConfigDict:
  """The shipped action demo config (mbjax/demo/action_config.py)."""
  from mbjax.demo import action_config
  return action_config.get_config()


def project(positions_zup_m: np.ndarray, yaw: float) -> np.ndarray:
  """(T, 17, 3) metres, Z-up -> (T, 17, 3) pixels x, y and confidence 1, seen from `yaw`."""
  camera = mocap.to_motionbert(positions_zup_m, yaw)
  xy = camera[..., :2] * PIXELS_PER_UNIT + FRAME_SIZE / 2
  return np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], axis=-1).astype(np.float32)


def write_clips(out_dir: str | pathlib.Path, mocap_dir: str | pathlib.Path, build) -> dict:
  """Writes the clips of every recording (module docstring); returns {split: {label: count}}."""
  out_dir = pathlib.Path(out_dir)
  if out_dir.exists():
    shutil.rmtree(out_dir)  # a rerun writes the same files afresh
  counts = {'train': {}, 'test': {}}
  for path in mocap.motion_files(mocap_dir):
    positions, _ = mocap.load_h36m17(path, fps=build.fps)
    label = LABELS.get(path.stem, path.stem)
    starts = mocap.clip_starts(len(positions), build.clip_len, build.stride)
    if not starts:
      raise ValueError(f'{path}: {len(positions)} frames at {build.fps} fps, shorter than one '
                       f'clip of {build.clip_len}')
    for split, yaws in (('train', build.train_yaws), ('test', build.test_yaws)):
      folder = out_dir / split / label
      folder.mkdir(parents=True)
      for yaw in yaws:
        for start in starts:
          clip = project(positions[start:start + build.clip_len], yaw)
          np.save(folder / f'{label}_yaw{yaw:g}_{start:04d}.npy', clip)
      counts[split][label] = len(yaws) * len(starts)
  return counts


def build_dataset(workdir: str, config, assets=None) -> tuple[dict, dict]:
  """(clip counts, build report) of the demo's `actions` dataset under workdir/tfds."""
  from mbjax.data import actions, writer
  clips = os.path.join(workdir, 'clips')
  counts = write_clips(clips, shipped.assets_dir('mocap', assets), config.build)
  report = writer.build(actions, source=clips, data_dir=config.data.data_dir,
                        options=dict(format='h36m', size=(FRAME_SIZE, FRAME_SIZE)))
  print(report)
  return counts, report.as_dict()


def run(workdir: str, *, config=None, assets=None) -> dict:
  """Runs the action demo in `workdir`; returns its summary (also DIR/summary.json)."""
  import jax
  from mbjax import train
  t0 = time.time()
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  config = default_config() if config is None else config
  config.data.data_dir = os.path.join(workdir, 'tfds')
  counts, report = build_dataset(workdir, config, assets)
  build_s = time.time() - t0
  result = train.train_and_evaluate(config, os.path.join(workdir, 'train'))
  test = {k.split('/', 1)[1]: v for k, v in result.items() if k.startswith('test/')}
  labels = list(config.label_names)
  step = result['step']
  summary = dict(
      top1=test['top1'], top5=test['top5'], mean_class_accuracy=test['mean_class_accuracy'],
      chance=100.0 / len(labels), labels=labels, clips=counts, steps=step,
      train_yaws=list(config.build.train_yaws), test_yaws=list(config.build.test_yaws),
      build_s=round(build_s, 1), backend=jax.default_backend(), build=report,
      confusion_png=os.path.join(workdir, 'train', f'confusion_test_{step}.png'),
      total_s=round(time.time() - t0, 1))
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=2)
  return summary


def describe(summary: dict, workdir: str) -> str:
  """The lines the action demo prints at the end."""
  n_test = sum(summary['clips']['test'].values())
  return '\n'.join([
      f'test clips (yaws {summary["test_yaws"]}, unseen in training): {n_test}, '
      f'{len(summary["labels"])} labels {summary["labels"]}',
      f'top-1 {summary["top1"]:.1f}%  top-5 {summary["top5"]:.1f}%  mean class accuracy '
      f'{summary["mean_class_accuracy"]:.1f}%  (chance {summary["chance"]:.1f}%)',
      f'{summary["steps"]} steps, {summary["total_s"]:.0f} s; confusion matrix '
      f'{summary["confusion_png"]}; wrote {os.path.join(workdir, "summary.json")}'])
