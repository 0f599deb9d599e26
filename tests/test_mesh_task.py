"""Mesh recovery end to end on tiny pickles in the three published layouts (mesh_det_pw3d.pkl,
mesh_det_h36m.pkl, mesh_det_coco.pkl) with the synthetic SMPL model: the task trains (loss down),
the evaluator equals evaluate_mesh on the same predictions and gives a known
offset as its error, and the evaluate CLI equals the trainer's last evaluation."""

import json
import os

import jax
import numpy as np
import pytest

import data_formats
from data_prep import builder
from mbjax import checkpoint, train
from mbjax.data import pipelines
from mbjax.logs import metric_writer
from mbjax.evaluate import mesh as mesh_eval
from mbjax.metrics import mesh as mesh_metrics
from mbjax.models import mesh_head
from mbjax.tasks import mesh

CLIP = 4


def _split(rng, sequences, **kw):
  split = data_formats.mesh_split(sequences, **kw)
  n = len(split['source'])
  split['smpl_pose'] = rng.normal(0, 0.2, (n, 72)).astype(np.float32)
  split['smpl_shape'] = rng.normal(0, 0.5, (n, 10)).astype(np.float32)
  split['joint_2d'] = rng.uniform(200, 1700, (n, 17, 2)).astype(np.float32)
  return split


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp('mesh')
  rng = np.random.default_rng(0)
  pw3d = {'train': _split(rng, [(f'seq{i}', 12) for i in range(4)]),
          'test': _split(rng, [('test0', 8), ('test1', 8)])}
  h36m = {'train': _split(rng, [('S1_walk', 12)], cameras=['54138969']),
          'test': _split(rng, [('S9_walk', 8)], cameras=['54138969'])}
  coco = {'train': _split(rng, [(f'img{i}', 1) for i in range(8)],
                         img_hw=[(480, 640)] * 8)}
  out = root / 'tfds'
  for name, splits in (('pw3d', pw3d), ('h36m', h36m), ('coco', coco)):
    path = data_formats.write_mesh_pickle(root / f'mesh_det_{name}.pkl', splits)
    options = {} if name == 'coco' else dict(clip_len=CLIP, train_stride=2)
    builder.build(f'mesh_{name}', source=path, data_dir=out, options=options)
  return str(out)


@pytest.fixture(scope='module')
def config(tiny_config, data_dir, reference_dir):
  c = tiny_config('tiny_mesh', data_dir)
  c.model.head.smpl_dir = str(reference_dir / 'smpl_synthetic_tiny')
  return c


@pytest.fixture(scope='module')
def trained(config, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('run') / 'run')
  return workdir, train.train_and_evaluate(config, workdir)


H36M_14 = [1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16]  # official evaluate_mesh's 14 joints


def _errors_by_hand(pred, gt) -> dict:
  """MPVE, MPJPE (14 joints) and MPJPE (17) in mm, numpy, as official evaluate_mesh defines them:
  vertices and joints relative to their own pelvis (kp_3d joint 0), means over frames."""
  flat = lambda x: np.asarray(x, np.float64).reshape((-1,) + x.shape[2:])  # noqa: E731
  kp, kp_gt = flat(pred['kp_3d']), flat(gt['kp_3d'])
  verts = flat(pred['verts']) - kp[:, :1]
  verts_gt = flat(gt['verts']) - kp_gt[:, :1]
  rel, rel_gt = kp - kp[:, :1], kp_gt - kp_gt[:, :1]
  return {'mpve': np.linalg.norm(verts - verts_gt, axis=-1).mean(),
          'mpjpe': np.linalg.norm(rel[:, H36M_14] - rel_gt[:, H36M_14], axis=-1).mean(),
          'mpjpe_17j': np.linalg.norm(rel - rel_gt, axis=-1).mean()}


def test_trains_and_reports(trained, config):
  workdir, summary = trained
  rows = {}
  for row in metric_writer.read_jsonl(os.path.join(workdir, 'metrics.jsonl')):
    rows.setdefault(row['step'], {}).update(row)
  losses = [rows[s]['mesh/loss'] for s in sorted(rows) if 'mesh/loss' in rows[s]]
  assert len(losses) == 12 and np.isfinite(losses).all(), losses
  model = mesh.make_model(config)
  final = checkpoint.read_state(workdir)
  variables = {'params': final['params'], **final['model_state']}
  # Training lowered the loss of its own batches (those of the first epoch: H36M, COCO, 3DPW),
  # each compared on the same batch and dropout draw, from the initial and the final weights.
  start = jax.device_get(train.variables_of(train.setup(config, with_data=False).init_state()))
  batches = pipelines.HostBatches(mesh.make_curriculum(config), seed=config.data_seed)
  loss = jax.jit(lambda v, b: mesh.loss_fn(model, v, b, jax.random.key(0), 'mesh', config)[0])
  before = [float(loss(start, batches[s])) for s in range(6)]
  after = [float(loss(variables, batches[s])) for s in range(6)]
  assert sum(after) < sum(before), (before, after)
  # The last test evaluation, by hand from the final weights: the stored 2D (confidence clipped
  # to [0, 1]) through the flip test, SMPL of the stored theta, numpy errors.
  source = mesh_eval.split_source(config, dict(config.evals.test))
  x = np.stack([source[i]['joint_2d'] for i in range(len(source))]).astype(np.float32)
  x[..., 2] = np.clip(x[..., 2], 0, 1)
  theta = np.stack([np.concatenate([source[i]['smpl_pose'], source[i]['smpl_shape']], -1)
                    for i in range(len(source))]).astype(np.float32)
  assert config.evals.test.flip
  pred = jax.jit(lambda v, x: mesh_head.mesh_flip_test(model, v, x))(variables, x)
  gt = jax.jit(lambda t: mesh.ground_truth(model.smpl, t))(theta)
  for k, want in _errors_by_hand(pred, gt).items():
    assert summary[f'test/{k}'] == pytest.approx(want, rel=1e-4), k
  assert 0 < summary['test/pa_mpjpe'] < summary['test/mpjpe']  # alignment only removes error
  assert summary['test/frames'] == len(source) * CLIP
  assert os.path.isdir(os.path.join(workdir, 'best'))  # kept on val/mpve


def test_evaluator_equals_evaluate_mesh_and_known_offsets(config):
  model = mesh.make_model(config)
  s = train.setup(config, with_data=False)
  variables = jax.device_get(train.variables_of(s.init_state()))
  source = mesh_eval.split_source(config, dict(config.evals.test))
  got = mesh_eval.make_evaluator(config, model, dict(config.evals.test, flip=False),
                                mesh.evaluator_inputs(config))(variables)
  inputs = np.stack([source[i]['joint_2d'] for i in range(len(source))])
  theta = np.stack([np.concatenate([source[i]['smpl_pose'], source[i]['smpl_shape']], -1)
                    for i in range(len(source))]).astype(np.float32)
  pred = jax.jit(model.apply)(variables, inputs)
  gt = jax.jit(lambda t: mesh.ground_truth(model.smpl, t))(theta)
  flat = lambda x: np.asarray(x).reshape((-1,) + x.shape[2:])  # noqa: E731
  want = mesh_metrics.evaluate_mesh({'kp_3d': flat(pred['kp_3d']), 'kp_3d_gt': flat(gt['kp_3d']),
                                     'verts': flat(pred['verts']), 'verts_gt': flat(gt['verts'])},
                                    num_verts=None)
  for k in mesh_eval.METRICS:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-4)
  assert got['frames'] == len(source) * CLIP
  shifted = {k: flat(gt[k]) + [10.0, 0, 0] for k in ('kp_3d', 'verts')}
  offset = mesh_metrics.evaluate_mesh({'kp_3d': shifted['kp_3d'], 'kp_3d_gt': flat(gt['kp_3d']),
                                       'verts': shifted['verts'], 'verts_gt': flat(gt['verts'])},
                                      num_verts=None)
  assert offset['mpjpe'] == pytest.approx(0, abs=1e-3)  # root-relative: a shift is no error
  assert offset['mpve'] == pytest.approx(0, abs=1e-3)
  moved = flat(gt['kp_3d']).copy()
  moved[:, 1:] += [0, 10.0, 0]  # every joint but the pelvis 10 mm down
  known = mesh_metrics.evaluate_mesh({'kp_3d': moved, 'kp_3d_gt': flat(gt['kp_3d']),
                                      'verts': flat(gt['verts']), 'verts_gt': flat(gt['verts'])},
                                     num_verts=None)
  assert known['mpjpe'] == pytest.approx(10, abs=1e-3)  # the 14 joints: all moved
  assert known['mpjpe_17j'] == pytest.approx(10 * 16 / 17, abs=1e-3)


def test_ground_truth_is_smpl_of_theta(config):
  model = mesh.make_model(config)
  theta = np.zeros((1, 2, 82), np.float32)
  gt = mesh.ground_truth(model.smpl, theta)
  np.testing.assert_allclose(gt['verts'][0, 0], np.asarray(model.smpl.v_template) * 1000,
                             atol=1e-3)  # zero pose and shape: the template, in mm


def test_evaluate_cli_equals_the_trainer(trained, config, tmp_path):
  from mbjax.evaluate import __main__ as cli
  workdir, summary = trained
  out = tmp_path / 'eval.json'
  result = cli.run(config, workdir, str(out), evals=['test'], save_smpl=True)
  for k in mesh_eval.METRICS:
    np.testing.assert_allclose(result['test'][k], summary[f'test/{k}'], rtol=1e-5)
  assert json.loads(out.read_text())['test']['frames'] == result['test']['frames']
  with np.load(tmp_path / 'smpl_test.npz') as z:
    clips = result['test']['frames'] // CLIP
    assert z['theta'].shape == (clips, CLIP, 82) and z['kp_3d'].shape == (clips, CLIP, 17, 3)
    np.testing.assert_array_equal(z['betas'], z['theta'][..., 72:])
    assert list(z['source'][:2]) == ['test0', 'test0']


def test_an_official_layout_bin_evaluates_as_the_run(trained, config, tmp_path, reference_dir):
  """The trained weights written as an official mesh `.bin` (model: module.backbone.*,
  module.head.* with the SMPL buffers) evaluate through the CLI to the trainer's numbers."""
  from mbjax import checkpoint
  from mbjax.checkpoint import official
  from mbjax.evaluate import __main__ as cli
  workdir, summary = trained
  model = mesh.make_model(config)
  state = checkpoint.read_state(workdir)
  variables = dict(state['model_state'], params=state['params'])
  path = tmp_path / 'best_epoch.bin'
  with np.load(reference_dir / 'mesh_head_tiny.npz') as z:  # smplx's extra joints, remapped
    vertex_ids = json.loads(str(z['config']))['vertex_ids_smplh']
  official.save_official(variables, 'mesh', path, smpl=model.smpl, vertex_ids=vertex_ids)
  result = cli.run(config, str(path), str(tmp_path / 'eval.json'), evals=['test'])
  for k in mesh_eval.METRICS:
    np.testing.assert_allclose(result['test'][k], summary[f'test/{k}'], rtol=1e-5)


def test_infer_gives_smpl_per_frame_of_each_track(trained, tmp_path):
  """python -m mbjax.infer --mesh RUN: every frame's SMPL pose and shape, the model's on the
  official consecutive windows of its clip length."""
  from mbjax.infer import mesh as infer_mesh
  from mbjax.infer import model as model_lib
  from mbjax.infer import pipeline
  workdir, _ = trained
  rng = np.random.default_rng(3)
  keypoints = np.concatenate([rng.uniform(100, 400, (10, 17, 2)), np.ones((10, 17, 1))], -1)
  np.save(tmp_path / 'k.npy', keypoints)
  lifter = model_lib.Lifter(predict=lambda x: x, maxlen=9, rootrel=False, flip=False,
                            gt_2d=False, no_conf=False, config=None, source='stand-in')
  request = pipeline.Request(input=str(tmp_path / 'k.npy'), skeleton='h36m', mesh=workdir)
  pipeline.run(request, lifter, str(tmp_path / 'out'))
  predictor = infer_mesh.load(workdir)
  with np.load(tmp_path / 'out' / 'results.npz') as z:
    x = z['0/input_2d']
    assert z['0/smpl_pose'].shape == (10, 72) and z['0/smpl_betas'].shape == (10, 10)
    for start, end in ((0, 4), (4, 8), (8, 10)):  # clip_len 4: two full windows and a short one
      out = predictor.apply(x[None, start:end])
      np.testing.assert_allclose(z['0/smpl_pose'][start:end], out['theta'][0, :, :72],
                                 atol=1e-5)
      np.testing.assert_allclose(z['0/smpl_kp_3d'][start:end], out['kp_3d'][0], atol=1e-3)
    assert np.ptp(z['0/smpl_betas'][:4], axis=0).max() == 0  # betas once per window
  with pytest.raises(ValueError, match='expected the workdir of a mesh run'):
    infer_mesh.load(str(tmp_path / 'out'))
