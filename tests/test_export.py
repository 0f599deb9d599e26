"""mbjax.export: StableHLO and ONNX files of the tiny pose model and both action heads, and
StableHLO and ONNX of a tiny mesh model, called back at two (B, T) shapes and compared
with the model itself; their sidecars and mistakes."""

import hashlib
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

import mbjax.export
from mbjax import models
from mbjax.checkpoint import converted, official
from mbjax.data import skeletons
from mbjax.evaluate import h36m
from mbjax.infer import model as model_lib
from mbjax.models import dstformer, mesh_head

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAXLEN = 9
TINY = dict(dstformer.TINY, maxlen=MAXLEN)
SHAPES = ((2, MAXLEN), (3, 5))  # (B, T): two shapes from one file
KINDS = ('pose', 'action-class', 'action-embed')
# jax2onnx comes with the README's install (requirements-no-deps.txt), so ONNX is tested, never
# skipped; tests/test_install.py names a missing pin.
FORMATS = ('stablehlo', 'onnx')


def _action_config(kind):
  name = 'action_ntu60.py:xsub' if kind == 'action-class' else 'action_ntu120_oneshot.py:ft'
  c = model_lib.load_config_file(f'configs/{name}')
  c.model.update(TINY)
  c.model.head.update(hidden_dim=32)  # the class head's hidden layer is 2048 (official)
  c.clip_len = MAXLEN
  return c


def _input(kind, b, t, seed=0):
  shape = (b, t, 17, 3) if kind == 'pose' else (b, 2, t, 17, 3)
  return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _random_variables(model, x):
  """Random variables of `model` without running its init (eager init costs ~15 s here); small
  weights keep outputs O(1), so that an absolute tolerance means the same for every head."""
  rng = np.random.default_rng(0)
  abstract = meta.unbox(jax.eval_shape(model.init, jax.random.key(0), x))

  def value(path, a):
    if not np.issubdtype(a.dtype, np.floating):
      return np.zeros(a.shape, a.dtype)
    if any(getattr(k, 'key', None) == 'var' for k in path):
      return rng.uniform(0.5, 1.5, a.shape).astype(a.dtype)
    return rng.normal(0, 0.05, a.shape).astype(a.dtype)

  return jax.tree_util.tree_map_with_path(value, abstract)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
  """kind -> (checkpoint path, config or None, reference fn x -> model.apply(variables, x))."""
  root = tmp_path_factory.mktemp('ckpt')
  found = {}
  pose = models.from_config(TINY)
  variables = _random_variables(pose, jnp.zeros((1, MAXLEN, 17, 3)))
  converted.save(root / 'pose', variables, {'model': 'pose', 'backbone': dict(TINY)})
  found['pose'] = (str(root / 'pose'), None, jax.jit(lambda x: pose.apply(variables, x)))
  for kind in KINDS[1:]:
    config = _action_config(kind)
    model = models.from_config(config.model)
    v = _random_variables(model, jnp.zeros((1, 2, MAXLEN, 17, 3)))
    official.save_official(v, kind, root / f'{kind}.bin')
    found[kind] = (str(root / f'{kind}.bin'), config,
                   jax.jit(lambda x, m=model, v=v: m.apply(v, x)))
  return found


@pytest.fixture(scope='module')
def exported(checkpoints, tmp_path_factory):
  """(kind, format) -> (file, sidecar) of every kind in both formats."""
  out = tmp_path_factory.mktemp('export')
  files = {}
  for kind, (path, config, _) in checkpoints.items():
    for fmt in FORMATS:
      file = str(out / f'{kind}.{"hlo" if fmt == "stablehlo" else "onnx"}')
      files[kind, fmt] = file, mbjax.export.export(path, file, fmt, config)
  return files


@pytest.mark.parametrize('fmt,tol', [('stablehlo', 1e-6),
                                     ('onnx', 1e-4)])
@pytest.mark.parametrize('kind', KINDS)
def test_round_trip_equals_the_model(checkpoints, exported, kind, fmt, tol):
  predict = mbjax.export.load(exported[kind, fmt][0])
  reference = checkpoints[kind][2]
  for b, t in SHAPES:
    x = _input(kind, b, t)
    got, want = np.asarray(predict(x)), np.asarray(reference(x))
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(want).max() > 1e-3  # a meaningful comparison, not zeros against zeros
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)


@pytest.mark.parametrize('fmt', ['stablehlo', 'onnx'])
def test_longer_than_maxlen_is_rejected(exported, fmt):
  predict = mbjax.export.load(exported['pose', fmt][0])
  with pytest.raises(ValueError, match=f"t={MAXLEN + 1} frames is longer than the model's "
                                       f'maxlen={MAXLEN}'):
    predict(_input('pose', 1, MAXLEN + 1))
  with pytest.raises(ValueError, match=r'got shape \(1, 4, 16, 3\), expected'):
    predict(np.zeros((1, 4, 16, 3), np.float32))


def test_sidecar_fields(checkpoints, exported):
  for kind in KINDS:
    for fmt in FORMATS:
      m = exported[kind, fmt][1]
      assert m == mbjax.export.sidecar.read(exported[kind, fmt][0])
      assert m['format'] == fmt and m['kind'] == kind and m['max_frames'] == MAXLEN
      assert m['joints'] == list(skeletons.H36M_JOINTS) and m['mbjax_version'] == '0.1.0'
      want_in = ['b', 't', 17, 3] if kind == 'pose' else ['b', 2, 't', 17, 3]
      assert m['inputs'] == [dict(name='keypoints_2d', shape=want_in, dtype='float32')]
      want_out = {'pose': ['b', 't', 17, 3], 'action-class': ['b', 60],
                  'action-embed': ['b', 32]}[kind]
      assert m['outputs'][0]['shape'] == want_out and m['outputs'][0]['dtype'] == 'float32'
      assert m['flip_test'] is False and m['rootrel'] is False
      assert 'normalisation' in m and 'crop_scale_2d' in m['normalisation']
  bin_path = checkpoints['action-class'][0]
  digest = hashlib.sha256(pathlib.Path(bin_path).read_bytes()).hexdigest()
  assert exported['action-class', FORMATS[-1]][1]['checkpoint_sha256'] == {
      'action-class.bin': digest}
  pose = exported['pose', 'stablehlo'][1]['checkpoint_sha256']
  assert 'config.json' in pose and len(pose) > 1  # every file of the convert directory
  assert exported['pose', 'stablehlo'][1]['platforms'] == ['cpu', 'cuda', 'tpu']
  assert exported['pose', 'onnx'][1]['opset'] == 23


def test_flip_test_and_rootrel_in_the_graph_equal_predict_clips(checkpoints, tmp_path):
  path, _, reference = checkpoints['pose']
  file = str(tmp_path / 'flip.hlo')
  mbjax.export.export(path, file, 'stablehlo', flip_test=True, rootrel=True)
  predict = mbjax.export.load(file)
  x = _input('pose', 2, 7, seed=1)
  want = h36m.predict_clips(lambda b: np.asarray(reference(b)), x, flip=True, rootrel=True)
  got = np.asarray(predict(x))
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
  assert np.all(got[:, :, 0] == 0)
  assert np.abs(got[:, :, 1:] - np.asarray(reference(x))[:, :, 1:]).max() > 1e-3  # flip acts


def test_bfloat16_stablehlo_and_mistakes(checkpoints, tmp_path):
  path, _, reference = checkpoints['pose']
  file = str(tmp_path / 'bf16.hlo')
  m = mbjax.export.export(path, file, 'stablehlo', dtype='bfloat16')
  assert m['compute_dtype'] == 'bfloat16' and m['inputs'][0]['dtype'] == 'float32'
  x = _input('pose', 2, 5)
  got, want = np.asarray(mbjax.export.load(file)(x)), np.asarray(reference(x))
  assert got.dtype == np.float32 and 0 < np.abs(got - want).max() < 0.1
  with pytest.raises(ValueError, match='the ONNX export is float32 only'):
    mbjax.export.export(path, str(tmp_path / 'x.onnx'), 'onnx', dtype='bfloat16')
  bin_path, config, _ = checkpoints['action-class']
  with pytest.raises(ValueError, match='--flip_test and --rootrel are options of pose models'):
    mbjax.export.export(bin_path, str(tmp_path / 'a.hlo'), 'stablehlo', config, flip_test=True)
  with pytest.raises(FileNotFoundError, match='missing: no such checkpoint'):
    mbjax.export.export(str(tmp_path / 'missing'), str(tmp_path / 'b.hlo'))


def test_load_refuses_a_file_its_sidecar_does_not_describe(exported, tmp_path):
  file, meta = exported['pose', 'stablehlo']
  data = pathlib.Path(file).read_bytes()
  assert meta['file_sha256'] == hashlib.sha256(data).hexdigest()
  copy = tmp_path / 'model.hlo'
  for cut in (0, 100, len(data) // 2):  # what a kill mid-write used to leave
    copy.write_bytes(data[:cut])
    pathlib.Path(f'{copy}.json').write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f'{copy} does not match its sidecar {copy}.json .*'
                       'export it again'):
      mbjax.export.load(str(copy))
  legacy = {k: v for k, v in meta.items() if k != 'file_sha256'}  # exported before the field
  pathlib.Path(f'{copy}.json').write_text(json.dumps(legacy))
  for cut, what in ((0, 'the file is empty'), (len(data) // 2, 'bytes that do not deserialize')):
    copy.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=f'{copy}: not a complete StableHLO export .*{what}'):
      mbjax.export.load(str(copy))


def test_load_says_a_cut_onnx_file_in_one_line(tmp_path):
  pytest.importorskip('onnxruntime')
  file = tmp_path / 'model.onnx'
  file.write_bytes(b'')
  pathlib.Path(f'{file}.json').write_text(json.dumps(dict(
      format='onnx', inputs=[dict(name='x', shape=['b', 't', 17, 3])], outputs=[dict(name='y')])))
  with pytest.raises(ValueError, match=f'{file}: not a complete ONNX export .*export it again'):
    mbjax.export.load(str(file))


def test_an_existing_output_is_replaced_only_with_overwrite(checkpoints, tmp_path):
  path = checkpoints['pose'][0]
  notes = tmp_path / 'notes.txt'
  notes.write_text('mine')
  with pytest.raises(FileExistsError, match='notes.txt exists; pass --overwrite to replace it'):
    mbjax.export.export(path, str(notes))
  assert notes.read_text() == 'mine' and os.listdir(tmp_path) == ['notes.txt']
  m = mbjax.export.export(path, str(notes), overwrite=True)
  assert m['file_sha256'] == hashlib.sha256(notes.read_bytes()).hexdigest()
  assert sorted(os.listdir(tmp_path)) == ['notes.txt', 'notes.txt.json']  # no temporaries


@pytest.mark.slow
def test_cli_writes_a_file_load_calls_back(checkpoints, tmp_path):
  path, _, reference = checkpoints['pose']
  out = tmp_path / 'pose.onnx'
  done = subprocess.run([sys.executable, '-m', 'mbjax.export', f'--checkpoint={path}',
                         '--format=onnx', f'--out={out}'], cwd=ROOT, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert f'wrote {out} and {out}.json' in done.stdout
  x = _input('pose', 1, 4)
  np.testing.assert_allclose(mbjax.export.load(str(out))(x), reference(x), atol=1e-4)
  bad = subprocess.run([sys.executable, '-m', 'mbjax.export', f'--checkpoint={path}',
                        '--format=onnx', f'--out={out}', '--flip_test', '--dtype=bfloat16'],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1] == (
      'mbjax.export: error: --dtype=bfloat16: the ONNX export is float32 only (bfloat16 is for '
      '--format=stablehlo)')


# ------------------------------------------------------------------------------------------
# Mesh models: three outputs (theta, verts mm, kp_3d mm), the synthetic SMPL inside the graph.

MESH_TOL = dict(theta=1e-5, verts=1e-3, kp_3d=1e-3)  # StableHLO; verts and kp_3d in mm


@pytest.fixture(scope='module')
def mesh_checkpoint(tmp_path_factory, reference_dir):
  """(convert directory of a tiny MeshNet on the synthetic SMPL, jitted model.apply, model,
  variables)."""
  head = dict(version='mesh', hidden_dim=32, num_joints=17,
              smpl_dir=str(reference_dir / 'smpl_synthetic_tiny'))
  model = models.from_config(dict(TINY, head=head))
  variables = _random_variables(model, jnp.zeros((1, MAXLEN, 17, 3)))
  variables['constants']['head'] = dict(  # the mean pose: a random one is no rotation
      init_pose=np.asarray(model.smpl.mean_pose, np.float32).reshape(-1),
      init_shape=np.asarray(model.smpl.mean_shape, np.float32).reshape(-1))
  path = tmp_path_factory.mktemp('mesh_ckpt') / 'mesh'
  converted.save(path, variables, {'model': 'mesh', 'backbone': dict(TINY), 'head': head})
  return str(path), jax.jit(lambda x: model.apply(variables, x)), model, variables


@pytest.fixture(scope='module')
def mesh_exported(mesh_checkpoint, tmp_path_factory):
  """(file, sidecar) of the tiny mesh model as StableHLO."""
  file = str(tmp_path_factory.mktemp('mesh_export') / 'mesh.hlo')
  return file, mbjax.export.export(mesh_checkpoint[0], file, 'stablehlo')


def _assert_mesh_close(got, want):
  assert list(got) == ['theta', 'verts', 'kp_3d']
  for name, atol in MESH_TOL.items():
    g, w = np.asarray(got[name]), np.asarray(want[name])
    assert g.shape == w.shape and g.dtype == np.float32, name
    assert np.abs(w).max() > 1e-2, name  # not zeros against zeros
    np.testing.assert_allclose(g, w, rtol=0, atol=atol, err_msg=name)


def test_mesh_round_trip_equals_the_model(mesh_checkpoint, mesh_exported):
  predict, reference = mbjax.export.load(mesh_exported[0]), mesh_checkpoint[1]
  for b, t in SHAPES:
    x = _input('pose', b, t)
    _assert_mesh_close(predict(x), reference(x))


def test_mesh_sidecar(mesh_exported):
  file, m = mesh_exported
  assert m == mbjax.export.sidecar.read(file) and m['kind'] == 'mesh'
  assert m['inputs'] == [dict(name='keypoints_2d', shape=['b', 't', 17, 3], dtype='float32')]
  assert [(o['name'], o['shape'], o['dtype']) for o in m['outputs']] == [
      ('theta', ['b', 't', 82], 'float32'), ('verts', ['b', 't', 300, 3], 'float32'),
      ('kp_3d', ['b', 't', 17, 3], 'float32')]
  assert [o['units'] for o in m['outputs']][1:] == ['mm', 'mm']
  assert m['smpl_vertices'] == 300 and 'constants' in m['smpl_embedded']
  assert m['max_frames'] == MAXLEN and m['flip_test'] is False and m['rootrel'] is False


def test_mesh_flip_test_in_the_graph_and_rootrel_refused(mesh_checkpoint, tmp_path):
  path, reference, model, variables = mesh_checkpoint
  file = str(tmp_path / 'flip.hlo')
  assert mbjax.export.export(path, file, 'stablehlo', flip_test=True)['flip_test'] is True
  x = _input('pose', *SHAPES[0], seed=1)
  got = mbjax.export.load(file)(x)
  _assert_mesh_close(got, jax.jit(lambda x: mesh_head.mesh_flip_test(model, variables, x))(x))
  assert np.abs(np.asarray(got['verts']) - np.asarray(reference(x)['verts'])).max() > 1e-2
  with pytest.raises(ValueError, match='a mesh model; --rootrel is an option of pose models'):
    mbjax.export.export(path, str(tmp_path / 'r.hlo'), 'stablehlo', rootrel=True)


def test_mesh_onnx_round_trip_equals_the_model(mesh_checkpoint, tmp_path):
  file = str(tmp_path / 'mesh.onnx')
  assert mbjax.export.export(mesh_checkpoint[0], file, 'onnx')['kind'] == 'mesh'
  predict, reference = mbjax.export.load(file), mesh_checkpoint[1]
  for b, t in SHAPES:
    x = _input('pose', b, t)
    got, want = predict(x), reference(x)
    assert list(got) == ['theta', 'verts', 'kp_3d']
    for name, atol in (('theta', 1e-4), ('verts', 1e-2), ('kp_3d', 1e-2)):  # mm for the last two
      np.testing.assert_allclose(np.asarray(got[name]), np.asarray(want[name]), atol=atol,
                                 err_msg=name)
