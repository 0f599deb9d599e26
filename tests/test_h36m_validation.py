"""Validation on held-out H36M training subjects: the subject filter of dataset specs, the
`h36m_val` evaluator (pixels), the `val=S8` config word, and best-checkpoint selection off the test
split, on a tiny official-format pickle built by the real builder."""

import time

import jax.numpy as jnp
import numpy as np
import pytest

import data_formats
from configs import pose3d_h36m, pretrain
from mbjax import train
from mbjax.logs import metric_writer
from mbjax.data import subjects
from mbjax.data.records import load as load_split
from mbjax.data.records import load_spec
from mbjax.evaluate import h36m_val, registry
from mbjax.tasks import pose3d

# (source, camera, frames). Train: stride 81, so 405 frames -> 3 clips, 324 -> 2 clips.
TRAIN_SEQUENCES = [('s_01_act_02_subact_01_ca_01', '54138969', 405),
                   ('s_08_act_02_subact_01_ca_01', '54138969', 405),
                   ('s_05_act_03_subact_02_ca_02', '55011271', 405),
                   ('s_08_act_03_subact_01_ca_02', '55011271', 324)]
TRAIN_SUBJECTS = ['S1'] * 3 + ['S8'] * 3 + ['S5'] * 3 + ['S8'] * 2  # of the 11 built clips
TEST_SEQUENCES = [('s_09_act_02_subact_01_ca_01', '54138969', 243),
                  ('s_11_act_03_subact_01_ca_02', '55011271', 486)]
# Hand-made H36M left/right pairs, independent of mbjax.data.transforms.
MIRROR = np.arange(17)
MIRROR[[1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16]] = [4, 5, 6, 1, 2, 3, 14, 15, 16, 11, 12, 13]


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return data_formats.build_random_h36m(
      tmp_path_factory.mktemp('h36m_val'), [(s, c, '', k) for s, c, k in TRAIN_SEQUENCES],
      [(s, c, 'Directions', k) for s, c, k in TEST_SEQUENCES])


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


class _LinearModel:
  """A stand-in model, not flip-equivariant: x * per-joint weights + bias; records input shapes."""

  def __init__(self):
    self.weights = np.linspace(0.5, 2.1, 17).astype(np.float32)[:, None]
    self.bias = np.array([0.3, 0.2, 0.1], np.float32)
    self.shapes = set()

  def __call__(self, x, xp=np):
    """numpy (the hand computation) or, with xp=jnp, traced inside the evaluator's jit."""
    channels = xp.concatenate([x, xp.ones_like(x[..., :1])], -1) if x.shape[-1] == 2 else x
    return channels * self.weights + self.bias

  def apply(self, variables, x):
    self.shapes.add(x.shape[1:])
    return self(x, jnp)


def _by_hand(model, inputs, gt, *, gt_2d=False, res_w=1000.0) -> float:
  """MPJPE (px) as the evaluator should give it, computed without mbjax: the flip-averaged
  prediction, its root joint set to 0 (with gt_2d its x, y then replaced by the input's),
  root-relative against the root-relative ground truth."""
  sign = np.array([-1.0, 1.0, 1.0])
  mirror = lambda p: p[..., MIRROR, :] * sign[:p.shape[-1]]
  pred = (model(inputs) + mirror(model(mirror(inputs)))) / 2
  pred[:, :, 0] = 0
  if gt_2d:
    pred[..., :2] = inputs[..., :2]
  pred = pred - pred[:, :, :1]
  rel = gt - gt[:, :, :1]
  return float(np.mean(np.linalg.norm(pred - rel, axis=-1)) * res_w / 2)


def _val_config(tiny_config, data_dir, *words):
  return tiny_config('tiny_pose3d', ','.join([data_dir, 'val=S8', *words]))


def test_evaluator_runs_on_the_held_out_clips_and_matches_a_hand_computation(data_dir,
                                                                            tiny_config):
  config = _val_config(tiny_config, data_dir)
  spec = config.evals.h36m_val.to_dict()
  model = _LinearModel()
  result = h36m_val.make_evaluator(config, model, spec)({})
  assert result['clips'] == 5 and result['frames'] == 5 * 243  # the 5 clips of S8
  assert result['flip'] and result['rootrel'] and not result['gt_2d']
  held_out = load_spec(dict(name='h36m', split='train', subjects=('S8',)), data_dir)
  records = [held_out[i] for i in range(len(held_out))]
  inputs = np.stack([r['joint_2d'] for r in records])
  gt = np.stack([r['joint_3d'] for r in records]).astype(np.float64)
  assert {int(r['res_w']) for r in records} == {1000}  # every H36M camera is 1000 px wide
  np.testing.assert_allclose(result['mpjpe_px'], _by_hand(model, inputs, gt), rtol=1e-5)
  assert result['mpjpe_px'] > 100  # a wrong model is far off: the comparison means something

  # no_conf feeds x, y only; gt_2d feeds the ground truth's x, y and keeps them in the prediction.
  with config.unlocked():
    config.no_conf, config.gt_2d, config.model.dim_in = True, True, 2
  model = _LinearModel()
  result = h36m_val.make_evaluator(config, model, spec)({})
  assert model.shapes == {(243, 17, 2)} and result['gt_2d']
  want = _by_hand(model, gt[..., :2].astype(np.float32), gt, gt_2d=True)
  np.testing.assert_allclose(result['mpjpe_px'], want, rtol=1e-5)


def test_evaluator_refuses_the_test_split_and_missing_subjects(data_dir, tiny_config):
  config = _val_config(tiny_config, data_dir)
  spec = config.evals.h36m_val.to_dict()
  with pytest.raises(ValueError, match=r'split=test; validation clips come from the training'):
    h36m_val.make_evaluator(config, _LinearModel(), dict(spec, split='test'))
  with pytest.raises(ValueError, match=r"give the held-out training subjects, e.g. subjects"):
    h36m_val.make_evaluator(config, _LinearModel(), dict(spec, subjects=()))


# ----------------------------------------------------------------------------------------------
# The `val=S8` config word and model selection.


def test_val_word_holds_s8_out_of_pretraining_and_finetuning():
  plain = pretrain.get_config('lite')
  assert 'h36m_val' not in plain.evals and plain.best_metric == ''
  assert all('exclude_subjects' not in s for s in plain.data.sources_3d)
  c = pretrain.get_config('lite,val=S8')
  by_name = {s['name']: s for s in c.data.sources_3d}
  assert by_name['h36m']['exclude_subjects'] == ('S8',)
  assert 'exclude_subjects' not in by_name['amass']
  val = c.evals.h36m_val
  assert (val.type, val.name, val.split, val.subjects, val.every_epochs) == (
      'h36m_val', 'h36m', 'train', ('S8',), 1)
  assert c.best_metric == 'h36m_val/mpjpe_px'
  assert c.evals.h36m.split == 'test' and c.evals.h36m.every_steps == 0  # reported only

  ft = pose3d_h36m.get_config('ft')
  assert 'train' not in ft.data and ft.best_metric == ''  # the task reads all of h36m/train
  ft = pose3d_h36m.get_config('global_lite,val=S7+S8,no_conf')
  assert ft.data.train.exclude_subjects == ('S7', 'S8') and ft.no_conf
  assert ft.evals.h36m_val.subjects == ('S7', 'S8') and ft.best_metric == 'h36m_val/mpjpe_px'
  local = pose3d_h36m.get_config('ft,val=S8,runlocal')  # runlocal evaluates every 10 steps
  assert (local.evals.h36m_val.every_epochs, local.evals.h36m_val.every_steps) == (0, 10)


@pytest.mark.parametrize('word, message', [
    ('val', "switch 'val' needs a value, e.g. val=S8"),
    ('val=S9', "'S9' is not a Human3.6M training subject"),
    ('val=S8,val=S7', "switch 'val' given twice"),
    ('val=S1+S5+S6+S7+S8', 'leaves no subject to train on'),
])
def test_val_word_errors(word, message):
  with pytest.raises(ValueError, match=r'^configs/pose3d_h36m.py: ') as info:
    pose3d_h36m.get_config(f'ft,{word}')
  assert message in str(info.value)


def test_selection_never_on_test_and_never_on_training_clips(data_dir, tiny_config):
  config = _val_config(tiny_config, data_dir)
  registry.check_best_metric(config)
  with config.unlocked():
    config.best_metric = 'h36m/mpjpe'
  with pytest.raises(ValueError, match=r"best_metric='h36m/mpjpe' selects the best checkpoint on "
                                       r'the test split \(config.evals.h36m\)'):
    pose3d.make_evaluators(config, _LinearModel())
  config = _val_config(tiny_config, data_dir)
  with config.unlocked():
    del config.data.train['exclude_subjects']
  with pytest.raises(ValueError, match=r'config.evals.h36m_val validates on S8, but training reads '
                                       r"their clips from h36m/train: give that training source "
                                       r"exclude_subjects=\('S8',\)"):
    pose3d.make_evaluators(config, _LinearModel())
  without_train_spec = _val_config(tiny_config, data_dir)  # the task's default: all of train
  with without_train_spec.unlocked():
    del without_train_spec.data['train']
  with pytest.raises(ValueError, match=r'validates on S8, but training reads'):
    pose3d.make_evaluators(without_train_spec, _LinearModel())


def test_every_epoch_is_the_epoch_of_the_filtered_training_split(data_dir, tiny_config):
  config = _val_config(tiny_config, data_dir)
  with config.unlocked():
    config.batch_size = 2
  assert len(load_spec(config.data.train, data_dir)) == 6  # S1 and S5: 3 clips each
  evaluators = pose3d.make_evaluators(config, _LinearModel())
  assert evaluators['h36m_val'][0] == 3  # 6 clips / batch 2
  assert evaluators['h36m'][0] == config.evals.h36m.every_steps


@pytest.mark.slow  # 27 s end to end; tests/test_action.py keeps a best/ on validation in the suite
def test_training_keeps_the_best_validation_checkpoint(data_dir, tiny_config, tmp_path):
  config = _val_config(tiny_config, data_dir)
  workdir = tmp_path / 'ft'
  summary = train.train_and_evaluate(config, str(workdir))
  # 6 training clips (S8 held out), batch 4: 1 step an epoch, 2 epochs; h36m_val every epoch.
  assert summary['step'] == 2
  rows = metric_writer.read_jsonl(workdir / 'metrics.jsonl')
  val = {r['step']: r['h36m_val/mpjpe_px'] for r in rows if 'h36m_val/mpjpe_px' in r}
  assert sorted(val) == [0, 1, 2] and all(np.isfinite(v) and v > 0 for v in val.values())
  assert all('h36m/mpjpe' in r for r in rows if r['step'] in (0, 2) and 'h36m_val/mpjpe_px' in r)
  best = sorted(p.name for p in (workdir / 'best').iterdir() if p.name.isdigit())
  assert best == [str(min((1, 2), key=val.get))]  # the better of the trained steps, keep 1
