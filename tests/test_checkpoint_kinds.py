"""The right model or a clear no: every weight loader checks the checkpoint's kind (pose, action
class, action embed, mesh) against the model asked for, and names both in one line. A bare
DSTformer onto a head model is only fine where the head may start fresh (training from
`config.init_from`), never for evaluate, infer or export."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbjax import checkpoint, models
from mbjax.checkpoint import loader, official
from mbjax.models import dstformer

TINY = dict(dstformer.TINY, maxlen=9)
HEADS = {'pose': None, 'action-class': dict(version='class', num_classes=5),
         'action-embed': dict(version='embed', hidden_dim=16)}


def _zeros(kind: str) -> dict:
  """Zero variables of a tiny model of `kind`, from the abstract shapes (no eager init)."""
  model = models.from_config(dict(TINY, head=HEADS[kind]))
  shape = (1, 4, 17, 3) if kind == 'pose' else (1, 1, 4, 17, 3)
  abstract = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape))
  return jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), abstract)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  """{kind: (variables, official .bin)} of tiny pose, action-class and action-embed models."""
  folder = tmp_path_factory.mktemp('kinds')
  found = {}
  for kind in HEADS:
    variables = _zeros(kind)
    official.save_official(variables, kind, folder / f'{kind}.bin')
    found[kind] = (variables, folder / f'{kind}.bin')
  return found


def test_variables_kind_is_the_official_kind(tiny):
  for kind, (variables, path) in tiny.items():
    assert official.official_kind(official.load_official(path)) == kind
    assert loader.variables_kind(variables) == kind
    assert loader.variables_kind(checkpoint.load_variables(path)) == kind
  mesh = {'params': {'backbone': {'pos_embed': 0}, 'head': {'fc1': {}, 'head_pose': {}}}}
  assert loader.variables_kind(mesh) == 'mesh'
  assert loader.variables_kind({'params': {'backbone': {}, 'head': {'other': {}}}}) is None


@pytest.mark.parametrize('stored,wanted', [('action-class', 'pose'), ('action-embed', 'pose'),
                                           ('action-class', 'action-embed')])
def test_another_kind_is_refused_naming_both(tiny, stored, wanted):
  """An action checkpoint used to load as a pose model: its backbone taken, its head dropped
  unsaid ('0 in the file unused')."""
  with pytest.raises(ValueError, match=rf'{stored}\.bin holds an {stored} model .*; the config '
                                       rf'asks for an? {wanted} model'):
    checkpoint.load_pretrained(tiny[wanted][0], str(tiny[stored][1]))


def test_a_backbone_starts_a_head_model_only_where_the_head_may_start_fresh(tiny):
  target, path = tiny['action-class'][0], str(tiny['pose'][1])
  _, report = checkpoint.load_pretrained(target, path, fresh=(r'^params/head/',
                                                              r'^batch_stats/head/'))
  assert report['fresh'] and all('/head/' in k for k in report['fresh'])
  with pytest.raises(ValueError, match='holds a pose model .*asks for an action-class model .*: a '
                                       'pretrained backbone alone only starts a training run'):
    checkpoint.load_pretrained(target, path)


def test_export_refuses_an_action_checkpoint_as_a_pose_model(tiny, tiny_config, tmp_path):
  """The library path of `python -m mbjax.export --config=<pose> --checkpoint=<action .bin>`,
  which wrote a file with "kind": "pose"."""
  from mbjax.export import graph
  with pytest.raises(ValueError, match='action-class.bin holds an action-class model'):
    graph.build(str(tiny['action-class'][1]), tiny_config('tiny_pose3d', str(tmp_path)))
  with pytest.raises(ValueError, match='pose.bin holds a pose model .*only starts a training'):
    graph.build(str(tiny['pose'][1]), tiny_config('tiny_action', str(tmp_path)))
