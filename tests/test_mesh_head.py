"""MeshNet (DSTformer + SMPL regressor) against the official MeshRegressor, and its conversion."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

from mbjax import convert
from mbjax.checkpoint import converted, official
from mbjax.checkpoint import torch_zip as torch_format
from mbjax.models import ActionNet, MeshNet, from_config, mesh_flip_test
from mbjax.models.smpl import SMPL

ROOT = pathlib.Path(__file__).resolve().parents[1]
THETA_TOL = 1e-4
MM_TOL = 0.05
_BACKBONE_KEYS = ('dim_in', 'dim_out', 'dim_feat', 'dim_rep', 'depth', 'num_heads', 'mlp_ratio',
                  'num_joints', 'maxlen')


def _max_err(a, b):
  return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


@pytest.fixture(scope='module')
def mesh_ref(reference_dir):
  data = np.load(reference_dir / 'mesh_head_tiny.npz')
  config = json.loads(str(data['config']))
  state_dict = {k[len('model/'):]: data[k] for k in data.files if k.startswith('model/')}
  smpl = SMPL.from_file(reference_dir / config['data_root'])
  model_config = dict({k: config[k] for k in _BACKBONE_KEYS},
                      head=dict(version='mesh', hidden_dim=config['hidden_dim'],
                                dropout_ratio=config['dropout_ratio']))
  model = from_config(model_config, smpl=smpl)
  variables = official.official_to_variables(state_dict, 'mesh')
  return dict(data=data, config=config, state_dict=state_dict, smpl=smpl, model=model,
              variables=variables, model_config=model_config)


def test_mesh_net_matches_official_under_jit(mesh_ref):
  data, model = mesh_ref['data'], mesh_ref['model']
  assert isinstance(model, MeshNet)
  out = jax.jit(model.apply)(mesh_ref['variables'], data['x'])  # batch 2
  assert {k: v.shape for k, v in out.items()} == {
      'theta': (2, 16, 82), 'verts': (2, 16, 300, 3), 'kp_3d': (2, 16, 17, 3)}
  assert _max_err(out['theta'], data['theta']) <= THETA_TOL
  assert _max_err(out['verts'], data['verts']) <= MM_TOL
  assert _max_err(out['kp_3d'], data['kp_3d']) <= MM_TOL


def test_flip_test_matches_official(mesh_ref):
  data, model, variables = mesh_ref['data'], mesh_ref['model'], mesh_ref['variables']
  from mbjax.data.transforms import flip_pose
  flipped = model.apply(variables, flip_pose(data['x']))
  assert _max_err(flipped['theta'], data['flip/theta_of_flipped_input']) <= THETA_TOL
  out = jax.jit(lambda v, x: mesh_flip_test(model, v, x))(variables, data['x'])
  assert _max_err(out['theta'], data['flip/theta']) <= THETA_TOL
  assert _max_err(out['verts'], data['flip/verts']) <= MM_TOL
  assert _max_err(out['kp_3d'], data['flip/kp_3d']) <= MM_TOL


def test_parity_catches_a_wrong_init_pose(mesh_ref):
  data, model = mesh_ref['data'], mesh_ref['model']
  variables = jax.tree_util.tree_map(np.array, mesh_ref['variables'])
  pose = variables['constants']['head']['init_pose']
  variables['constants']['head']['init_pose'] = pose.reshape(24, 3, 2).swapaxes(1, 2).reshape(-1)
  assert _max_err(model.apply(variables, data['x'])['theta'], data['theta']) > 100 * THETA_TOL


def test_init_is_the_official_scheme_and_constants_are_the_mean_params(mesh_ref):
  model, smpl = mesh_ref['model'], mesh_ref['smpl']
  variables = meta.unbox(jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 4, 17, 3))))
  head = variables['params']['head']
  hidden = mesh_ref['config']['hidden_dim']
  fan_in = 17 * mesh_ref['config']['dim_rep']
  for name, fan_out in (('head_pose', 144), ('head_shape', 10)):
    bound = 0.01 * (6 / (hidden + fan_out)) ** 0.5  # xavier_uniform_(gain=0.01)
    k = np.abs(head[name]['kernel'])
    assert k.max() <= bound and k.max() > 0.8 * bound, name
    assert 0.5 * hidden ** -0.5 < np.abs(head[name]['bias']).max() <= hidden ** -0.5, name
  for name in ('fc1', 'fc2'):  # torch's default Linear init (not re-initialised officially)
    assert 0.9 * fan_in ** -0.5 < np.abs(head[name]['kernel']).max() <= fan_in ** -0.5
  np.testing.assert_array_equal(head['bn1']['scale'], 1.0)
  np.testing.assert_array_equal(variables['constants']['head']['init_pose'], smpl.mean_pose)
  np.testing.assert_array_equal(variables['constants']['head']['init_shape'], smpl.mean_shape)
  assert sorted(variables) == ['batch_stats', 'constants', 'params']
  np.testing.assert_array_equal(variables['batch_stats']['head']['bn2']['var'], 1.0)


def test_train_mode_updates_batch_stats_and_keeps_constants(mesh_ref):
  data, model, variables = mesh_ref['data'], mesh_ref['model'], mesh_ref['variables']
  step = jax.jit(lambda v, x, rng: model.apply(v, x, train=True, rngs={'dropout': rng},
                                               mutable=['batch_stats', 'constants']))
  out, state = step(variables, data['x'], jax.random.key(0))
  assert _max_err(out['theta'], data['theta']) > THETA_TOL  # batch statistics, dropout
  # The same pass, its fc outputs captured: torch BatchNorm1d's update by hand (momentum 0.1,
  # unbiased batch variance) over frames (bn1, pose) and clips (bn2, shape).
  _, captured = model.apply(variables, data['x'], train=True, rngs={'dropout': jax.random.key(0)},
                            capture_intermediates=True,
                            mutable=['batch_stats', 'constants', 'intermediates'])
  for bn, fc, rows in (('bn1', 'fc1', 2 * 16), ('bn2', 'fc2', 2)):
    h = np.asarray(captured['intermediates']['head'][fc]['__call__'][0], np.float64)
    assert h.shape == (rows, mesh_ref['config']['hidden_dim'])
    old, new = variables['batch_stats']['head'][bn], state['batch_stats']['head'][bn]
    assert int(new['num_batches_tracked']) == int(old['num_batches_tracked']) + 1
    np.testing.assert_allclose(new['mean'], 0.9 * np.asarray(old['mean']) + 0.1 * h.mean(0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new['var'], 0.9 * np.asarray(old['var']) + 0.1 * h.var(0, ddof=1),
                               rtol=1e-5, atol=1e-6)
  jax.tree_util.tree_map(np.testing.assert_array_equal, state['constants'],
                         variables['constants'])
  grads = jax.jit(jax.grad(lambda p: jnp.mean(model.apply(
      dict(variables, params=p), data['x'], train=True, rngs={'dropout': jax.random.key(1)},
      mutable=['batch_stats'])[0]['kp_3d'] ** 2)))(variables['params'])
  assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))
  assert np.abs(grads['head']['head_shape']['kernel']).max() > 0


def test_factory_reads_smpl_dir_and_keeps_action_heads(mesh_ref, reference_dir):
  head = dict(mesh_ref['model_config']['head'], smpl_dir=str(reference_dir / 'smpl_synthetic_tiny'))
  model = from_config(dict(mesh_ref['model_config'], head=head))
  assert isinstance(model, MeshNet) and model.smpl.num_vertices == 300
  assert model.hidden_dim == 64 and model.dropout_ratio == 0.1
  with pytest.raises(ValueError, match="version='mesh' needs smpl_dir"):
    from_config(dict(mesh_ref['model_config']))
  with pytest.raises(ValueError, match=r"unknown field\(s\) \['num_classes'\]"):
    from_config(dict(mesh_ref['model_config'], head=dict(head, num_classes=3)))
  action = from_config(dict(mesh_ref['model_config'], head=dict(version='class', num_classes=5)))
  assert isinstance(action, ActionNet)


def _released_layout(state_dict):
  """The reference state dict as a released checkpoint holds it: BatchNorm counters present, and
  smplx's unused batch-64 parameters zero (they never get a gradient)."""
  sd = dict(state_dict)
  for bn in ('bn1', 'bn2'):
    sd[f'module.head.{bn}.num_batches_tracked'] = np.array(321, np.int64)
  for name in ('betas', 'global_orient', 'body_pose'):
    sd[f'module.head.smpl.{name}'] = np.zeros_like(sd[f'module.head.smpl.{name}'])
  return sd


def _assert_same_state_dict(a, b):
  assert sorted(a) == sorted(b)
  for k in a:
    assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_official_flax_official_is_identity_through_a_bin(mesh_ref, tmp_path):
  sd = _released_layout(mesh_ref['state_dict'])
  path = tmp_path / 'mesh.bin'
  torch_format.save({'epoch': 3, 'model': sd, 'best_jpe': 80.5}, path)
  loaded = official.load_official(path)
  assert official.official_kind(loaded) == 'mesh'
  variables = official.official_to_variables(loaded, 'mesh')
  assert sorted(variables) == ['batch_stats', 'constants', 'params']
  assert 'smpl' not in variables['params']['head']  # the SMPL comes from the user's files
  assert int(variables['batch_stats']['head']['bn1']['num_batches_tracked']) == 321
  official.check_smpl_buffers(loaded, mesh_ref['smpl'])
  back = tmp_path / 'back.bin'
  official.save_official(variables, 'mesh', back, smpl=mesh_ref['smpl'],
                        vertex_ids=mesh_ref['config']['vertex_ids_smplh'])
  _assert_same_state_dict(official.load_official(back), sd)


def test_mesh_conversion_errors_are_clear(mesh_ref):
  variables = mesh_ref['variables']
  with pytest.raises(ValueError, match="pass smpl="):
    official.variables_to_official(variables, 'mesh')
  with pytest.raises(ValueError, match='300 vertices .not 6890.: give the vertex ids'):
    official.variables_to_official(variables, 'mesh', smpl=mesh_ref['smpl'])
  sd = dict(mesh_ref['state_dict'])
  sd['module.head.smpl.v_template'] = sd['module.head.smpl.v_template'] + 1e-3
  with pytest.raises(ValueError, match='v_template differs from the given SMPL model'):
    official.check_smpl_buffers(sd, mesh_ref['smpl'])


def _cli(*args) -> int:
  return convert.main(convert.parse_flags(['mbjax.convert', *args]))


def _tiny_variants(monkeypatch, config):
  """The reference's tiny DSTformer as a 'release' variant, so the CLI accepts its checkpoint."""
  from mbjax.models import dstformer
  tiny = {k: config[k] for k in ('dim_feat', 'mlp_ratio', 'depth', 'dim_rep', 'num_heads',
                                 'maxlen')}
  monkeypatch.setitem(dstformer.VARIANTS, 'release', tiny)


def test_cli_mesh_round_trip_and_restore(mesh_ref, reference_dir, tmp_path, monkeypatch):
  _tiny_variants(monkeypatch, mesh_ref['config'])
  sd = _released_layout(mesh_ref['state_dict'])
  src, out, back = tmp_path / 'mesh.bin', tmp_path / 'ckpt', tmp_path / 'back.bin'
  torch_format.save({'model': sd}, src)
  smpl_dir = str(reference_dir / 'smpl_synthetic_tiny')
  with pytest.raises(ValueError, match='--model mesh: pass --smpl_dir'):
    _cli(str(src), str(out), '--model', 'mesh')
  assert _cli(str(src), str(out), '--model', 'mesh', '--smpl_dir', smpl_dir) == 0
  module, variables = converted.restore(out)
  assert isinstance(module, MeshNet)
  x = mesh_ref['data']['x']
  assert _max_err(module.apply(variables, x)['verts'], mesh_ref['data']['verts']) <= MM_TOL
  assert _cli('--to-official', str(out), str(back)) == 0  # SMPL from config.json's smpl_dir
  _assert_same_state_dict(official.load_official(back), sd)


def test_cli_mesh_without_smpl_dir_says_so_in_one_line(mesh_ref, tmp_path):
  import subprocess
  import sys
  src = tmp_path / 'mesh.bin'
  torch_format.save({'model': _released_layout(mesh_ref['state_dict'])}, src)
  result = subprocess.run([sys.executable, '-m', 'mbjax.convert', str(src), str(tmp_path / 'o'),
                           '--model', 'mesh'], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  lines = result.stderr.strip().splitlines()
  assert result.returncode != 0 and len(lines) == 1, result.stderr
  assert lines[0].startswith('mbjax.convert: ') and 'pass --smpl_dir' in lines[0]
