"""The JAX SMPL model and the mesh rotation utils against the official / smplx reference vectors."""

import importlib.util
import os
import pickle
import shutil
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbjax import cli
from mbjax.models import smpl
from mbjax.data import rotations

TOL_M = 1e-6  # metres, SMPL outputs
TOL_UTILS = 1e-5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 6  # one batch size everywhere: the jitted forward compiles once per test session
_forward = jax.jit(smpl.smpl_forward)


def _max_err(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


@pytest.fixture(scope='module')
def model_dir(reference_dir):
  return reference_dir / 'smpl_synthetic_tiny'


@pytest.fixture(scope='module')
def model(model_dir):
  return smpl.SMPL.from_file(model_dir)


@pytest.fixture(scope='module')
def ref(reference_dir):
  with np.load(reference_dir / 'smpl_tiny.npz') as f:
    return {k: f[k] for k in f.files}


@pytest.fixture(scope='module')
def mesh_ref(reference_dir):
  with np.load(reference_dir / 'mesh_head_tiny.npz') as f:
    return {k: f[k] for k in f.files if not k.startswith('model/')}


def _random_pose(n, seed=0, scale=0.5):
  """(n, 24, 3, 3) random rotations by Rodrigues' formula in numpy."""
  aa = np.random.default_rng(seed).normal(scale=scale, size=(n, 24, 3))
  angle = np.linalg.norm(aa, axis=-1)[..., None, None]
  x, y, z = np.moveaxis(aa / angle[..., 0], -1, 0)
  k = np.stack([0 * x, -z, y, z, 0 * x, -x, -y, x, 0 * x], -1).reshape(n, 24, 3, 3)
  return (np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k).astype(np.float32)


# --- against the reference -------------------------------------------------------------------


def test_matches_smplx(model, ref):
  out = _forward(model, ref['betas'], ref['rotmats'])
  assert out['vertices'].shape == ref['vertices'].shape and out['vertices'].dtype == jnp.float32
  assert _max_err(out['vertices'], ref['vertices']) <= TOL_M
  assert _max_err(out['joints'], ref['joints']) <= TOL_M
  assert _max_err(model.joints_h36m(out['vertices']), ref['joints_h36m']) <= TOL_M


def test_matches_smplx_pose2rot(model, ref):
  out = jax.jit(smpl.smpl_from_axis_angle)(model, ref['betas'], ref['pose_aa'])
  assert _max_err(out['rotmats'], ref['rotmats_aa']) <= TOL_UTILS
  assert _max_err(out['vertices'], ref['vertices_aa']) <= TOL_M
  assert _max_err(out['joints'], ref['joints_aa']) <= TOL_M


def test_utils_match_official(mesh_ref):
  r = mesh_ref
  cases = {
      'rot6d_to_rotmat': rotations.rot6d_to_rotmat,
      'rotation_matrix_to_angle_axis': rotations.rotation_matrix_to_angle_axis,
      'batch_rodrigues': rotations.batch_rodrigues,
      'flip_thetas': rotations.flip_thetas,
      'flip_thetas_batch': rotations.flip_thetas_batch,
  }
  ins = {k: r[f'{k}/in'] for k in cases}
  ins['quaternion'] = ins['axis_angle_3x3'] = ins['rotation_matrix_to_angle_axis']
  ins['rodrigues_3x3'] = ins['batch_rodrigues']
  cases.update(quaternion=rotations.rotation_matrix_to_quaternion,
               axis_angle_3x3=rotations.rotmat_to_axis_angle,
               rodrigues_3x3=lambda x: rotations.axis_angle_to_rotmat(x).reshape(-1, 9))
  outs = jax.jit(lambda ins: {k: fn(ins[k]) for k, fn in cases.items()})(ins)  # one compile
  outs['quaternion'] = outs['quaternion'], r['rotation_matrix_to_quaternion/out']
  outs['axis_angle_3x3'] = outs['axis_angle_3x3'], r['rotation_matrix_to_angle_axis/out']
  outs['rodrigues_3x3'] = outs['rodrigues_3x3'], r['batch_rodrigues/out']
  for name, out in outs.items():
    out, want = out if isinstance(out, tuple) else (out, r[f'{name}/out'])
    assert out.shape == want.shape, name
    assert _max_err(out, want) <= TOL_UTILS, name
  # The special rows (identity, pi about each axis, tiny angles, near pi) are finite and right.
  special = outs['axis_angle_3x3'][0][64:]
  assert np.all(np.isfinite(special))
  assert _max_err(special, r['rotation_matrix_to_angle_axis/out'][64:]) <= TOL_UTILS


def test_mean_params(model, model_dir):
  with np.load(model_dir / smpl.MEAN_PARAMS_FILE) as f:
    assert np.array_equal(model.mean_pose, f['pose']) and model.mean_pose.dtype == np.float32
    np.testing.assert_allclose(model.mean_shape, f['shape'], rtol=1e-7)
  assert model.J_regressor_h36m.shape == (17, 300) and model.J_regressor_extra.shape == (9, 300)


# --- loading -----------------------------------------------------------------------------------


def _assert_same(a, b):
  assert a.parents == b.parents
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb) == 10
  for x, y in zip(la, lb):
    assert x.dtype == y.dtype and np.array_equal(x, y)


def test_chumpy_pickle_loads_without_chumpy(model, model_dir, monkeypatch):
  assert importlib.util.find_spec('chumpy') is None
  monkeypatch.setitem(sys.modules, 'chumpy', None)  # any `import chumpy` now fails
  with pytest.raises(ImportError):
    import chumpy  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import
  loaded = smpl.SMPL.from_file(model_dir / 'SMPL_NEUTRAL_chumpy.pkl')
  _assert_same(loaded, model)
  raw_plain = smpl.read_arrays(model_dir, with_extras=False)
  raw_chumpy = smpl.read_arrays(model_dir / 'SMPL_NEUTRAL_chumpy.pkl', with_extras=False)
  for key, value in raw_plain.items():
    assert np.array_equal(value, raw_chumpy[key]), key


def test_file_semantics(model, model_dir):
  raw = smpl.read_arrays(model_dir / 'SMPL_NEUTRAL.pkl')
  assert model.parents[0] == -1 and model.parents[1:] == tuple(raw['kintree_table'][0, 1:])
  assert np.array_equal(model.shapedirs, raw['shapedirs'][:, :, :10].astype(np.float32))
  assert np.array_equal(model.posedirs, raw['posedirs'].reshape(-1, 207).T.astype(np.float32))
  assert model.J_regressor.shape == (24, 300) and isinstance(model.J_regressor, np.ndarray)
  assert model.faces.shape == (596, 3) and model.faces.dtype == np.int32


def test_to_npz_round_trip(model, model_dir, tmp_path):
  out = tmp_path / 'smpl.npz'
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, '-m', 'mbjax.models.smpl', '--to-npz', str(model_dir),
                         str(out)], env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert '300 vertices' in proc.stdout and 'Warning' not in proc.stderr, proc.stderr
  _assert_same(smpl.SMPL.from_file(out), model)
  raw_npz, raw_pkl = smpl.read_arrays(out), smpl.read_arrays(model_dir)
  assert sorted(raw_npz) == sorted(raw_pkl)
  for key, value in raw_pkl.items():
    assert np.array_equal(value, raw_npz[key]), key
  with pytest.raises(SystemExit) as e:  # written once: an existing OUT is a one-line error
    cli.call('mbjax.models.smpl', smpl.write_npz, str(model_dir), str(out))
  assert e.value.code == 1


# --- invariants --------------------------------------------------------------------------------


def test_zero_pose_and_shape_is_template(model):
  out = _forward(model, np.zeros((N, 10)), np.tile(np.eye(3), (N, 24, 1, 1)))
  assert _max_err(out['vertices'], np.broadcast_to(model.v_template, (N, 300, 3))) <= TOL_M
  np.testing.assert_allclose(out['joints'][0], model.J_regressor @ model.v_template, atol=TOL_M)


def test_joints_regress_rest_mesh_at_zero_pose(model):
  betas = np.random.default_rng(1).normal(size=(N, 10)).astype(np.float32)
  out = _forward(model, betas, np.tile(np.eye(3), (N, 24, 1, 1)))
  rest = model.v_template + np.einsum('nl,vcl->nvc', betas, model.shapedirs)
  assert _max_err(out['vertices'], rest) <= TOL_M
  assert _max_err(out['joints'], np.einsum('jv,nvc->njc', model.J_regressor, rest)) <= TOL_M


def test_root_rotation_rotates_mesh_about_root(model):
  betas = np.random.default_rng(2).normal(size=(N, 10)).astype(np.float32)
  rotmats = _random_pose(N, seed=3)
  unrotated = rotmats.copy()
  unrotated[:, 0] = np.eye(3)
  out, base = _forward(model, betas, rotmats), _forward(model, betas, unrotated)
  root = np.asarray(base['joints'][:, :1])
  want = np.einsum('nab,nvb->nva', rotmats[:, 0], np.asarray(base['vertices']) - root) + root
  assert _max_err(out['vertices'], want) <= TOL_M
  assert _max_err(out['joints'][:, 0], base['joints'][:, 0]) <= TOL_M


def _numpy_lbs(arrays, betas, rotmats):
  """Plain float64 SMPL written out joint by joint and vertex by vertex."""
  V = arrays['v_template'].shape[0]
  parents = list(arrays['kintree_table'][0])
  shapedirs, posedirs, weights = arrays['shapedirs'], arrays['posedirs'], arrays['weights']
  verts = np.zeros((len(betas), V, 3))
  joints = np.zeros((len(betas), 24, 3))
  for n in range(len(betas)):
    rest = arrays['v_template'].copy()
    for l in range(10):
      rest += betas[n, l] * shapedirs[:, :, l]
    j_rest = arrays['J_regressor'] @ rest
    posed = rest.copy()
    for k in range(1, 24):
      for a in range(3):
        for b in range(3):
          posed += (rotmats[n, k, a, b] - (a == b)) * posedirs[:, :, (k - 1) * 9 + a * 3 + b]
    world = [None] * 24
    for k in range(24):
      local = np.eye(4)
      local[:3, :3] = rotmats[n, k]
      local[:3, 3] = j_rest[k] - (j_rest[parents[k]] if k else 0)
      world[k] = local if k == 0 else world[parents[k]] @ local
      joints[n, k] = world[k][:3, 3]
    skin = []
    for k in range(24):
      undo = np.eye(4)
      undo[:3, 3] = -j_rest[k]
      skin.append(world[k] @ undo)
    for v in range(V):
      t = sum(weights[v, k] * skin[k] for k in range(24))
      verts[n, v] = t[:3, :3] @ posed[v] + t[:3, 3]
  return verts, joints


def test_independent_numpy_lbs(model, model_dir):
  arrays = smpl.read_arrays(model_dir, with_extras=False)
  betas = np.random.default_rng(4).normal(size=(N, 10)).astype(np.float32)
  rotmats = _random_pose(N, seed=5, scale=0.8)
  verts, joints = _numpy_lbs(arrays, betas[:2].astype(np.float64), rotmats[:2].astype(np.float64))
  out = _forward(model, betas, rotmats)
  assert _max_err(out['vertices'][:2], verts) <= TOL_M
  assert _max_err(out['joints'][:2], joints) <= TOL_M


# --- embedding, batching, precision ------------------------------------------------------------


class _TinyMeshHead(nn.Module):
  """The way a Flax head embeds SMPL: an attribute whose arrays are constants, not params."""

  body: smpl.SMPL

  @nn.compact
  def __call__(self, betas, rotmats):
    betas = betas + self.param('offset', nn.initializers.zeros_init(), (10,))
    return self.body(betas, rotmats)['vertices'] * 1000.0


def test_flax_head_embeds_smpl_and_bf16(model, ref):
  head = _TinyMeshHead(body=model)
  shapes = jax.eval_shape(head.init, jax.random.key(0), ref['betas'], ref['rotmats'])
  assert jax.tree.map(lambda x: x.shape, shapes) == {'params': {'offset': (10,)}}  # no SMPL
  variables = {'params': {'offset': jnp.zeros(10)}}
  mm = jax.jit(head.apply)(variables, ref['betas'], ref['rotmats'])
  assert _max_err(mm / 1000.0, ref['vertices']) <= TOL_M
  # Leading (N, T) axes, bf16 inputs: computed in float32, returned float32.
  betas16 = jnp.asarray(ref['betas'], jnp.bfloat16).reshape(2, 3, 10)
  rot16 = jnp.asarray(ref['rotmats'], jnp.bfloat16).reshape(2, 3, 24, 3, 3)
  out = jax.jit(smpl.smpl_forward)(model, betas16, rot16)
  assert out['vertices'].shape == (2, 3, 300, 3) and out['vertices'].dtype == jnp.float32
  want = _forward(model, np.asarray(betas16, np.float32).reshape(6, 10),
                  np.asarray(rot16, np.float32).reshape(6, 24, 3, 3))
  assert _max_err(out['vertices'].reshape(6, 300, 3), want['vertices']) <= TOL_M


def test_bad_inputs(model):
  with pytest.raises(ValueError, match=r'betas \(\.\.\., 10\)'):
    smpl.smpl_forward(model, np.zeros((2, 9)), np.zeros((2, 24, 3, 3)))
  with pytest.raises(ValueError, match='batch axes'):
    smpl.smpl_forward(model, np.zeros((2, 10)), np.zeros((3, 24, 3, 3)))


# --- clear errors --------------------------------------------------------------------------------


def test_missing_files(model_dir, tmp_path):
  with pytest.raises(FileNotFoundError, match='SMPL_NEUTRAL.pkl not found.*smpl.is.tue.mpg.de'):
    smpl.SMPL.from_file(tmp_path)
  shutil.copy(model_dir / 'SMPL_NEUTRAL.pkl', tmp_path)
  with pytest.raises(FileNotFoundError, match='J_regressor_h36m_correct.npy not found'):
    smpl.SMPL.from_file(tmp_path)
  assert smpl.SMPL.from_file(tmp_path, with_extras=False).J_regressor_h36m is None
  (tmp_path / 'x.npz').write_bytes(b'not a zip')
  with pytest.raises(ValueError, match='x.npz: not a readable numpy file'):
    smpl.SMPL.from_file(tmp_path / 'x.npz')
  np.save(tmp_path / smpl.H36M_REGRESSOR_FILE, np.zeros((17, 300)))
  np.save(tmp_path / smpl.EXTRA_REGRESSOR_FILE, np.zeros((9, 300)))
  np.savez(tmp_path / smpl.MEAN_PARAMS_FILE, pose=np.zeros(144))
  with pytest.raises(ValueError, match="smpl_mean_params.npz: key 'shape' missing"):
    smpl.SMPL.from_file(tmp_path)
  (tmp_path / 'broken.pkl').write_bytes(b'\x80\x02garbage')
  with pytest.raises(ValueError, match='broken.pkl: not a readable SMPL model pickle'):
    smpl.SMPL.from_file(tmp_path / 'broken.pkl', with_extras=False)


def _write_variant(model_dir, folder, change):
  """SMPL_NEUTRAL.pkl (plain arrays, protocol 2) and the extras in `folder`, after `change`."""
  arrays = smpl.read_arrays(model_dir, with_extras=False)
  change(arrays)
  folder.mkdir()
  with open(folder / 'SMPL_NEUTRAL.pkl', 'wb') as f:
    pickle.dump(arrays, f, protocol=2)
  for name in (smpl.H36M_REGRESSOR_FILE, smpl.EXTRA_REGRESSOR_FILE, smpl.MEAN_PARAMS_FILE):
    shutil.copy(model_dir / name, folder)
  return folder


def test_wrong_key_and_shape(model, model_dir, tmp_path):
  ok = _write_variant(model_dir, tmp_path / 'ok', lambda a: None)
  _assert_same(smpl.SMPL.from_file(ok), model)
  d = _write_variant(model_dir, tmp_path / 'nokey', lambda a: a.pop('posedirs'))
  with pytest.raises(ValueError, match=r"SMPL_NEUTRAL.pkl: key 'posedirs' missing"):
    smpl.SMPL.from_file(d)
  d = _write_variant(model_dir, tmp_path / 'shape',
                     lambda a: a.update(posedirs=a['posedirs'][..., :200]))
  with pytest.raises(ValueError, match=r"'posedirs' has shape \(300, 3, 200\), expected "
                     r'\(300, 3, 207\)'):
    smpl.SMPL.from_file(d)
  d = _write_variant(model_dir, tmp_path / 'verts', lambda a: a.update(weights=a['weights'][:9]))
  with pytest.raises(ValueError, match=r"'weights' has shape \(9, 24\), expected \(300, 24\)"):
    smpl.SMPL.from_file(d)
  d = _write_variant(model_dir, tmp_path / 'extra', lambda a: None)
  np.save(d / smpl.H36M_REGRESSOR_FILE, np.zeros((17, 5)))
  with pytest.raises(ValueError, match=r"'J_regressor_h36m' has shape \(17, 5\), expected "
                     r'\(17, 300\)'):
    smpl.SMPL.from_file(d)
  np.savez(tmp_path / 'plain.npz', v_template=model.v_template)
  with pytest.raises(ValueError, match='not an mbjax SMPL npz'):
    smpl.SMPL.from_file(tmp_path / 'plain.npz')
