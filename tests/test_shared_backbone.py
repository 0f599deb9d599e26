"""One backbone pass for the pose, action and mesh heads (mbjax/models/split.py,
mbjax/infer/shared.py): a model's head on its backbone's representation is the model; equal
backbones are found by content; `infer` with shared heads gives what each model gives on the
lifting windows apart, with fewer backbone passes."""

import dataclasses
import json

import flax.linen as nn
import jax
import numpy as np
import pytest

from mbjax import models
from mbjax.infer import action as action_lib
from mbjax.infer import mesh as mesh_lib
from mbjax.infer import model as model_lib
from mbjax.infer import pipeline, shared
from mbjax.infer import windows as windows_lib
from mbjax.models import split
from mbjax.models.dstformer import TINY
from mbjax.models.smpl import SMPL

MAXLEN = 9


def _init(model, x, seed):
  return nn.meta.unbox(jax.jit(model.init)(jax.random.key(seed), x))


@pytest.fixture(scope='module')
def built(reference_dir):
  """A pose model and action / mesh models whose backbones are the pose model's (as after
  partial finetuning on it); their heads have random weights and BatchNorm statistics."""
  smpl = SMPL.from_file(str(reference_dir / 'smpl_synthetic_tiny'))
  base = dict(TINY, maxlen=MAXLEN)
  pose = models.from_config(base)
  action = models.from_config(dict(base, head=dict(version='class', num_classes=5)))
  mesh = models.from_config(dict(base, head=dict(version='mesh', hidden_dim=16)), smpl=smpl)
  x = np.zeros((1, MAXLEN, 17, 3), np.float32)
  pose_vars = _init(pose, x, 0)
  action_vars, mesh_vars = _init(action, x[:, None], 1), _init(mesh, x, 2)
  rng = np.random.default_rng(0)
  for variables in (action_vars, mesh_vars):
    variables['params']['backbone'] = dict(pose_vars['params'], head=variables['params'][
        'backbone']['head'])
    variables['batch_stats'] = jax.tree_util.tree_map(
        lambda a: np.asarray(rng.uniform(0.5, 1.5, a.shape), np.float32), variables['batch_stats'])
  return dict(pose=(pose, pose_vars), action=(action, action_vars), mesh=(mesh, mesh_vars))


def _clips(n=2, t=7, seed=1):
  rng = np.random.default_rng(seed)
  return np.concatenate([rng.uniform(-1, 1, (n, t, 17, 2)), rng.uniform(0, 1, (n, t, 17, 1))],
                        -1).astype(np.float32)


def test_a_head_on_its_backbone_representation_is_the_model(built):
  x = _clips()
  for name, (model, variables) in built.items():
    rep = split.representation(model, variables, x)
    got = split.head(model, variables, rep)
    want = model.apply(variables, x[:, None] if name == 'action' else x)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4),
                           got, want)


def test_equal_backbones_are_found_by_content(built):
  pose, pose_vars = built['pose']
  mesh, mesh_vars = built['mesh']
  assert split.backbone_difference(pose, pose_vars, mesh, mesh_vars) is None
  changed = jax.tree_util.tree_map(lambda a: a, mesh_vars)
  kernel = changed['params']['backbone']['joints_embed']['kernel']
  changed['params']['backbone']['joints_embed']['kernel'] = kernel.at[0, 0].add(1e-6)
  assert split.backbone_difference(pose, pose_vars, mesh, changed) == (
      'backbone weights differ (joints_embed/kernel)')
  other_heads = mesh.clone(backbone=mesh.backbone.clone(num_heads=2))
  assert split.backbone_difference(pose, pose_vars, other_heads, mesh_vars) == (
      'backbone num_heads 4 vs 2')


def _predictors(built, lifter_flip=True):
  pose, pose_vars = built['pose']
  action, action_vars = built['action']
  mesh, mesh_vars = built['mesh']
  lifter = model_lib.Lifter(predict=jax.jit(lambda x: pose.apply(pose_vars, x)), maxlen=MAXLEN,
                            rootrel=False, flip=lifter_flip, gt_2d=False, no_conf=False,
                            config=None, source='test', model=pose, variables=pose_vars)
  classifier = action_lib.Classifier(
      apply=jax.jit(lambda v, x: (action.apply(v, x), None)), variables=action_vars,
      version='class', label_names=tuple(f'class {i}' for i in range(5)), clip_len=MAXLEN,
      scale_range=(1.0, 1.0), source='test', model=action)
  mesh_predictor = mesh_lib.MeshPredictor(apply=jax.jit(lambda x: mesh.apply(mesh_vars, x)),
                                          clip_len=4, channels=3, source='test', model=mesh,
                                          variables=mesh_vars)
  return lifter, classifier, mesh_predictor


def _run(tmp_path, built, name, enabled=True, counter=None):
  rng = np.random.default_rng(4)
  keypoints = np.concatenate([rng.uniform(100, 400, (20, 17, 2)), np.ones((20, 17, 1))], -1)
  np.save(tmp_path / 'k.npy', keypoints)
  lifter, classifier, mesh_predictor = _predictors(built)
  heads = pipeline.Heads(classifier=classifier, mesh=mesh_predictor)
  request = pipeline.Request(input=str(tmp_path / 'k.npy'), skeleton='h36m', stride=3,
                             shared_backbone=enabled)
  summary = pipeline.run(request, lifter, str(tmp_path / name), heads=heads)
  with np.load(tmp_path / name / 'results.npz') as z:
    return summary, {k: z[k] for k in z.files}, heads


def test_shared_heads_equal_the_models_apart_on_the_lifting_windows(built, tmp_path):
  summary, got, heads = _run(tmp_path, built, 'shared')
  assert summary['backbone'] == dict(shared=True, heads=['pose', 'mesh', 'action'],
                                     backbone_passes_saved_per_window=2)
  apart, apart_got, _ = _run(tmp_path, built, 'apart', enabled=False)
  assert apart['backbone'] == dict(shared=False, heads=['pose', 'mesh', 'action'],
                                   why='--shared_backbone=false')
  np.testing.assert_allclose(got['0/joints3d'], apart_got['0/joints3d'], atol=1e-5)
  # Each model apart, on the same lifting windows (9 frames, stride 3).
  x = got['0/input_2d']
  bounds = windows_lib.windows(len(x), MAXLEN, 3)
  assert len(bounds) == 5
  mesh_windows, log_p = [], []
  _, classifier, mesh_predictor = _predictors(built)
  for s, e in bounds:
    out = mesh_predictor.apply(x[None, s:e])
    mesh_windows.append(dict(smpl_theta=out['theta'][0], smpl_kp_3d=out['kp_3d'][0]))
    log_p.append(dict(action_logits=classifier.apply(classifier.variables,
                                                     x[None, None, s:e])[0][0]))
  want = shared.mesh_fields(mesh_windows, bounds, len(x))
  for k in ('smpl_pose', 'smpl_betas'):
    np.testing.assert_allclose(got[f'0/{k}'], want[k], atol=1e-4)
  np.testing.assert_allclose(got['0/smpl_kp_3d'], want['smpl_kp_3d'], atol=1e-2)  # mm
  best = action_lib.top_k(classifier, shared.action_log_probs(log_p), 5)
  actions = json.loads((tmp_path / 'shared' / 'results.json').read_text())['tracks'][0]['actions']
  assert [a['label'] for a in actions] == [n for n, _ in best]
  np.testing.assert_allclose([a['probability'] for a in actions], [q for _, q in best],
                             atol=1e-5)


def test_a_different_backbone_runs_apart_and_says_why(built, tmp_path):
  mesh, mesh_vars = built['mesh']
  changed = jax.tree_util.tree_map(lambda a: a, mesh_vars)
  changed['params']['backbone']['pos_embed'] = changed['params']['backbone']['pos_embed'] + 1.0
  lifter, classifier, mesh_predictor = _predictors(built)
  mesh_predictor = dataclasses.replace(mesh_predictor, variables=changed)
  plan, report = shared.plan(lifter, mesh=mesh_predictor, classifier=classifier)
  assert plan is None
  assert report == dict(shared=False, heads=['pose', 'mesh', 'action'],
                        why='mesh: backbone weights differ (pos_embed)')
  stand_in = dataclasses.replace(lifter, model=None)
  assert shared.plan(stand_in, classifier=classifier)[1]['why'] == (
      'the lifting model is not a DSTformer loaded from a checkpoint')
  assert shared.plan(lifter, classifier=classifier, mode='pixel')[1]['why'] == (
      'action: its clips are crop-normalised; --pixel input is not')


def test_shared_pass_runs_the_backbone_once_per_window(built, monkeypatch):
  """Backbone calls traced: the shared predict holds one, the apart models one each."""
  calls = []
  original = split.representation

  def counting(model, variables, x):
    calls.append(x.shape)
    return original(model, variables, x)

  monkeypatch.setattr(split, 'representation', counting)
  lifter, classifier, mesh_predictor = _predictors(built)
  plan, _ = shared.plan(lifter, mesh=mesh_predictor, classifier=classifier)
  out = plan.predict(_clips(t=MAXLEN))
  assert len(calls) == 1 and set(out) == {'pose', 'smpl_theta', 'smpl_kp_3d', 'action_logits'}


def test_nearest_window_takes_the_window_centred_nearest():
  bounds = [(0, 9), (3, 12), (6, 15)]  # centres 4, 7, 10
  assert shared.nearest_window(bounds, 15).tolist() == [0] * 6 + [1] * 3 + [2] * 6
