"""Human3.6M pose finetuning (mbjax.tasks.pose3d) end to end on a tiny official-format pickle:
finetune a tiny DSTformer from an official .bin for a few steps and check the h36m evaluations."""

import importlib.util
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

import data_formats
from configs import pose3d_h36m
from mbjax import train
from mbjax.checkpoint import official
from mbjax.logs import metric_writer
from mbjax.data import pipelines
from mbjax.data.records import load as load_split
from mbjax.evaluate import h36m
from mbjax.models import DSTformer
from mbjax.tasks import pose3d

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'tests' / 'configs' / 'tiny_pose3d.py'
# (source, camera, action, frames). Train: 3 clips of 243 frames (stride 81) per 405-frame take.
TRAIN_SEQUENCES = [('s_01_act_02_subact_01_ca_01', '54138969', '', 405),
                   ('s_05_act_03_subact_02_ca_02', '55011271', '', 405)]
# Test: 2 actions, 3 clips of 243 frames (stride 243).
TEST_SEQUENCES = [('s_09_act_02_subact_01_ca_01', '54138969', 'Directions 1', 243),
                  ('s_11_act_03_subact_01_ca_02', '55011271', 'Discussion', 486)]
EVAL_KEYS = ('mpjpe', 'p_mpjpe', 'mpjpe_per_frame', 'p_mpjpe_per_frame')


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return data_formats.build_random_h36m(tmp_path_factory.mktemp('h36m_pose3d'), TRAIN_SEQUENCES,
                                        TEST_SEQUENCES)


@pytest.fixture(scope='module')
def config(tiny_config, data_dir):
  """fn(*options) -> tests/configs/tiny_pose3d.py on this module's h36m data."""
  return lambda *flags: tiny_config('tiny_pose3d', ','.join([data_dir, *flags]))


def _backbone(config) -> dict:
  return {k: v for k, v in config.model.items() if k not in ('dtype', 'param_dtype')}


@pytest.fixture(scope='module')
def official_bin(tmp_path_factory, config):
  """(variables, path) of a random tiny DSTformer saved in the official checkpoint format."""
  module = DSTformer(**_backbone(config()))
  # Random weights from the abstract shapes: an eager init of DSTformer is slow on CPU.
  abstract = meta.unbox(jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 4, 17, 3))))
  rng = np.random.default_rng(1)
  variables = jax.tree.map(lambda a: rng.normal(0, 0.2, a.shape).astype(np.float32), abstract)
  path = tmp_path_factory.mktemp('pretrained') / 'latest_epoch.bin'
  official.save_official(variables, 'pose', path)
  return variables, path


def _evaluate_directly(module, params, data_dir, *, flip=True, rootrel=True) -> dict:
  """The h36m test metrics of `params` through mbjax.evaluate.h36m alone (not the task)."""
  source = load_split('h36m', 'test', data_dir=data_dir)
  records = [source[i] for i in range(len(source))]
  inputs = np.stack([r['joint_2d'] for r in records])
  apply = jax.jit(lambda p, x: module.apply({'params': p}, x))
  pred = h36m.predict_clips(lambda x: apply(params, x), inputs, flip=flip, rootrel=rootrel,
                            batch_size=4)
  return h36m.evaluate(pred, records)


def test_finetune_from_official_bin(tmp_path, data_dir, official_bin, config):
  variables, path = official_bin
  config = config()
  with config.unlocked():
    config.init_from = str(path)
  workdir = tmp_path / 'ft'
  summary = train.train_and_evaluate(config, str(workdir))
  # 6 train clips, batch 4 (last partial batch dropped): 1 step per epoch, 2 epochs.
  assert summary['step'] == summary['total_steps'] == 2
  for key in ('3d/loss_3d_pos', '3d/loss_3d_scale', '3d/loss_3d_velocity', '3d/mpjpe_3d', 'loss'):
    assert np.isfinite(summary[key]) and summary[key] > 0, key
  rows = metric_writer.read_jsonl(workdir / 'metrics.jsonl')
  evals = {r['step']: r for r in rows if 'h36m/mpjpe' in r}
  assert sorted(evals) == [0, 2]  # every_steps=2: before training and at the last step
  for step in (0, 2):
    for key in EVAL_KEYS:
      value = evals[step][f'h36m/{key}']
      assert isinstance(value, float) and np.isfinite(value) and value > 0, (step, key)
    assert evals[step]['h36m/p_mpjpe'] < evals[step]['h36m/mpjpe']

  # Step 0 evaluates exactly the .bin's weights: init_from replaced every parameter.
  module = summary['model']
  from_bin = _evaluate_directly(module, variables['params'], data_dir)
  assert from_bin['mpjpe'] > 10  # a random model is far off: the comparison means something
  for key in EVAL_KEYS:
    np.testing.assert_allclose(evals[0][f'h36m/{key}'], from_bin[key], rtol=1e-4)
  # A fresh init (what training would start from without init_from) scores differently.
  fresh = meta.unbox(module.init(jax.random.key(config.seed), jnp.zeros((1, 4, 17, 3))))['params']
  assert abs(_evaluate_directly(module, fresh, data_dir)['mpjpe'] - from_bin['mpjpe']) > 1.0

  # The last evaluation is that of the trained parameters, which moved away from the .bin's.
  final = jax.device_get(summary['state']['params'])
  trained = _evaluate_directly(module, final, data_dir)
  for key in EVAL_KEYS:
    np.testing.assert_allclose(evals[2][f'h36m/{key}'], trained[key], rtol=1e-4)
    assert summary[f'h36m/{key}'] == evals[2][f'h36m/{key}']
  assert evals[2]['h36m/mpjpe'] != evals[0]['h36m/mpjpe']

  # The standalone CLI with the same config on the finetuning workdir gives the same numbers.
  import json
  import subprocess
  import sys
  out = tmp_path / 'eval.json'
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='')
  proc = subprocess.run(
      [sys.executable, '-m', 'mbjax.evaluate', f'--config={CONFIG}:{data_dir}',
       f'--checkpoint={workdir}', f'--out={out}'], cwd=ROOT, env=env, capture_output=True,
      text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  cli = json.loads(out.read_text())
  for key in EVAL_KEYS:
    np.testing.assert_allclose(cli[key], trained[key], rtol=1e-4)
  assert set(cli['per_action']) == set(trained['per_action']) and len(cli['per_action']) >= 2
  for action, values in trained['per_action'].items():
    np.testing.assert_allclose(cli['per_action'][action]['mpjpe'], values['mpjpe'], rtol=1e-4)


def test_loss_fn_targets_and_metric_names(data_dir, config):
  config = config('global', 'noflip')
  assert not config.rootrel and not config.flip and not config.flip_test
  curriculum = pose3d.make_curriculum(config)
  assert curriculum.total_steps == 2 and curriculum.kind_of(0) == pipelines.KIND_3D
  record = load_split('h36m', 'train', data_dir=data_dir)[0]
  example = curriculum.phases[0].make_example(record, np.random.default_rng(0))
  gt = np.asarray(record['joint_3d'], np.float32)
  # Global: only the depth is shifted, to the first frame's root; x, y stay absolute.
  np.testing.assert_allclose(example['target'][..., :2], gt[..., :2])
  np.testing.assert_allclose(example['target'][..., 2], gt[..., 2] - gt[0, 0, 2], atol=1e-6)
  np.testing.assert_array_equal(example['input'], record['joint_2d'])

  model = pose3d.make_model(config)
  variables = meta.unbox(model.init(jax.random.key(0), jnp.zeros((1, 4, 17, 3))))
  params = variables['params']
  rng = np.random.default_rng(2)
  batch = {'input': jnp.asarray(rng.normal(size=(2, 4, 17, 3)), jnp.float32),
           'target': jnp.asarray(rng.normal(size=(2, 4, 17, 3)), jnp.float32)}
  total, (parts, model_state) = pose3d.loss_fn(model, variables, batch, jax.random.key(1),
                                               pipelines.KIND_3D, config)
  assert model_state == {}  # a DSTformer has no state besides its parameters
  assert set(parts) == {f'3d/{k}' for k in ('loss_3d_pos', 'loss_3d_scale', 'loss_3d_velocity',
                                            'loss_lv', 'loss_lg', 'loss_a', 'loss_av',
                                            'mpjpe_3d')}
  pred = model.apply({'params': params}, batch['input'])
  mpjpe = float(jnp.mean(jnp.linalg.norm(pred - batch['target'], axis=-1)))
  np.testing.assert_allclose(float(parts['3d/loss_3d_pos']), mpjpe, rtol=1e-5)
  want = (parts['3d/loss_3d_pos'] + 0.5 * parts['3d/loss_3d_scale'] +
          20.0 * parts['3d/loss_3d_velocity'])
  np.testing.assert_allclose(float(total), float(want), rtol=1e-5)
  with pytest.raises(ValueError, match=r"batch kind '2d', expected '3d'"):
    pose3d.loss_fn(model, variables, batch, jax.random.key(1), '2d', config)


def test_config_variants():
  ft = pose3d_h36m.get_config('ft')
  assert (ft.task, ft.epochs, ft.batch_size, ft.lr, ft.lr_decay, ft.weight_decay) == (
      'pose3d', 60, 32, 2e-4, 0.99, 0.01)
  assert ft.flip and ft.flip_test and ft.rootrel and ft.model.dim_feat == 512
  assert (ft.loss.lambda_scale, ft.loss.lambda_3d_velocity) == (0.5, 20.0)
  assert ft.best_metric == ''  # no model selection on the test set
  assert pose3d_h36m.get_config('scratch').epochs == 120
  assert not pose3d_h36m.get_config('global').rootrel
  # Official MB_ft_h36m_global_lite: the Lite model at lr 5e-4 with absolute targets.
  lite = pose3d_h36m.get_config('global_lite')
  assert (lite.model.dim_feat, lite.model.mlp_ratio, lite.epochs, lite.lr) == (256, 4, 60, 5e-4)
  assert not lite.rootrel and lite.flip and lite.flip_test
  # lite: the same, root-relative (no current official config).
  lite = pose3d_h36m.get_config('lite')
  assert (lite.model.dim_feat, lite.model.mlp_ratio, lite.epochs, lite.lr) == (256, 4, 60, 5e-4)
  assert lite.rootrel
  assert not (ft.gt_2d or ft.no_conf)
  with pytest.raises(ValueError, match=r"configs/pose3d_h36m.py: unknown variant 'tiny'"):
    pose3d_h36m.get_config('tiny')


class _InputSpy:
  """A stand-in model for evaluators: predicts zeros, remembers the input shape it was given."""

  def __init__(self):
    self.shapes = set()

  def apply(self, variables, x):
    self.shapes.add(x.shape[1:])
    return jnp.zeros(x.shape[:3] + (3,), x.dtype)


def test_gt_2d_and_no_conf_reach_training_and_evaluation(data_dir, config):
  """Official `gt_2d` and `no_conf` act on the training clips and on the h36m evaluator."""
  c = config('noflip')
  c.gt_2d, c.no_conf, c.model.dim_in = True, True, 2
  record = load_split('h36m', 'train', data_dir=data_dir)[0]
  example = pose3d.make_curriculum(c).phases[0].make_example(record, np.random.default_rng(0))
  gt = np.asarray(record['joint_3d'], np.float32)
  np.testing.assert_array_equal(example['input'], gt[..., :2])  # gt x, y; confidence dropped
  spy = _InputSpy()
  result = h36m.make_evaluator(c, spy, c.evals.h36m.to_dict())({})
  assert result['gt_2d'] and spy.shapes == {(243, 17, 2)}
