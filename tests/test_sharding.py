"""Sharded training on 8 fake CPU devices equals 1-device training: data parallel, FSDP, data x
tensor parallel; a checkpoint saved on the FSDP mesh restores on a 1-device mesh.

Every run is the real trainer (`train.train_and_evaluate`) on the same ArrayRecord data; the mesh
is restricted with `config.mesh_devices`. Training that goes on after a change of mesh and of
process count is checked in test_distributed.py.
"""

import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

import param_compare
from mbjax import train
from mbjax.logs import metric_writer
from mbjax.train import sharding

STEPS = 4
ATOL = 1e-5  # fp32; observed differences are ~5e-7 (reduction order across devices)

MESHES = {
    'data': (dict(data=8, fsdp=1, tensor=1), {}),
    'fsdp': (dict(data=2, fsdp=4, tensor=1), dict(fsdp=True)),
    'tensor': (dict(data=4, fsdp=1, tensor=2), dict(tensor_parallel=True)),
}



@pytest.fixture(scope='module')
def make_config(tiny_config, pretrain_data_dir):
  """fn(mesh=..., mesh_devices=0, **switches) -> tiny_pretrain without evals, on that mesh."""

  def make(*, mesh, mesh_devices=0, **switches):
    c = tiny_config('tiny_pretrain', pretrain_data_dir)
    c.evals = ml_collections.ConfigDict()  # parameters are what is compared; evals cost compiles
    c.total_steps = STEPS
    c.mesh = mesh
    c.mesh_devices = mesh_devices
    c.checkpoint.every_steps = STEPS
    c.checkpoint.async_save = False
    for key, value in switches.items():
      c[key] = value
    return c

  return make


def _run(config, workdir):
  summary = train.train_and_evaluate(config, str(workdir))
  assert summary['step'] == config.total_steps
  return summary


def _host(tree):
  return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def _assert_close(got, want, atol=ATOL):
  param_compare.assert_close(got, want, atol)


@pytest.fixture(scope='module')
def reference(make_config, tmp_path_factory):
  """The 1-device run: (summary, workdir)."""
  workdir = tmp_path_factory.mktemp('one_device')
  config = make_config(mesh=dict(data=1, fsdp=1, tensor=1), mesh_devices=1)
  summary = _run(config, workdir)
  for x in jax.tree_util.tree_leaves(summary['state']['params']):
    assert len(x.sharding.device_set) == 1
  return summary, workdir


@pytest.fixture(scope='module')
def sharded_runs(make_config, tmp_path_factory):
  """name -> (summary, workdir) of the 8-device runs, computed on first use."""
  runs = {}

  def get(name):
    if name not in runs:
      mesh, switches = MESHES[name]
      workdir = tmp_path_factory.mktemp(f'mesh_{name}')
      runs[name] = (_run(make_config(mesh=mesh, **switches), workdir), workdir)
    return runs[name]

  return get


def _param(state, *path):
  leaf = state['params']
  for key in path:
    leaf = leaf[key]
  return leaf


def _losses(workdir):
  return [r['loss'] for r in metric_writer.read_jsonl(workdir / 'metrics.jsonl') if 'loss' in r]


@pytest.mark.parametrize('name', sorted(MESHES))
def test_sharded_training_matches_one_device(name, reference, sharded_runs):
  (want, want_dir), (got, got_dir) = reference, sharded_runs(name)
  params = got['state']['params']
  leaves = jax.tree_util.tree_leaves(params)
  assert all(len(x.sharding.device_set) == 8 for x in leaves)
  assert dict(leaves[0].sharding.mesh.shape) == MESHES[name][0]
  # Every step moves the parameters by far more than the tolerance, so equality means something.
  assert want['update_norm'] > 100 * ATOL
  np.testing.assert_allclose(_losses(got_dir), _losses(want_dir), rtol=0, atol=ATOL)
  assert len(_losses(got_dir)) == STEPS
  _assert_close(_host(params), _host(want['state']['params']))


def test_fsdp_shards_parameters_and_moments(sharded_runs):
  summary, _ = sharded_runs('fsdp')
  state = summary['state']
  qkv = _param(state, 'blocks_st_0', 'attn_s', 'qkv', 'kernel')  # (embed, qkv) = (64, 192)
  proj = _param(state, 'blocks_st_0', 'attn_s', 'proj', 'kernel')  # (heads*dim, embed)
  fc2 = _param(state, 'blocks_ts_0', 'mlp_t', 'fc2', 'kernel')  # (mlp, embed) = (128, 64)
  assert qkv.sharding.spec == P('fsdp', None)
  assert proj.sharding.spec == P(None, 'fsdp')
  assert fc2.sharding.spec == P(None, 'fsdp')
  # Each device holds a quarter of the embed dimension, replicated over the 2 data rows.
  assert {s.data.shape for s in qkv.addressable_shards} == {(16, 192)}
  assert {s.data.shape for s in fc2.addressable_shards} == {(128, 16)}
  # Adam moments follow their parameters (optax.tree_map_params in sharding.opt_state_shardings).
  moments = [x for x in jax.tree_util.tree_leaves(state['opt_state'])
             if getattr(x, 'shape', None) == qkv.shape]
  assert moments and all(m.sharding.spec == P('fsdp', None) for m in moments)
  # Most parameter elements are sharded (only a few vectors without an embed axis are not).
  leaves = jax.tree_util.tree_leaves(state['params'])
  sharded = sum(x.size for x in leaves if 'fsdp' in x.sharding.spec)
  assert sharded / sum(x.size for x in leaves) > 0.9


def test_tensor_parallel_shards_heads_and_mlp(sharded_runs):
  summary, _ = sharded_runs('tensor')
  state = summary['state']
  qkv = _param(state, 'blocks_st_0', 'attn_t', 'qkv', 'kernel')  # (64, 192): columns split
  proj = _param(state, 'blocks_st_0', 'attn_t', 'proj', 'kernel')  # (64, 64): rows split
  fc1 = _param(state, 'blocks_ts_0', 'mlp_s', 'fc1', 'kernel')  # (64, 128): columns split
  fc2 = _param(state, 'blocks_ts_0', 'mlp_s', 'fc2', 'kernel')  # (128, 64): rows split
  assert qkv.sharding.spec == P(None, 'tensor')
  assert proj.sharding.spec == P('tensor', None)
  assert fc1.sharding.spec == P(None, 'tensor')
  assert fc2.sharding.spec == P('tensor', None)
  assert {s.data.shape for s in qkv.addressable_shards} == {(64, 96)}
  assert {s.data.shape for s in fc2.addressable_shards} == {(64, 64)}
  # Parameters without a tensor axis stay replicated (no fsdp switch here).
  norm = _param(state, 'blocks_st_0', 'norm1_s', 'scale')
  assert norm.sharding.is_fully_replicated


def test_fsdp_checkpoint_restores_on_one_device(tmp_path, make_config, sharded_runs):
  summary, fsdp_workdir = sharded_runs('fsdp')
  workdir = tmp_path / 'resumed'
  shutil.copytree(fsdp_workdir, workdir)
  # The trainer restarted at the saved step on a 1-device mesh restores the whole state there.
  config = make_config(mesh=dict(data=1, fsdp=1, tensor=1), mesh_devices=1)
  restored = _run(config, workdir)['state']
  for x in jax.tree_util.tree_leaves(restored):
    assert len(x.sharding.device_set) == 1 and x.sharding.is_fully_replicated
  saved = _host(summary['state'])
  assert int(restored['step']) == int(saved['step']) == STEPS
  jax.tree_util.tree_map(np.testing.assert_array_equal, _host(restored['params']),
                         saved['params'])
  jax.tree_util.tree_map(np.testing.assert_array_equal, _host(restored['opt_state']),
                         saved['opt_state'])
  np.testing.assert_array_equal(_host(restored['rng']), saved['rng'])


@pytest.mark.parametrize('through_trainer', [False, True])
def test_train_step_applies_activation_constraints(make_config, through_trainer):
  """`train.jit_train_step` traces under the mesh, so the model's `activation_*` constraints reach
  XLA; a plain jax.jit of the same step drops them (Flax needs a mesh in context)."""
  from mbjax.tasks import pretrain
  config = make_config(mesh=dict(data=4, fsdp=1, tensor=2), tensor_parallel=True)
  mesh = sharding.make_mesh(dict(config.mesh))
  rules = sharding.logical_rules(tensor=True)
  model = pretrain.make_model(config)
  tx = optax.adamw(1e-3)
  layout = train.state_layout(model, tx, pretrain.example_batch(config), mesh, rules, 0)
  step = train.make_train_step(pretrain, model, tx, optax.constant_schedule(1e-3), rules, config)
  jitted = (train.jit_train_step(step, layout, mesh) if through_trainer
            else jax.jit(step, static_argnums=2))
  batch = {k: jax.ShapeDtypeStruct((8, 9, 17, 1 if k == 'conf' else 3), jnp.float32,
                                   sharding=layout.batch_shardings[k])
           for k in ('input', 'target', 'conf')}
  state = jax.tree_util.tree_map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), layout.abstract,
      layout.shardings)
  text = jitted.lower(state, batch, '3d').as_text()
  constraints = text.count('sharding_constraint') + text.count('@Sharding')
  assert (constraints > 0) == through_trainer, constraints


def test_parallelism_switch_over_a_one_device_axis_is_rejected():
  with pytest.raises(ValueError, match=r'^config.fsdp=True but config.mesh.fsdp=1: .*set '
                     r'--config.mesh.fsdp=N .* or use the fsdp=N variant$'):
    sharding.check_parallelism(dict(data=-1, fsdp=1, tensor=1), fsdp=True, tensor=False)
  with pytest.raises(ValueError, match=r'^config.tensor_parallel=True but config.mesh.tensor=1: '
                     r'.*set --config.mesh.tensor=N .* or use the tp=N variant$'):
    sharding.check_parallelism(sharding.make_mesh(dict(data=8)), fsdp=False, tensor=True)
  with pytest.raises(ValueError, match='config.mesh.fsdp=1'):  # an axis left out is size 1
    sharding.check_parallelism({}, fsdp=True, tensor=True)


def test_parallelism_check_passes_real_axes_and_switches_off():
  sharding.check_parallelism(dict(data=-1, fsdp=1, tensor=1), fsdp=False, tensor=False)
  # -1: sized from the devices later.
  sharding.check_parallelism(dict(data=2, fsdp=-1, tensor=1), fsdp=True, tensor=False)
  for mesh, switches in MESHES.values():
    on = dict(fsdp=switches.get('fsdp', False), tensor=switches.get('tensor_parallel', False))
    sharding.check_parallelism(sharding.make_mesh(mesh), **on)
    sharding.check_parallelism(mesh, **on)
