"""The demo main job end to end, shortened: build, pretrain, evaluate, summary and pictures; its
config against configs/pretrain.py:tiny; its command line."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from configs import pretrain
from mbjax.demo import config as demo_config
from mbjax.demo import job

ROOT = pathlib.Path(__file__).resolve().parents[1]

# What the demo changes in configs/pretrain.py:tiny (the model block is checked on its own: tiny's
# model size is not the demo's business), with the demo's values.
DEMO_CHANGES = {
    'epochs': 14, 'curriculum_3d_epochs': 7, 'batch_size': 32, 'lr': 2e-3, 'lr_decay': 0.97,
    'loss.lambda_3d_velocity': 0.0, 'checkpoint.every_steps': 100, 'log_every_steps': 10,
    'data.data_dir': '', 'augment.scale_range_3d': (1.0, 1.0),
    'data.sources_3d': [dict(name='mocap', split='train', key='joints3d')],
    'data.sources_2d': [dict(name='wild', split='train', key='joint_2d', noise=True)],
    'evals.lifting.type': 'lifting', 'evals.lifting.name': 'mocap', 'evals.lifting.split': 'test',
    'evals.lifting.key': 'joints3d', 'evals.lifting.data_dir': '', 'evals.lifting.every_steps': 0,
    'build.mocap.clip_len': 27, 'build.mocap.stride': 9,
    'build.mocap.yaws': (0, 45, 90, 135, 180, 225, 270, 315),
    'build.mocap.test_files': ('131_03_hop',),
    'build.mocap_eval.clip_len': 27, 'build.mocap_eval.stride': 27,
    'build.mocap_eval.yaws': (22.5, 112.5, 202.5, 292.5),
    'build.mocap_eval.test_files': ('131_03_hop',),
    'build.wild.clip_len': 27, 'build.wild.stride': 3,
}
DEMO_MODEL = dict(dim_feat=64, dim_rep=64, depth=2, num_heads=4, mlp_ratio=2, maxlen=27,
                  dim_in=3, dim_out=3, num_joints=17, drop_rate=0.0, attn_drop_rate=0.0,
                  drop_path_rate=0.0, att_fuse=True, dtype='float32', param_dtype='float32',
                  attention_impl='xla', remat_policy='none', scan_layers=False,
                  init_scheme='fan_in', parameterization='standard', mup_base_width=64)


def _flat(d: dict, prefix: str = '') -> dict:
  out = {}
  for key, value in d.items():
    if isinstance(value, dict):
      out.update(_flat(value, f'{prefix}{key}.'))
    else:
      out[prefix + key] = value
  return out


def _same(a, b) -> bool:
  return type(a) is type(b) and repr(a) == repr(b)  # 0 != 0.0 and tuple != list here


def test_demo_config_is_pretrain_tiny_with_the_demo_changes():
  demo = _flat(demo_config.get_config().to_dict())
  tiny = _flat(pretrain.get_config('tiny').to_dict())
  model = {k: v for k, v in demo.items() if k.startswith('model.')}
  assert model == {f'model.{k}': v for k, v in DEMO_MODEL.items()}
  assert set(model) == {k for k in tiny if k.startswith('model.')}
  rest = sorted(set(demo) | set(tiny))
  differ = {k for k in rest if not k.startswith('model.')
            and (k not in demo or k not in tiny or not _same(demo[k], tiny[k]))}
  assert differ == set(DEMO_CHANGES), 'keys where the demo and pretrain tiny differ'
  for key, value in DEMO_CHANGES.items():
    assert _same(demo[key], value), (key, demo[key], value)


def test_demo_config_has_no_variants():
  with pytest.raises(ValueError, match='no variants'):
    demo_config.get_config('tiny')


def test_missing_assets_say_what_was_looked_for(tmp_path):
  with pytest.raises(FileNotFoundError, match=r'looked for the folder .*nowhere.mocap'):
    job.build_datasets(str(tmp_path), demo_config.get_config(), assets=tmp_path / 'nowhere')


def test_command_line_loads_the_shipped_config_with_overrides(tmp_path):
  code = ('import sys; from absl import flags; from mbjax.demo import __main__ as m; '
          'm.define_flags(); flags.FLAGS(sys.argv); c = flags.FLAGS.config; '
          'print(c.epochs, c.lr, c.is_locked, flags.FLAGS.assets, flags.FLAGS.workdir)')
  out = subprocess.run([sys.executable, '-c', code, '--workdir', str(tmp_path),
                        '--config.epochs=3'], cwd=ROOT, capture_output=True, text=True,
                       check=True).stdout.split()
  assert out[:3] == ['3', '0.002', 'True']
  assert pathlib.Path(out[3]) == ROOT / 'data_prep' / 'assets' and out[4] == str(tmp_path)


def test_demo_runs_end_to_end(tmp_path):
  overrides = {'total_steps': 4, 'batch_size': 8, 'checkpoint.every_steps': 2,
               'model.dim_feat': 16, 'model.dim_rep': 16, 'model.depth': 1, 'model.num_heads': 2}
  summary = job.run(str(tmp_path), overrides=overrides)
  assert summary['steps'] == 4
  on_disk = json.loads((tmp_path / 'summary.json').read_text())
  for key in ('mpjpe_mm', 'p_mpjpe_mm', 'baseline_mpjpe_mm', 'zero_depth_mpjpe_mm'):
    assert on_disk[key] == summary[key] and 0.0 < summary[key] < 1e4, key
  # The baselines do not depend on the model: the held-out clip from 4 yaws, 68 clips of 27 frames.
  assert summary['eval_frames'] == 68 * 27
  assert abs(summary['zero_depth_mpjpe_mm'] - 94.3) < 0.1
  assert abs(summary['baseline_mpjpe_mm'] - 166.9) < 0.1
  for kind in ('png', 'gif', 'losses'):
    assert os.path.getsize(summary['pictures'][kind]) > 1000, kind
  assert os.listdir(summary['checkpoint'])
  # The workdir as the README uses it: evaluate and check find its run, config and data in
  # train/, report the step, agree with the demo, and loading its weights warns of nothing.
  relative = os.path.relpath(tmp_path, ROOT)  # as a user types it
  evaluated = _program('mbjax.evaluate', f'--checkpoint={relative}')
  result = json.loads((tmp_path / 'train' / 'eval.json').read_text())
  assert result['step'] == 4 and 'at step 4' in evaluated.stdout
  assert abs(result['mpjpe_mm'] - summary['mpjpe_mm']) < 1e-3
  checked = json.loads(_program('mbjax.checkpoint', 'check', relative, '--json').stdout)
  assert checked['kind'] == 'pose' and checked['step'] == 4 and checked['maxlen'] == 27
  assert checked['task'] == 'pretrain' and checked['parameters'] > 0


def _program(name: str, *args: str) -> subprocess.CompletedProcess:
  """`python -m name args` from the checkout, which must exit 0 with no warning on stderr."""
  done = subprocess.run([sys.executable, '-m', name, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)
  assert done.returncode == 0, done.stderr
  warnings = [line for line in done.stderr.splitlines() if line[:1] in 'WE' and line[1:5].isdigit()]
  assert not warnings, done.stderr
  return done


def test_batch_that_does_not_split_over_the_mesh_fails_clearly(tmp_path):
  # conftest gives 8 fake devices: the default mesh puts all of them on the batch axis.
  with pytest.raises(ValueError, match='batch_size=4 does not split over the mesh'):
    job.run(str(tmp_path), overrides={'total_steps': 1, 'batch_size': 4})


def test_a_stopped_demo_says_how_to_resume_not_stale_numbers():
  line = job.describe(dict(preempted=True, steps=96, checkpoint='runs/demo/train/checkpoints'),
                      'runs/demo')
  assert line == ('stopped by SIGTERM at step 96, saved in runs/demo/train/checkpoints; the same '
                  'command resumes and finishes the demo')
