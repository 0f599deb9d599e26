"""NTU-60 action classification end to end on a tiny PYSKL pickle built with the real builder:
finetuning from an official pretrained .bin (BatchNorm statistics, checkpoints, the best one kept
on the validation slice), the step-0 evaluation equal to the evaluate CLI on the same weights, the
evaluator's numbers by hand, the official test transform, and the config variants."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta
from scipy.special import softmax

import data_formats
import kill_resume
from data_prep import builder
from mbjax import checkpoint, models, train
from mbjax.checkpoint import official
from mbjax.logs import metric_writer
from mbjax.data import finetune, holdout, pipelines, records, transforms
from mbjax.evaluate import action as action_eval
from mbjax.evaluate import __main__ as cli
from mbjax.models import DSTformer
from mbjax.models.dstformer import TINY
from mbjax.tasks import action

NUM_TRAIN, NUM_TEST, CLASSES = 24, 8, 6
METRICS = ('top1', 'top5', 'mean_class_accuracy', 'loss')


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  """A tiny ntu60 build: 24 xsub_train and 8 xsub_val clips of 5..44 frames, 1 or 2 persons."""
  root = tmp_path_factory.mktemp('ntu60')
  anns, names = [], []
  for i in range(NUM_TRAIN + NUM_TEST):
    label = i % CLASSES
    names.append(f'S001C00{1 + i % 3}P{i:03d}R001A{label + 1:03d}')
    anns.append(data_formats.ntu_annotation(names[-1], label, frames=5 + (7 * i) % 40,
                                            persons=1 + i % 2, seed=i))
  split = {'xsub_train': names[:NUM_TRAIN], 'xsub_val': names[NUM_TRAIN:],
           'xview_train': names[NUM_TRAIN:], 'xview_val': names[:NUM_TRAIN]}
  data_formats.write_pyskl(root / 'ntu60_hrnet.pkl', anns, split)
  builder.build('ntu60', source=root / 'ntu60_hrnet.pkl', data_dir=root / 'tfds')
  return str(root / 'tfds')


@pytest.fixture(scope='module')
def pretrained_bin(tmp_path_factory):
  """An official-layout pretrained DSTformer .bin (`model_pos`) of the tiny size, random weights."""
  module = DSTformer(**dict(TINY, maxlen=9))
  abstract = meta.unbox(jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 9, 17, 3))))
  rng = np.random.default_rng(3)
  variables = jax.tree.map(lambda a: rng.normal(0, 0.2, a.shape).astype(np.float32), abstract)
  path = tmp_path_factory.mktemp('pretrained') / 'latest_epoch.bin'
  official.save_official(variables, 'pose', path)
  return path


def _config(tiny_config, data_dir, *words, **fields):
  c = tiny_config('tiny_action', ','.join([data_dir, *words]))
  with c.unlocked():
    c.update(fields)
  return c


@pytest.fixture(scope='module')
def finetuned(tmp_path_factory, tiny_config, data_dir, pretrained_bin):
  """(config, workdir, summary) of 2 epochs (8 steps) finetuned from the pretrained .bin."""
  c = _config(tiny_config, data_dir, init_from=str(pretrained_bin))
  with c.unlocked():
    c.checkpoint.keep = 10  # the step-2 state too (test_finetune_trains_...)
  workdir = str(tmp_path_factory.mktemp('ft') / 'run')
  summary = train.train_and_evaluate(c, workdir)
  return c, workdir, summary


def _logged(workdir):
  """{step: {metric: value}} of metrics.jsonl."""
  out = {}
  for row in metric_writer.read_jsonl(os.path.join(workdir, 'metrics.jsonl')):
    out.setdefault(row['step'], {}).update(row)
  return out


def test_finetune_trains_batchnorm_and_keeps_the_best_on_validation(finetuned, pretrained_bin):
  c, workdir, summary = finetuned
  assert summary['step'] == 8  # 18 training clips (6 held out) -> 4 batches of 4, 2 epochs
  state = checkpoint.read_state(workdir)
  bn = state['model_state']['batch_stats']['head']['bn']
  assert int(bn['num_batches_tracked']) == 8  # its values: test_batchnorm_statistics_by_hand
  # AdamW moves a weight by at most lr (1 + wd |w|) a step, by exactly that on the first step
  # and close to it on the second where both gradients agree: after 2 steps the backbone (lr
  # 1e-4, not the head's 1e-3) moved by just under 2e-4 at most.
  pretrained = official.official_to_variables(official.load_official(pretrained_bin), 'pose')
  two = checkpoint.read_state(workdir, step=2)
  moved = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(np.asarray(a) - b),
                                       two['params']['backbone'], pretrained['params']))
  largest = max(float(m.max()) for m in moved)
  weights = max(float(np.abs(w).max()) for w in jax.tree.leaves(pretrained['params']))
  assert 1.8 * c.lr <= largest <= 2 * c.lr * (1 + c.weight_decay * weights) + 1e-9, largest
  logged = _logged(workdir)
  assert {s for s, m in logged.items() if 'val/top1_error' in m} == {0, 2, 4, 6, 8}
  assert {s for s, m in logged.items() if 'test/top1' in m} == {0, 4, 8}
  assert all(k in logged[1] for k in ('action/loss', 'action/top1', 'action/top5'))
  assert logged[8]['val/clips'] == 6 and logged[8]['test/clips'] == NUM_TEST
  best = sorted(int(s) for s in os.listdir(os.path.join(workdir, 'best')) if s.isdigit())
  errors = {s: logged[s]['val/top1_error'] for s in (2, 4, 6, 8)}
  assert len(best) == 1 and errors[best[0]] == min(errors.values())
  # The trainer keeps a confusion matrix picture of each evaluation (registry.save_artifacts).
  pictures = sorted(p for p in os.listdir(workdir) if p.startswith('confusion_'))
  assert 'confusion_test_8.png' in pictures and 'confusion_val_2.png' in pictures, pictures


def test_step0_evaluation_equals_the_cli_on_the_same_weights(finetuned, tmp_path, pretrained_bin):
  c, workdir, _ = finetuned
  s = train.setup(c, with_data=False)
  state = jax.device_get(s.init_state())  # what the trainer starts from: seed, then init_from
  variables, report = s.task.load_pretrained(train.variables_of(state), str(pretrained_bin))
  assert report['fresh'] and all(k.startswith(action.FRESH[0][1:]) or
                                 k.startswith(action.FRESH[1][1:]) for k in report['fresh'])
  official_bin = tmp_path / 'best_epoch.bin'  # as train_action.py saves it: `model`, module.*
  official.save_official(variables, 'action-class', official_bin, epoch=0)
  result = cli.run(c, str(official_bin), str(tmp_path / 'eval' / 'eval.json'))
  step0 = _logged(workdir)[0]
  for name in ('val', 'test'):
    for metric in METRICS:
      np.testing.assert_allclose(result[name][metric], step0[f'{name}/{metric}'], rtol=1e-5,
                                 err_msg=f'{name}/{metric}')
  assert os.path.isfile(tmp_path / 'eval' / 'confusion_test.png')
  saved = json.loads((tmp_path / 'eval' / 'eval.json').read_text())
  assert np.asarray(saved['test']['confusion']).sum() == NUM_TEST


def test_cli_on_the_workdir_and_best_equals_the_trainer(finetuned, tmp_path, capsys):
  c, workdir, summary = finetuned
  result = cli.run(c, workdir, str(tmp_path / 'eval.json'), evals=['test'])
  for metric in METRICS:
    np.testing.assert_allclose(result[metric], summary[f'test/{metric}'], rtol=1e-5)
  printed = capsys.readouterr().out
  assert f'top1 {result["top1"]:.2f}' in printed and 'top5' in printed
  best = cli.run(c, os.path.join(workdir, 'best'), str(tmp_path / 'best.json'), evals=['val'])
  logged = _logged(workdir)
  best_step = max(int(s) for s in os.listdir(os.path.join(workdir, 'best')) if s.isdigit())
  np.testing.assert_allclose(best['loss'], logged[best_step]['val/loss'], rtol=1e-5)


def test_cli_refuses_a_backbone_without_its_head(finetuned, tmp_path, pretrained_bin):
  c, _, _ = finetuned
  with pytest.raises(ValueError, match='holds a pose model .*asks for an action-class model .*'
                                       'pretrained backbone alone only starts a training run'):
    cli.run(c, str(pretrained_bin), str(tmp_path / 'eval.json'))
  with pytest.raises(ValueError, match='--evals: no evaluator h36m'):
    cli.run(c, str(finetuned[1]), str(tmp_path / 'eval.json'), evals=['h36m'])


def test_batchnorm_statistics_by_hand(tiny_config, data_dir):
  """One training batch through the task's loss: the head's running statistics move as torch's
  BatchNorm1d (momentum 0.1, the unbiased batch variance), computed in numpy from the fc1 output
  of the same train-mode pass (same dropout)."""
  c = _config(tiny_config, data_dir)
  model = action.make_model(c)
  curriculum = finetune.make_action_curriculum(
      action.split_source(c, 'xsub_train', part='train'), epochs=1, global_batch=4,
      **action.augmentation(c))
  batch = pipelines.HostBatches(curriculum, seed=0)[0]
  variables = meta.unbox(model.init(jax.random.key(1), batch['input']))
  rng = np.random.default_rng(2)
  old = {k: rng.uniform(0.5, 1.5, v.shape).astype(np.float32) if k == 'var' else
         rng.normal(0, 0.3, np.shape(v)).astype(np.asarray(v).dtype)
         for k, v in variables['batch_stats']['head']['bn'].items()}
  old['num_batches_tracked'] = np.int32(5)
  variables['batch_stats']['head']['bn'] = old
  key = jax.random.key(3)
  _, (_, state) = action.loss_fn(model, variables, batch, key, 'action', c)
  _, captured = model.apply(variables, batch['input'], train=True, rngs={'dropout': key},
                            capture_intermediates=True, mutable=['batch_stats', 'intermediates'])
  h = np.asarray(captured['intermediates']['head']['fc1']['__call__'][0], np.float64)
  new = state['batch_stats']['head']['bn']
  np.testing.assert_allclose(new['mean'], 0.9 * old['mean'] + 0.1 * h.mean(0), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(new['var'], 0.9 * old['var'] + 0.1 * h.var(0, ddof=1), rtol=1e-5,
                             atol=1e-6)
  assert int(new['num_batches_tracked']) == 6


# ----------------------------------------------------------------------------------------------
# The evaluator by hand.


class _LinearModel:
  """logits = mean over persons, frames of x @ w: a model whose outputs numpy can recompute."""

  def __init__(self, w):
    self.w = w

  def apply(self, variables, x):
    return jnp.einsum('nmtjc,jck->nk', x, variables['w']) / (x.shape[1] * x.shape[2])


def _by_hand(source, w, num_clips):
  """(top1, top5, mean class accuracy, loss) with plain loops over records and classes."""
  hits1 = hits5 = 0
  per_class, losses = {}, []
  for i in range(len(source)):
    record = source[i]
    probs = 0
    for k in range(num_clips):
      x = finetune.action_example(record, np.random.default_rng(99), n_frames=9, train=False,
                                  scale_range=(2, 2), resample_offset=k / num_clips)['input']
      probs = probs + softmax(np.einsum('mtjc,jck->k', x.astype(np.float64), w) / (2 * 9))
    probs = probs / num_clips
    label = int(record['label'])
    order = sorted(range(len(probs)), key=lambda c: -probs[c])
    hits1 += order[0] == label
    hits5 += label in order[:5]
    per_class.setdefault(label, []).append(order[0] == label)
    losses.append(-np.log(probs[label]))
  n = len(source)
  return (100 * hits1 / n, 100 * hits5 / n,
          100 * np.mean([np.mean(v) for v in per_class.values()]), np.mean(losses))


@pytest.mark.parametrize('num_clips', [1, 3])
def test_evaluator_numbers_by_hand(tiny_config, data_dir, num_clips):
  c = _config(tiny_config, data_dir)
  w = np.random.default_rng(5).normal(0, 40, (17, 3, 60))
  spec = dict(type='action', split='xsub_val', batch_size=3, num_clips=num_clips)
  run = action_eval.make_evaluator(c, _LinearModel(w), spec, action.evaluator_inputs(c))
  result = run({'w': jnp.asarray(w, jnp.float32)})
  source = records.load('ntu60', 'xsub_val', data_dir=data_dir)
  top1, top5, mean_class, loss = _by_hand(source, w, num_clips)
  assert 0 < top5 < 100 and result['clips'] == NUM_TEST and result['num_clips'] == num_clips
  np.testing.assert_allclose([result['top1'], result['top5'], result['mean_class_accuracy']],
                             [top1, top5, mean_class], atol=1e-9)
  np.testing.assert_allclose(result['loss'], loss, rtol=1e-5)
  assert result['top1_error'] == 100 - result['top1']
  confusion = np.asarray(result['confusion'])
  labels = [int(source[i]['label']) for i in range(len(source))]
  assert confusion.shape == (60, 60) and confusion.sum(axis=1)[:CLASSES].tolist() == [
      labels.count(k) for k in range(CLASSES)]


def test_metrics_of_known_scores():
  scores = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]]))
  result = action_eval.classification_metrics(scores, np.array([0, 2, 0, 0]))
  assert result['top1'] == 50 and result['top5'] == 100 and result['classes'] == 2
  # class 0: 2 of 3 right; class 2: 0 of 1 -> mean (2/3 + 0) / 2
  np.testing.assert_allclose(result['mean_class_accuracy'], 100 / 3)
  assert result['confusion'] == [[2, 0, 1], [0, 0, 0], [0, 1, 0]]
  with pytest.raises(ValueError, match='labels in'):
    action_eval.classification_metrics(scores, np.array([0, 3, 0, 0]))


def test_multi_clip_offsets_move_the_resampled_frames():
  np.testing.assert_array_equal(transforms.resample_indices(20, 9),
                                np.linspace(0, 20, 9, endpoint=False).astype(int))
  np.testing.assert_array_equal(transforms.resample_indices(20, 8, offset=0.5),
                                [1, 3, 6, 8, 11, 13, 16, 18])  # (i + 0.5) * 2.5, truncated
  np.testing.assert_array_equal(transforms.resample_indices(3, 4, offset=0.75),
                                [0, 1, 2, 2])  # 0.5625 + 0.75 i, the last clipped at 2


def test_official_test_transform_of_the_built_split(reference_dir, tmp_path):
  """action_data_tiny.npz: the official NTURGBD test transform on a PYSKL pickle (two persons
  with a tracker swap; one person padded with zeros that crop-scale moves) through our builder,
  records and the evaluator's clip batches."""
  ref = np.load(reference_dir / 'action_data_tiny.npz')
  names = json.loads(str(ref['config']))['frame_dir']
  anns = []
  for i, name in enumerate(names):
    shape = tuple(int(v) for v in ref[f's{i}/img_shape'])
    anns.append({'frame_dir': name, 'label': int(ref[f's{i}/label']), 'img_shape': shape,
                 'original_shape': shape, 'total_frames': int(ref[f's{i}/total_frames']),
                 'keypoint': ref[f's{i}/keypoint'], 'keypoint_score': ref[f's{i}/keypoint_score']})
  split = {'xsub_train': [], 'xsub_val': names, 'xview_train': [], 'xview_val': []}
  data_formats.write_pyskl(tmp_path / 'ntu60_hrnet.pkl', anns, split)
  builder.build('ntu60', source=tmp_path / 'ntu60_hrnet.pkl', data_dir=tmp_path / 'tfds')
  source = records.load('ntu60', 'xsub_val', data_dir=tmp_path / 'tfds')
  batch = action_eval.clip_batches(source, n_frames=243, scale_range=(2, 2), batch_size=2)[0]
  for i in range(2):
    np.testing.assert_allclose(batch['input'][i], ref[f's{i}/out'], rtol=0, atol=1e-6)
    assert batch['label'][i] == ref[f's{i}/label']


# ----------------------------------------------------------------------------------------------
# Data split, configs, FLOPs.


def test_validation_slice_is_disjoint_from_training(tiny_config, data_dir):
  c = _config(tiny_config, data_dir)
  frame_dirs = lambda src: {src[i]['frame_dir'] for i in range(len(src))}
  trained = frame_dirs(action.split_source(c, 'xsub_train', part='train'))
  held = frame_dirs(action.split_source(c, 'xsub_train', part='val'))
  assert len(held) == 6 and len(trained) == 18 and not trained & held
  assert trained | held == frame_dirs(action.split_source(c, 'xsub_train'))
  np.testing.assert_array_equal(holdout.holdout_indices(24, 0.25, 0),
                                holdout.holdout_indices(24, 0.25, 0))
  assert len(holdout.holdout_indices(24, 0.0, 0)) == 0
  with pytest.raises(ValueError, match='leaves none to train on'):
    holdout.holdout_indices(1, 0.5, 0)


def test_config_variants(tiny_config):
  from configs import action_ntu60
  ft = action_ntu60.get_config('xsub')
  assert (ft.task, ft.data.dataset, ft.evals.test.split, ft.evals.val.split) == (
      'action', 'ntu60', 'xsub_val', 'xsub_train')
  assert (ft.lr, ft.lr_head, ft.head_patterns, ft.freeze_patterns, ft.finetune) == (
      1e-4, 1e-3, (r'^head/',), (), True)
  assert (ft.epochs, ft.batch_size, ft.weight_decay, ft.lr_decay) == (300, 32, 0.01, 0.99)
  assert dict(ft.model.head) == dict(version='class', num_classes=60, dropout_ratio=0.5,
                                     hidden_dim=2048)
  assert (ft.model.dim_feat, ft.model.depth, ft.clip_len, ft.best_metric) == (
      512, 5, 243, 'val/top1_error')
  assert tuple(ft.augment.scale_range_train) == (1, 3) and ft.augment.random_move
  scratch = action_ntu60.get_config('xview,scratch')
  assert (scratch.lr, scratch.lr_head, scratch.finetune, scratch.evals.test.split) == (
      1e-4, None, False, 'xview_val')
  frozen = action_ntu60.get_config('xsub,frozen,runlocal')
  assert frozen.freeze_patterns == (r'^backbone/',) and frozen.lr_head == 1e-3
  assert (frozen.batch_size, frozen.total_steps, frozen.evals.val.every_steps) == (8, 20, 10)
  with pytest.raises(ValueError, match='choose one of ft, scratch, frozen'):
    action_ntu60.get_config('xsub,scratch,frozen')
  with pytest.raises(ValueError, match="unknown variant 'ntu'"):
    action_ntu60.get_config('ntu')


def test_frozen_and_ft_parameter_groups(tiny_config, data_dir):
  from mbjax.train import optim
  counts = {}
  for mode in ('ft', 'frozen', 'scratch'):
    c = _config(tiny_config, data_dir, mode)
    params = meta.unbox(models.abstract_variables(action.make_model(c),
                                                 action.example_batch(c))['params'])
    counts[mode] = optim.label_counts(params, c)
  head = 17 * 64 * 2048 + 2048 + 2 * 2048 + 2048 * 60 + 60  # fc1, bn scale / bias, fc2
  assert counts['ft']['head'] == counts['frozen']['head'] == head
  assert counts['frozen']['frozen'] == counts['ft']['backbone'] and 'backbone' not in counts[
      'frozen']
  assert counts['scratch'] == {'backbone': counts['ft']['backbone'] + head}


def test_config_mistakes_fail_clearly(tiny_config, data_dir):
  c = _config(tiny_config, data_dir)
  with pytest.raises(ValueError, match='finetune=True.*config.init_from is empty'):
    action.make_curriculum(c)
  model = action.make_model(c)
  with pytest.raises(ValueError, match='would select the best checkpoint on xsub_val'):
    action.make_evaluators(_config(tiny_config, data_dir, best_metric='test/top1_error'), model)
  assert set(action.make_evaluators(c, model)) == {'val', 'test'}
  no_val = _config(tiny_config, data_dir)
  with no_val.unlocked():
    no_val.data.val_fraction = 0.0
  assert set(action.make_evaluators(no_val, model)) == {'test'}
  assert len(action.split_source(no_val, 'xsub_train', part='train')) == NUM_TRAIN


def test_flops_count_both_persons(tiny_config, data_dir):
  from mbjax.models import flops
  c = _config(tiny_config, data_dir)
  fields = {k: v for k, v in c.model.items() if k not in ('head', 'maxlen')}
  backbone = flops.dstformer_forward_flops(batch=2 * c.batch_size, frames=9, with_head=False,
                                           **fields)
  head = 2 * c.batch_size * (17 * 64 * 2048 + 2048 * 60)
  assert action.flops_per_step(c) == 3 * (backbone + head)


@pytest.mark.slow
def test_finetune_resumes_bitwise_after_sigkill(tmp_path, data_dir, pretrained_bin):
  args = [f'--config={kill_resume.ROOT}/tests/configs/tiny_action.py:{data_dir}',
          f'--config.init_from={pretrained_bin}', '--config.epochs=4']
  straight, killed = str(tmp_path / 'straight'), str(tmp_path / 'killed')
  kill_resume.run_to_end(args, straight)
  assert 2 <= kill_resume.kill_after_checkpoint(args, killed, min_step=2) < 16
  kill_resume.run_to_end(args, killed)
  (step_a, a), (step_b, b) = kill_resume.final_state(straight), kill_resume.final_state(killed)
  assert step_a == step_b == 16
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # BatchNorm statistics too


def test_frozen_backbone_costs_no_backward_pass(tiny_config, data_dir):
  """With the backbone frozen, the compiled step does no backbone backward pass (XLA's count of
  the step's FLOPs: 2.5x fewer than finetuning at the tiny size; the same without stop_gradient)."""
  flops = {}
  for mode in ('ft', 'frozen'):
    s = train.setup(_config(tiny_config, data_dir, mode, init_from='unused'), with_data=False)
    batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sh) for (k, v), sh in zip(
        s.example.items(), jax.tree_util.tree_leaves(s.layout.batch_shardings))}
    compiled = s.train_step.lower(s.abstract_state(), batch, action.KIND).compile()
    flops[mode] = compiled.cost_analysis()['flops']
  assert flops['frozen'] < 0.5 * flops['ft'], flops  # forward only: ~1/3 of forward + backward
