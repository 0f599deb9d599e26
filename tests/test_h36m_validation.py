"""Validation on held-out H36M training subjects: the subject filter of dataset specs, the
`h36m_val` evaluator (pixels), the `val=S8` config word, and best-checkpoint selection off the test
split, on a tiny official-format pickle built by the real builder."""

import time

import numpy as np
import pytest

import data_formats
from data_prep import builder
from mbjax.data import subjects
from mbjax.data.records import load as load_split
from mbjax.data.records import load_spec
from mbjax.evaluate import h36m_val

# (source, camera, frames). Train: stride 81, so 405 frames -> 3 clips, 324 -> 2 clips.
TRAIN_SEQUENCES = [('s_01_act_02_subact_01_ca_01', '54138969', 405),
                   ('s_08_act_02_subact_01_ca_01', '54138969', 405),
                   ('s_05_act_03_subact_02_ca_02', '55011271', 405),
                   ('s_08_act_03_subact_01_ca_02', '55011271', 324)]
TRAIN_SUBJECTS = ['S1'] * 3 + ['S8'] * 3 + ['S5'] * 3 + ['S8'] * 2  # of the 11 built clips
TEST_SEQUENCES = [('s_09_act_02_subact_01_ca_01', '54138969', 243),
                  ('s_11_act_03_subact_01_ca_02', '55011271', 486)]


def _split(sequences, rng, *, test: bool) -> dict:
  """One split of the official pickle: random poses, 2.5D ground truth consistent with them."""
  n = sum(k for _, _, k in sequences)
  pixels = np.concatenate([rng.uniform(300, 700, (n, 17, 2)), rng.uniform(-100, 100, (n, 17, 1))],
                          axis=-1)
  split = {
      'joint_2d': (pixels[..., :2] + rng.normal(0, 3, (n, 17, 2))).astype(np.float32),
      'confidence': rng.uniform(0.3, 1.0, (n, 17)).astype(np.float32),
      'joint3d_image': pixels,
      'camera_name': np.array([c for _, c, k in sequences for _ in range(k)]),
      'source': [s for s, _, k in sequences for _ in range(k)],
  }
  if test:
    factor = rng.uniform(4.0, 5.0, n)
    split.update({'action': ['Directions'] * n, '2.5d_factor': factor,
                  'joints_2.5d_image': pixels * factor[:, None, None]})
  return split


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp('h36m_val')
  rng = np.random.default_rng(0)
  source = data_formats.write_h36m(root / 'h36m_sh_conf_cam_source_final.pkl',
                                   _split(TRAIN_SEQUENCES, rng, test=False),
                                   _split(TEST_SEQUENCES, rng, test=True))
  builder.build('h36m', source=source, data_dir=root / 'tfds')
  return str(root / 'tfds')


def _subjects_of(source) -> list[str]:
  return [subjects.subject_of(source[i]['source']) for i in range(len(source))]


# ----------------------------------------------------------------------------------------------
# The subject filter.


def test_subject_filter_keeps_and_drops_clips(data_dir):
  everything = load_split('h36m', 'train', data_dir=data_dir)
  assert _subjects_of(everything) == TRAIN_SUBJECTS
  spec = dict(name='h36m', split='train')
  only_s8 = load_spec(dict(spec, subjects=('S8',)), data_dir)
  assert len(only_s8) == 5 and _subjects_of(only_s8) == ['S8'] * 5
  # The kept records are those of S8, in their order: the same arrays as the unfiltered split.
  for kept, index in zip(range(5), [3, 4, 5, 9, 10]):
    np.testing.assert_array_equal(only_s8[kept]['joint_3d'], everything[index]['joint_3d'])
  without_s8 = load_spec(dict(spec, exclude_subjects=('s08',)), data_dir)  # any spelling
  assert _subjects_of(without_s8) == ['S1'] * 3 + ['S5'] * 3
  both = load_spec(dict(spec, subjects=('S1', 'S8'), exclude_subjects=('S8',)), data_dir)
  assert _subjects_of(both) == ['S1'] * 3
  assert load_spec(spec, data_dir).__class__ is everything.__class__  # no filter: the split
  assert subjects.subject_of(b's_11_act_02_subact_01_ca_03') == 'S11'


def test_subject_filter_errors_name_what_is_there(data_dir):
  spec = dict(name='h36m', split='train')
  with pytest.raises(ValueError, match=r'no record of subject S7; subjects present: S1, S5, S8'):
    load_spec(dict(spec, subjects=('S7',)), data_dir)
  with pytest.raises(ValueError, match=r'no record of subject S6; subjects present: S1, S5, S8'):
    load_spec(dict(spec, exclude_subjects=('S6',)), data_dir)
  with pytest.raises(ValueError, match=r'keeps no record \(subjects present: S1, S5, S8\)'):
    load_spec(dict(spec, subjects=('S8',), exclude_subjects=('S8',)), data_dir)
  with pytest.raises(ValueError, match=r"subject 'X8': expected a Human3.6M subject"):
    load_spec(dict(spec, subjects=('X8',)), data_dir)
  with pytest.raises(ValueError, match=r'record 1 has no `source` field \(fields: joints3d\)'):
    subjects.filter_subjects([{'source': 's_01_x'}, {'joints3d': 0}], subjects=('S1',))
  with pytest.raises(ValueError, match=r"record 0: source 'walk_01' does not name an H36M"):
    subjects.filter_subjects([{'source': 'walk_01'}], exclude_subjects=('S8',))


def test_subject_filter_reads_the_split_once(data_dir, monkeypatch):
  """The second load of a spec reuses the kept indices (the tasks load the h36m train spec for
  the curriculum and again for the epoch length)."""
  source = load_split('h36m', 'train', data_dir=data_dir)
  start = time.perf_counter()
  subjects.record_subjects(source)
  per_record = (time.perf_counter() - start) / len(source)
  assert per_record < 0.05, per_record  # reading whole records: well under a millisecond each
  spec = dict(name='h36m', split='train', exclude_subjects=('S5',))
  load_spec(spec, data_dir)
  calls = []
  original = subjects.record_subjects
  monkeypatch.setattr(subjects, 'record_subjects', lambda s: calls.append(s) or original(s))
  assert len(load_spec(spec, data_dir)) == 8
  assert calls == []


# ----------------------------------------------------------------------------------------------
# The h36m_val evaluator.


def _joint_offsets(norms: np.ndarray) -> np.ndarray:
  """(N, T) lengths -> (N, T, 17, 3) offsets of that length on joints 1..16, root untouched."""
  direction = np.array([2.0, -1.0, 2.0]) / 3.0
  out = np.zeros(norms.shape + (17, 3))
  out[..., 1:, :] = norms[..., None, None] * direction
  return out


def test_errors_are_root_relative_pixels_per_clip_width():
  rng = np.random.default_rng(1)
  gt = rng.uniform(-1, 1, (2, 5, 17, 3))
  res_w = np.array([1000.0, 500.0])
  # Clip 0 off by 0.01 normalised units (5 px at width 1000), clip 1 by 0.04 (10 px at 500); a
  # shift of the whole pose (root included) does not count.
  pred = gt + _joint_offsets(np.array([[0.01] * 5, [0.04] * 5])) + np.array([0.3, -0.2, 0.1])
  result = h36m_val.evaluate(pred, gt, res_w)
  np.testing.assert_allclose(result['mpjpe_px'], (5 + 10) / 2 * 16 / 17, rtol=1e-9)
  assert (result['clips'], result['frames']) == (2, 10)
  assert 0 < result['p_mpjpe_px'] < result['mpjpe_px']
  # A rotation and scale about the root: Procrustes removes it, MPJPE does not.
  angle = np.deg2rad(25)
  rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
  rel = gt - gt[:, :, :1]
  turned = h36m_val.evaluate(gt[:, :, :1] + 1.3 * rel @ rot.T, gt, res_w)
  assert turned['p_mpjpe_px'] < 1e-6 and turned['mpjpe_px'] > 10
  with pytest.raises(ValueError, match=r'res_w has shape \(3,\), expected \(2,\)'):
    h36m_val.evaluate(pred, gt, np.ones(3))
