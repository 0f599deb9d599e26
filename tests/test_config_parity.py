"""Every mbjax config variant against its official MotionBERT yaml, value by value.

`official_configs.json` (shared/reference) holds the values of every official training config
(Walter0807/MotionBERT @ dccfe7b, configs/**/*.yaml). TABLE names the mbjax config and variant of
each file; FIELDS maps each official key of a config family to the mbjax value it sets; UNMAPPED
says why a key has no mbjax counterpart; DELIBERATE lists the differences we keep, each with why.
Any other difference, any official key in neither FIELDS nor UNMAPPED, and any official file
without a row in TABLE fails.
"""

import fnmatch
import json
import pathlib

import pytest
from absl import flags
from ml_collections import config_flags

from data_prep import amass as amass_prep
from data_prep import h36m as h36m_prep
from mbjax.data import mesh as mesh_data
from mbjax.tasks import pose3d as pose3d_task

ROOT = pathlib.Path(__file__).resolve().parents[1]
ABSENT = '<absent>'  # a key the official file lacks, or a value the mbjax variant does not set

# Official file -> (mbjax config file, its arg).
TABLE = {
    'pretrain/MB_pretrain.yaml': ('configs/pretrain.py', 'release'),
    'pretrain/MB_lite.yaml': ('configs/pretrain.py', 'lite'),
    'pose3d/MB_ft_h36m.yaml': ('configs/pose3d_h36m.py', 'ft'),
    'pose3d/MB_ft_h36m_global.yaml': ('configs/pose3d_h36m.py', 'global'),
    'pose3d/MB_ft_h36m_global_lite.yaml': ('configs/pose3d_h36m.py', 'global_lite'),
    'pose3d/MB_train_h36m.yaml': ('configs/pose3d_h36m.py', 'scratch'),
    'action/MB_ft_NTU60_xsub.yaml': ('configs/action_ntu60.py', 'xsub'),
    'action/MB_ft_NTU60_xview.yaml': ('configs/action_ntu60.py', 'xview'),
    'action/MB_train_NTU60_xsub.yaml': ('configs/action_ntu60.py', 'xsub,scratch'),
    'action/MB_train_NTU60_xview.yaml': ('configs/action_ntu60.py', 'xview,scratch'),
    'action/MB_ft_NTU120_oneshot.yaml': ('configs/action_ntu120_oneshot.py', 'ft'),
    'action/MB_train_NTU120_oneshot.yaml': ('configs/action_ntu120_oneshot.py', 'scratch'),
    'mesh/MB_ft_pw3d.yaml': ('configs/mesh.py', 'pw3d'),
    'mesh/MB_ft_h36m.yaml': ('configs/mesh.py', 'h36m'),
    'mesh/MB_train_pw3d.yaml': ('configs/mesh.py', 'pw3d,scratch'),
    'mesh/MB_train_h36m.yaml': ('configs/mesh.py', 'h36m,scratch'),
}
FAMILY = {'configs/pretrain.py': 'pretrain', 'configs/pose3d_h36m.py': 'pose3d',
          'configs/action_ntu60.py': 'action', 'configs/action_ntu120_oneshot.py': 'oneshot',
          'configs/mesh.py': 'mesh'}

# The differences we keep: (official files, a glob; key; the mbjax value; why).
DELIBERATE = [
    ('*', 'checkpoint_frequency', 0,
     # Official: epoch_N.bin every N epochs, kept for good. A workdir keeps its latest
     # checkpoints (and the best where a validation split exists); the knob is there.
     'no per-epoch snapshots by default: --config.checkpoint.snapshot_every_epochs=N keeps them'),
    ('mesh/*', 'batch_size_img', 128,
     # One global batch for every phase compiles one step (mbjax/data/mesh_clips.py); in the
     # h36m files batch_size_img is unused officially too (they have no COCO).
     'COCO images come in the global batch_size (official: their own batch_size_img 512)'),
    ('pretrain/*', 'no_eval', True,
     # Official: the H36M test split every epoch, which can select nothing honestly; `val=S8`
     # holds S8 out and evaluates it every epoch (and reports the test split at the ends).
     'pretraining evaluates nothing unless the `val=S8` switch is given'),
]

# Official keys with no mbjax counterpart, per family: why.
_SOURCE = 'the source pickle of `data_prep.build`, not a training setting'
_DATA_ROOT = ('the folder of the official clip files; mbjax reads ArrayRecords under '
              'data.data_dir (their clip length and stride are compared as clip_len/data_stride)')
UNMAPPED = {
    'pretrain': {'data_root': _DATA_ROOT, 'dt_file': _SOURCE},
    'pose3d': {'data_root': _DATA_ROOT, 'dt_file': _SOURCE},
    'action': {},
    'oneshot': {},
    'mesh': {'dropout_loc': 'read by no official .py at dccfe7b'},
}


def _get(path: str):
  """c -> the value at dotted `path`."""
  def get(c):
    for part in path.split('.'):
      c = c[part]
    return c
  return get


def _fixed(value):
  """A value mbjax hard-wires in code (the getter's comment says where)."""
  return lambda c: value


def _same(*values):
  """One value where all agree, else all of them (which then differ from the official one)."""
  return values[0] if all(v == values[0] for v in values) else values


def _lr_head(c):
  """The head's learning rate: lr_head where set (and head patterns select a head), else lr."""
  return c.lr_head if c.lr_head is not None and c.head_patterns else c.lr


def _mesh_file(name: str):
  """c -> the official dt_file of dataset `name`, ABSENT when the variant does not train on it."""
  def get(c):
    dataset = c.data[name]
    if not dataset:
      return ABSENT
    return mesh_data.DATASETS[name] if dataset == f'mesh_{name}' else dataset
  return get


SUBSETS = {'amass': 'AMASS', 'h36m': 'H36M-SH'}  # mbjax dataset -> official subset_list entry
MODEL = {k: _get(f'model.{k}') for k in ('maxlen', 'dim_feat', 'dim_rep', 'depth', 'num_heads',
                                         'mlp_ratio', 'att_fuse', 'num_joints')}
OPTIMIZER = {'epochs': _get('epochs'), 'batch_size': _get('batch_size'),
             'weight_decay': _get('weight_decay'), 'lr_decay': _get('lr_decay'),
             'partial_train': _get('partial_train'),
             # Pretraining has no field (it never starts from pretrained weights).
             'finetune': lambda c: c.get('finetune', False)}
# Official epoch_N.bin every checkpoint_frequency epochs (not in the action files).
CHECKPOINT = {'checkpoint_frequency': _get('checkpoint.snapshot_every_epochs')}
POSE_LOSS = {k: _get(f'loss.{k}') for k in ('lambda_scale', 'lambda_3d_velocity', 'lambda_lv',
                                           'lambda_lg', 'lambda_a', 'lambda_av')}
POSE = dict(
    MODEL, **OPTIMIZER, **CHECKPOINT, **POSE_LOSS, learning_rate=_get('lr'),
    rootrel=_get('rootrel'), gt_2d=_get('gt_2d'), no_conf=_get('no_conf'),
    no_eval=lambda c: len(c.evals) == 0,
    # The official backbone never receives `dropout` (lib/utils/learning.py load_backbone).
    dropout=_get('model.drop_rate'),
    # No frame subsampling is offered: clips take consecutive frames (official stride 1).
    sample_stride=_fixed(1))
FIELDS = {
    'pretrain': dict(
        POSE, flip=_get('augment.flip'), noise=_get('augment.noise'),
        mask_ratio=_get('augment.mask_ratio'), mask_T_ratio=_get('augment.mask_t_ratio'),
        synthetic=_get('synthetic'), pretrain_3d_curriculum=_get('curriculum_3d_epochs'),
        train_2d=lambda c: bool(c.data.sources_2d),
        subset_list=lambda c: [SUBSETS[s['name']] for s in c.data.sources_3d],
        clip_len=lambda c: _same(h36m_prep.CLIP_LEN, amass_prep.CLIP_LEN),
        data_stride=lambda c: _same(h36m_prep.STRIDES['train'], amass_prep.STRIDE),
        # '' loads mbjax/data/assets/synthetic_noise.npz: both official files, converted.
        noise_path=lambda c: c.augment.noise_path or 'params/synthetic_noise.pth',
        d2c_params_path=lambda c: c.augment.noise_path or 'params/d2c_params.pkl'),
    'pose3d': dict(
        POSE, flip=lambda c: _same(c.flip, c.flip_test),
        subset_list=lambda c: [SUBSETS[pose3d_task.train_spec(c)['name']]],
        clip_len=_fixed(h36m_prep.CLIP_LEN), data_stride=_fixed(h36m_prep.STRIDES['train']),
        # The pose3d task feeds H36M's stored detected 2D, never noised or masked, no 2D-only
        # sources (mbjax/tasks/pose3d.py).
        noise=_fixed(False), synthetic=_fixed(False), train_2d=_fixed(False),
        mask_ratio=_fixed(0.0), mask_T_ratio=_fixed(0.0)),
}
ACTION = dict(
    MODEL, **OPTIMIZER, lr_backbone=_get('lr'), lr_head=_lr_head, clip_len=_get('clip_len'),
    model_version=_get('model.head.version'), hidden_dim=_get('model.head.hidden_dim'),
    dropout_ratio=_get('model.head.dropout_ratio'), random_move=_get('augment.random_move'),
    scale_range_train=_get('augment.scale_range_train'),
    scale_range_test=_get('augment.scale_range_test'))
FIELDS['action'] = dict(
    ACTION, action_classes=_get('model.head.num_classes'),
    dataset=lambda c: f'{c.data.dataset}_hrnet',  # built from the official <dataset>.pkl
    data_split=lambda c: _same(c.data.train_split.removesuffix('_train'),
                               c.data.test_split.removesuffix('_val')))
FIELDS['oneshot'] = dict(ACTION, n_views=_get('n_views'), temp=_get('temperature'))
FIELDS['mesh'] = dict(
    MODEL, **OPTIMIZER, **CHECKPOINT, lr_backbone=_get('lr'), lr_head=_lr_head,
    batch_size_img=_get('batch_size'), **{k: _get(f'loss.{k}') for k in (
        'loss_type', 'lambda_3d', 'lambda_scale', 'lambda_3dv', 'lambda_lv', 'lambda_lg',
        'lambda_a', 'lambda_av', 'lambda_pose', 'lambda_shape', 'lambda_norm')},
    hidden_dim=_get('model.head.hidden_dim'), dropout=_get('model.head.dropout_ratio'),
    data_root=_get('model.head.smpl_dir'),  # official data_root: the SMPL files' folder
    flip=lambda c: _same(c.flip, *(e.flip for e in c.evals.values())),
    clip_len=lambda c: _same(c.clip_len, mesh_data.CLIP_LEN),
    data_stride=_fixed(mesh_data.TRAIN_STRIDE), sample_stride=_fixed(1),  # mbjax/data/mesh.py
    dt_file_h36m=_mesh_file('h36m'), dt_file_coco=_mesh_file('coco'),
    dt_file_pw3d=_mesh_file('pw3d'), train_pw3d=lambda c: bool(c.data.pw3d),
    warmup_h36m=lambda c: c.get('warmup_h36m', ABSENT),
    warmup_coco=lambda c: c.get('warmup_coco', ABSENT))


@pytest.fixture(scope='module')
def official(reference_dir) -> dict:
  return json.loads((reference_dir / 'official_configs.json').read_text())['configs']


def _load(config_file: str, arg: str):
  """The ConfigDict `--config=ROOT/config_file:arg` gives, through ml_collections' flag parser."""
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, 'Config file.', flag_values=flag_values,
                                  lock_config=True)
  flag_values(['test', f'--config={ROOT / config_file}:{arg}'])
  return flag_values.config


def _plain(value):
  """JSON-like: lists and tuples as tuples, so that yaml lists equal config tuples."""
  return tuple(_plain(v) for v in value) if isinstance(value, (list, tuple)) else value


def _equal(a, b) -> bool:
  a, b = _plain(a), _plain(b)
  if isinstance(a, bool) or isinstance(b, bool):  # True is not 1
    return type(a) is type(b) and a == b
  return a == b


def differences(family: str, values: dict, c) -> dict:
  """key -> (official value, mbjax value) for every key that differs; official keys with no
  entry in FIELDS[family] or UNMAPPED[family] raise."""
  fields, unmapped = FIELDS[family], UNMAPPED[family]
  unknown = sorted(set(values) - set(fields) - set(unmapped))
  if unknown:
    raise KeyError(f'{family}: official keys {unknown} are in neither FIELDS nor UNMAPPED')
  out = {}
  for key, get in fields.items():
    theirs, ours = values.get(key, ABSENT), get(c)
    if not _equal(theirs, ours):
      out[key] = (theirs, ours)
  return out


def deliberate(name: str) -> dict:
  """key -> the mbjax value DELIBERATE keeps for official file `name`."""
  return {key: ours for pattern, key, ours, _ in DELIBERATE if fnmatch.fnmatch(name, pattern)}


def _check(name: str, values: dict) -> dict:
  config_file, arg = TABLE[name]
  return differences(FAMILY[config_file], values, _load(config_file, arg))


def test_table_covers_every_official_file(official):
  assert sorted(TABLE) == sorted(official)
  assert set(FAMILY) == {f for f, _ in TABLE.values()}


@pytest.mark.parametrize('name', sorted(TABLE))
def test_config_equals_official(name, official):
  found = _check(name, official[name])
  kept = deliberate(name)
  unexplained = {k: v for k, v in found.items() if k not in kept or not _equal(v[1], kept[k])}
  assert not unexplained, f'{name} vs {TABLE[name]}: key: (official, mbjax) {unexplained}'
  # A deliberate entry whose key is in the file must still differ (else it is stale).
  stale = sorted(k for k in kept if k in official[name] and k not in found)
  assert not stale, f'{name}: DELIBERATE entries {stale} no longer differ'


def test_every_deliberate_and_unmapped_entry_is_used(official):
  for pattern, key, _, why in DELIBERATE:
    assert why and any(fnmatch.fnmatch(n, pattern) and key in v for n, v in official.items()), (
        pattern, key)
  for family, reasons in UNMAPPED.items():
    for key, why in reasons.items():
      names = [n for n, (f, _) in TABLE.items() if FAMILY[f] == family]
      assert why and any(key in official[n] for n in names), (family, key)


@pytest.mark.parametrize('name, field, value, key', [
    ('mesh/MB_ft_h36m.yaml', 'warmup_h36m', 20, 'warmup_h36m'),
    ('mesh/MB_train_pw3d.yaml', 'lr', 5e-5, 'lr_backbone'),
    ('action/MB_train_NTU120_oneshot.yaml', 'lr_head', 1e-4, 'lr_head'),
    ('pose3d/MB_train_h36m.yaml', 'epochs', 60, 'epochs'),
    ('pretrain/MB_lite.yaml', 'model.mlp_ratio', 2, 'mlp_ratio'),
])
def test_a_changed_value_is_reported(name, field, value, key, official):
  config_file, arg = TABLE[name]
  c = _load(config_file, arg)
  assert key not in differences(FAMILY[config_file], official[name], c)
  with c.unlocked():
    *parents, last = field.split('.')
    node = c
    for part in parents:
      node = node[part]
    node[last] = value
  found = differences(FAMILY[config_file], official[name], c)
  assert key in found and found[key][1] == value, found


def test_the_mesh_h36m_variant_does_not_add_coco(official):
  c = _load('configs/mesh.py', 'h36m')
  with c.unlocked():
    c.data.coco = 'mesh_coco'
    c.warmup_coco = 100
  found = differences('mesh', official['mesh/MB_ft_h36m.yaml'], c)
  assert found['dt_file_coco'] == (ABSENT, 'mesh_det_coco.pkl')
  assert found['warmup_coco'] == (ABSENT, 100)


def test_a_deliberate_key_with_another_value_fails(official):
  c = _load('configs/pose3d_h36m.py', 'ft')
  with c.unlocked():
    c.checkpoint.snapshot_every_epochs = 5
  found = differences('pose3d', official['pose3d/MB_ft_h36m.yaml'], c)
  assert found['checkpoint_frequency'] == (30, 5)
  assert not _equal(found['checkpoint_frequency'][1], deliberate('pose3d/MB_ft_h36m.yaml')[
      'checkpoint_frequency'])


def test_an_official_key_without_a_counterpart_fails(official):
  values = dict(official['action/MB_ft_NTU60_xsub.yaml'], new_official_knob=1)
  with pytest.raises(KeyError, match=r"official keys \['new_official_knob'\]"):
    differences('action', values, _load('configs/action_ntu60.py', 'xsub'))
