"""Every validation slice that picks a best checkpoint shares no frame with training.

Training clips overlap (mesh: 16 frames every 8, H36M: 243 every 81) and camera views of one take
show one motion (H36M: 4 cameras with the same 3D labels; NTU: 3 views of one performance), so a
slice of single clips leaks. For each holdout (the mesh validation slice, the action validation
slice, the `val=S8` subjects of pose3d and pretraining) the validation records are read the way
the evaluator reads them and the training records the way the task trains on them, on tiny builds
of the published formats; a frame is (take without camera, row of the split).
"""

import numpy as np
import pytest

import data_formats
from data_prep import builder
from mbjax.data import holdout, records
from mbjax.evaluate import mesh as mesh_eval
from mbjax.tasks import action, mesh, pose3d

H36M_CAMERAS = ('54138969', '55011271')


def _text(value) -> str:
  value = value.item() if isinstance(value, np.ndarray) else value
  return value.decode() if isinstance(value, bytes) else str(value)


def _take(record) -> str:
  """The take of a clip, by hand: H36M `_ca_NN` and NTU `CNNN` cut out of its name."""
  if 'source' in record:
    name = _text(record['source'])
    return name.rsplit('_ca_', 1)[0]
  name = _text(record['frame_dir'])
  return name[:4] + name[8:] if len(name) == 20 and name[4] == 'C' else name


def _frames(source) -> set:
  """{(take, row)} of every frame of every record (NTU: a record is a whole video)."""
  out = set()
  for i in range(len(source)):
    record = source[i]
    rows = record['frame_index'] if 'frame_index' in record else range(
        int(record['total_frames']))
    out.update((_take(record), int(r)) for r in rows)
  return out


def _takes(source) -> set:
  return {_take(source[i]) for i in range(len(source))}


def _check_no_leak(train, val):
  assert len(val) and len(train)
  assert not _takes(train) & _takes(val)
  assert not _frames(train) & _frames(val)


# ----------------------------------------------------------------------------------------------
# Mesh: the validation slice of `data.val_dataset`'s train split.


def _mesh_split(rng, sequences, **kw):
  split = data_formats.mesh_split(sequences, **kw)
  n = len(split['source'])
  split['smpl_pose'] = rng.normal(0, 0.2, (n, 72)).astype(np.float32)
  split['smpl_shape'] = rng.normal(0, 0.5, (n, 10)).astype(np.float32)
  return split


@pytest.fixture(scope='module')
def mesh_dir(tmp_path_factory):
  """mesh_pw3d: 6 sequences of 12 frames; mesh_h36m: 3 takes x 2 cameras; clips 4, stride 2."""
  root = tmp_path_factory.mktemp('mesh_leaks')
  rng = np.random.default_rng(0)
  takes = [f's_0{s}_act_02_subact_01' for s in (1, 5, 6)]
  h36m_seqs = [(f'{t}_ca_0{c + 1}', 12) for t in takes for c in range(2)]
  splits = {
      'pw3d': {'train': _mesh_split(rng, [(f'seq{i}', 12) for i in range(6)]),
               'test': _mesh_split(rng, [('test0', 8)])},
      'h36m': {'train': _mesh_split(rng, h36m_seqs, cameras=list(H36M_CAMERAS) * 3),
               'test': _mesh_split(rng, [('s_09_act_02_subact_01_ca_01', 8)],
                                   cameras=[H36M_CAMERAS[0]])}}
  for name, split in splits.items():
    path = data_formats.write_mesh_pickle(root / f'mesh_det_{name}.pkl', split)
    builder.build(f'mesh_{name}', source=path, data_dir=root / 'tfds',
                  options=dict(clip_len=4, train_stride=2))
  return str(root / 'tfds')


@pytest.mark.parametrize('dataset', ['mesh_pw3d', 'mesh_h36m'])
def test_mesh_validation_slice_shares_no_frame_with_training(tiny_config, mesh_dir, dataset):
  c = tiny_config('tiny_mesh', mesh_dir)
  c.data.update(h36m='mesh_h36m', coco='', pw3d='mesh_pw3d', val_dataset=dataset)
  c.evals.val.dataset = dataset
  name = dataset.removeprefix('mesh_')
  train = mesh.train_source(c, name)
  val = mesh_eval.split_source(c, dict(c.evals.val))
  _check_no_leak(train, val)
  everything = records.load(dataset, 'train', data_dir=mesh_dir)
  assert len(train) + len(val) == len(everything)
  # The slice of single clips it replaces would leak: most of its frames are in training clips.
  held = holdout.holdout_indices(len(everything), c.data.val_fraction, c.data.val_seed)
  clips = set(held.tolist())
  old_val = [everything[i] for i in clips]
  old_train = [everything[i] for i in range(len(everything)) if i not in clips]
  assert _frames(old_train) & _frames(old_val)


# ----------------------------------------------------------------------------------------------
# Action: the validation slice of the NTU training split.


@pytest.fixture(scope='module')
def ntu_dir(tmp_path_factory):
  """ntu60 xsub_train: 8 performances, each seen by cameras C001..C003 (24 videos)."""
  root = tmp_path_factory.mktemp('ntu_leaks')
  anns = []
  for p in range(8):
    for cam in (1, 2, 3):
      anns.append(data_formats.ntu_annotation(f'S001C00{cam}P{p:03d}R001A{p % 4 + 1:03d}', p % 4,
                                              frames=6, seed=len(anns)))
  names = [a['frame_dir'] for a in anns]
  split = {'xsub_train': names, 'xsub_val': names[:4], 'xview_train': names,
           'xview_val': names[:4]}
  data_formats.write_pyskl(root / 'ntu60_hrnet.pkl', anns, split)
  builder.build('ntu60', source=root / 'ntu60_hrnet.pkl', data_dir=root / 'tfds')
  return str(root / 'tfds')


def test_action_validation_slice_holds_whole_performances(tiny_config, ntu_dir):
  c = tiny_config('tiny_action', ntu_dir)
  train = action.split_source(c, 'xsub_train', part='train')
  val = action.split_source(c, 'xsub_train', part='val')
  _check_no_leak(train, val)
  assert len(val) % 3 == 0 and len(val) >= 0.25 * 24  # whole performances, all three views


# ----------------------------------------------------------------------------------------------
# Human3.6M: the `val=S8` subjects of pose3d finetuning and of pretraining.


@pytest.fixture(scope='module')
def h36m_dir(tmp_path_factory):
  seqs = [(f's_0{s}_act_02_subact_01_ca_0{c + 1}', H36M_CAMERAS[c], '', 324)
          for s in (1, 8) for c in range(2)]
  return data_formats.build_random_h36m(
      tmp_path_factory.mktemp('h36m_leaks'), seqs,
      [('s_09_act_02_subact_01_ca_01', H36M_CAMERAS[0], 'Directions', 243)])


def _h36m_val_source(c, data_dir):
  """The records the `h36m_val` evaluator reads (mbjax/evaluate/h36m_val.py)."""
  spec = c.evals.h36m_val
  return records.load_spec(dict(name=spec.name, split=spec.split, subjects=spec.subjects),
                           data_dir)


def test_pose3d_held_out_subjects_share_no_frame_with_training(tiny_config, h36m_dir):
  c = tiny_config('tiny_pose3d', f'{h36m_dir},val=S8')
  train = records.load_spec(pose3d.train_spec(c), h36m_dir)
  _check_no_leak(train, _h36m_val_source(c, h36m_dir))


def test_pretraining_held_out_subjects_share_no_frame_with_training(h36m_dir):
  from configs import pretrain
  c = pretrain.get_config('tiny,val=S8')
  specs = [s for s in c.data.sources_3d if s['name'] == 'h36m']
  assert len(specs) == 1
  train = records.load_spec(specs[0], h36m_dir)
  _check_no_leak(train, _h36m_val_source(c, h36m_dir))


def test_sequence_of_names_the_take():
  assert holdout.sequence_of({'source': b's_08_act_02_subact_01_ca_03'}) == (
      's_08_act_02_subact_01')
  assert holdout.sequence_of({'source': 'downtown_walking_00'}) == 'downtown_walking_00'
  assert holdout.sequence_of({'frame_dir': 'S017C002P020R002A060'}) == 'S017P020R002A060'
  assert holdout.sequence_of({'frame_dir': 'wave/clip_01'}) == 'wave/clip_01'
  with pytest.raises(ValueError, match='without `source` or `frame_dir`'):
    holdout.sequence_of({'joints3d': 0})


def test_group_holdout_is_seeded_and_whole():
  groups = np.repeat(['a', 'b', 'c', 'd', 'e'], [4, 1, 3, 2, 5])
  held = holdout.holdout_groups(groups, 0.3, seed=0)
  np.testing.assert_array_equal(held, holdout.holdout_groups(groups, 0.3, seed=0))
  assert len(held) >= 0.3 * len(groups)
  for g in set(groups[held]):  # whole groups only
    assert set(np.flatnonzero(groups == g)) <= set(held.tolist())
  assert len(holdout.holdout_groups(groups, 0.0, seed=0)) == 0
  with pytest.raises(ValueError, match='leaves none to train on'):
    holdout.holdout_groups(np.array(['a'] * 5), 0.1, seed=0)
  # One group per record: the per-record draw, as before.
  np.testing.assert_array_equal(
      holdout.holdout_indices(24, 0.25, 0),
      np.sort(np.random.default_rng([0, 24]).permutation(24)[:6]))
