"""The task protocol is enough for a model the trainer has never seen: tests/toy_action_task.py
(ActionNet, a BatchNorm head, 5-D input) trains, keeps its BatchNorm statistics in the state and
the checkpoint, hands them to evaluators, resumes bitwise after SIGKILL, shards over 8 devices
equal to 1, and loads a pretrained DSTformer onto its backbone, with no trainer change."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kill_resume
from mbjax import models, train
from mbjax.checkpoint import official

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'tests' / 'configs' / 'toy_action.py'


@pytest.fixture
def config(tiny_config):
  return lambda arg='short': tiny_config('toy_action', arg)


def _assert_equal(a, b, atol=0.0, rtol=0.0):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_protocol_task_trains_with_batchnorm_state(tmp_path, config):
  c = config()
  summary = train.train_and_evaluate(c, str(tmp_path / 'run'))
  assert summary['step'] == 6
  step, state = kill_resume.final_state(str(tmp_path / 'run'))
  bn = state['model_state']['batch_stats']['head']['bn']
  # Train mode updated the running statistics once per step; they are in the checkpoint.
  assert step == 6 and int(bn['num_batches_tracked']) == 6
  assert float(np.abs(bn['mean']).mean()) > 1e-3
  # Evaluators get the full variables: the statistics of that very state.
  assert summary['toy/bn_batches_tracked'] == 6.0
  np.testing.assert_allclose(summary['toy/bn_mean_abs'], float(np.abs(bn['mean']).mean()),
                             rtol=1e-6)
  initial = jax.device_get(train.setup(c, with_data=False).init_state())
  assert max(float(np.abs(x - y).max()) for x, y in zip(
      jax.tree_util.tree_leaves(state['params']),
      jax.tree_util.tree_leaves(initial['params']))) > 1e-4


@pytest.mark.slow  # ~100 s; sharded training of the built-in tasks: tests/test_sharding.py
def test_protocol_task_on_8_devices_equals_1(tmp_path, config):
  states = []
  for devices, mesh in ((1, dict(data=1, fsdp=1, tensor=1)), (8, dict(data=2, fsdp=4, tensor=1))):
    c = config()
    with c.unlocked():
      c.mesh = mesh
      c.mesh_devices = devices
      c.fsdp = devices > 1
    train.train_and_evaluate(c, str(tmp_path / f'd{devices}'))
    states.append(kill_resume.final_state(str(tmp_path / f'd{devices}'))[1])
  one, eight = states
  # fp32 sums in another order across devices are ~1e-7 apart in the gradients. Adam's normalised
  # update turns that into up to one learning rate per step on the few weights whose gradient is
  # rounding noise, so: all within steps x lr, and all but 0.1% within 1e-5 (measured: 0.04%;
  # typical differences are ~1e-7, where a sharding bug would move most weights).
  a, b = (np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(t['params'])])
          for t in (one, eight))
  steps, lr = 6, 1e-3
  assert np.abs(a - b).max() <= steps * lr
  assert np.mean(np.abs(a - b) > 1e-5) < 1e-3, np.sum(np.abs(a - b) > 1e-5)
  # The running statistics follow those weights: up to 1.1e-4 apart measured, on values of ~0.05.
  _assert_equal(one['model_state'], eight['model_state'], atol=3e-4, rtol=2e-3)


@pytest.mark.slow
def test_protocol_task_resumes_bitwise_after_sigkill(tmp_path):
  args = [f'--config={CONFIG}:long']
  straight, killed = str(tmp_path / 'straight'), str(tmp_path / 'killed')
  kill_resume.run_to_end(args, straight)
  assert 10 <= kill_resume.kill_after_checkpoint(args, killed, min_step=10) < 40
  kill_resume.run_to_end(args, killed)
  (step_a, a), (step_b, b) = kill_resume.final_state(straight), kill_resume.final_state(killed)
  assert step_a == step_b == 40
  _assert_equal(a, b)  # params, BatchNorm statistics, optimizer state, rng: bitwise on CPU


def test_pretrained_dstformer_loads_onto_the_backbone(tmp_path, config):
  c = config()
  backbone = models.from_config({k: v for k, v in c.model.items() if k != 'head'})
  pretrained = backbone.init(jax.random.key(7), jnp.zeros((1, 8, 17, 3)))
  path = tmp_path / 'pretrained.bin'
  official.save_official(pretrained, 'pose', path)
  s = train.setup(c, with_data=False)
  state = s.init_state()
  variables, report = s.task.load_pretrained(jax.device_get(train.variables_of(state)),
                                             str(path))
  want = official.official_to_variables(official.load_official(path), 'pose')['params']
  _assert_equal(variables['params']['backbone'], want)
  # The fresh head and its BatchNorm statistics stay as initialised; all of the file is used.
  assert report['fresh'] and all(k.startswith(('params/head/', 'batch_stats/head/'))
                                 for k in report['fresh'])
  assert report['unused'] == []
  _assert_equal(variables['params']['head'], jax.device_get(state['params']['head']))
  # Training from init_from end to end: tests/test_action.py (the action task's ActionNet).
