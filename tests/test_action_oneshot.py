"""NTU-120 one-shot end to end on a tiny PYSKL pickle built with the real builder: the one-shot
splits, class-paired batches (the official MPerClassSampler), the cosine 1-NN evaluator by hand,
a few training steps with the supervised contrastive loss, and the config variants."""

import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import data_formats
import official_action
from configs import action_ntu120_oneshot
from data_prep import builder, ntu
from mbjax import checkpoint, train
from mbjax.logs import metric_writer
from mbjax.data import finetune, per_class, pipelines, records
from mbjax.evaluate import __main__ as cli
from mbjax.evaluate import oneshot
from mbjax.tasks import action, action_oneshot

AUX_ORIG = (1, 2, 3, 4)  # NTU labels of the auxiliary classes in the file -> one-shot 0..3
AUX_CLIPS = 3  # per auxiliary class
EVAL_NOVEL = (0, 6, 12)  # novel NTU labels with 2 clips each to classify


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  """A tiny ntu120 build: 12 aux clips (4 classes), the 20 official exemplars, 6 eval clips."""
  root = tmp_path_factory.mktemp('ntu120')
  anns = []

  def add(name, label):
    i = len(anns)
    anns.append(data_formats.ntu_annotation(name, label, frames=5 + (7 * i) % 16,
                                            persons=1 + i % 2, seed=i))

  for label in AUX_ORIG:
    for k in range(AUX_CLIPS):
      add(f'S002C00{1 + k}P001R001A{label + 1:03d}', label)
  for label, name in ntu.OFFICIAL_EXEMPLARS.items():
    add(name, label)
  for label in EVAL_NOVEL:
    for k in range(2):
      add(f'S003C00{1 + k}P002R002A{label + 1:03d}', label)
  names = [a['frame_dir'] for a in anns]
  split = {s: names[:4] for s in ('xsub_train', 'xsub_val', 'xset_train', 'xset_val')}
  data_formats.write_pyskl(root / 'ntu120_hrnet.pkl', anns, split)
  builder.build('ntu120', source=root / 'ntu120_hrnet.pkl', data_dir=root / 'tfds')
  return str(root / 'tfds')


def _config(tiny_config, data_dir, *words, **fields):
  c = tiny_config('tiny_oneshot', ','.join([data_dir, *words]))
  with c.unlocked():
    c.update(fields)
  return c


def test_builder_gives_the_oneshot_splits(data_dir):
  aux = records.load('ntu120', 'oneshot_aux', data_dir=data_dir)
  exemplar = records.load('ntu120', 'oneshot_exemplar', data_dir=data_dir)
  evals = records.load('ntu120', 'oneshot_eval', data_dir=data_dir)
  assert sorted(per_class.source_labels(aux).tolist()) == sorted(
      [i for i in range(len(AUX_ORIG)) for _ in range(AUX_CLIPS)])
  assert sorted(per_class.source_labels(exemplar).tolist()) == list(range(20))
  assert sorted(per_class.source_labels(evals).tolist()) == [0, 0, 1, 1, 2, 2]


def _oneshot_folder(root, *, stored_as_novel_index=False):
  """data/action/ as officially: ntu120_hrnet.pkl (aux classes only) beside a tiny
  ntu120_hrnet_oneshot.pkl in the official layout: split oneshot_train (one exemplar per novel
  class, not the OFFICIAL_EXEMPLARS names) and oneshot_val (2 clips of 3 novel classes)."""
  root.mkdir()
  aux = [data_formats.ntu_annotation(f'S002C001P001R001A{label + 1:03d}', label, frames=6,
                                     seed=label) for label in AUX_ORIG]
  data_formats.write_pyskl(root / 'ntu120_hrnet.pkl', aux, {'xsub_train': [], 'xsub_val': [],
                                                            'xset_train': [], 'xset_val': []})
  anns, train, val = [], [], []
  for n, label in enumerate(ntu.NOVEL_CLASSES):
    stored = n if stored_as_novel_index else label
    anns.append(data_formats.ntu_annotation(f'S005C001P010R002A{label + 1:03d}', stored,
                                            frames=7 + n % 5, persons=1 + n % 2, seed=100 + n))
    train.append(anns[-1]['frame_dir'])
  for k, label in enumerate(EVAL_NOVEL * 2):
    stored = ntu.NOVEL_CLASSES.index(label) if stored_as_novel_index else label
    anns.append(data_formats.ntu_annotation(f'S006C00{1 + k // 3}P011R001A{label + 1:03d}',
                                            stored, frames=8, seed=200 + k))
    val.append(anns[-1]['frame_dir'])
  data_formats.write_pyskl(root / 'ntu120_hrnet_oneshot.pkl', anns,
                           {'oneshot_train': train, 'oneshot_val': val})
  return anns


@pytest.mark.parametrize('novel_index', [False, True])
def test_builder_reads_the_official_oneshot_pickle(tmp_path, novel_index):
  """Official train_action_1shot.py takes its exemplars from ntu120_hrnet_oneshot.pkl's
  oneshot_train split and the clips to classify from its oneshot_val split."""
  folder = tmp_path / 'action'
  anns = _oneshot_folder(folder, stored_as_novel_index=novel_index)
  builder.build('ntu120', source=folder, data_dir=tmp_path / 'tfds')
  by_name = {a['frame_dir']: a for a in anns}
  for split, names in (('oneshot_exemplar', [a['frame_dir'] for a in anns[:20]]),
                       ('oneshot_eval', [a['frame_dir'] for a in anns[20:]])):
    source = records.load('ntu120', split, data_dir=tmp_path / 'tfds')
    got = [source[i] for i in range(len(source))]
    assert [r['frame_dir'].decode() for r in got] == names
    for r in got:
      ntu_label = int(r['frame_dir'].decode()[-3:]) - 1
      assert int(r['orig_label']) == ntu_label
      assert int(r['label']) == list(range(0, 120, 6)).index(ntu_label)
      ann = by_name[r['frame_dir'].decode()]
      np.testing.assert_array_equal(r['keypoint'], ntu.sample_keypoint(
          ann['keypoint'], ann['keypoint_score'], ann['img_shape']))
  aux = records.load('ntu120', 'oneshot_aux', data_dir=tmp_path / 'tfds')
  assert sorted(int(aux[i]['label']) for i in range(len(aux))) == [0, 1, 2, 3]
  with pytest.raises(ValueError, match='give one of them'):
    builder.build('ntu120', source=folder, data_dir=tmp_path / 'other',
                  options=dict(exemplars=ntu.OFFICIAL_EXEMPLARS))


def test_oneshot_pickle_errors_name_the_sample(tmp_path):
  folder = tmp_path / 'action'
  anns = _oneshot_folder(folder)
  names = [a['frame_dir'] for a in anns]
  # A clip to classify whose class has no exemplar.
  data_formats.write_pyskl(folder / 'ntu120_hrnet_oneshot.pkl', anns,
                           {'oneshot_train': names[1:20], 'oneshot_val': names[20:]})
  with pytest.raises(ValueError, match=r'novel classes \[0\] without a sample in oneshot_train'):
    builder.build('ntu120', source=folder, data_dir=tmp_path / 'a')
  # A label that is not the novel class of its name.
  anns[3] = dict(anns[3], label=7)
  data_formats.write_pyskl(folder / 'ntu120_hrnet_oneshot.pkl', anns,
                           {'oneshot_train': names[:20], 'oneshot_val': names[20:]})
  with pytest.raises(ValueError, match=f'{names[3]}: label 7 is not a novel class'):
    builder.build('ntu120', source=folder, data_dir=tmp_path / 'b')


def _check_paired(labels, order, batch, n_views=2):
  for b in range(len(order) // batch):
    rows = labels[order[b * batch:(b + 1) * batch]].reshape(-1, n_views)
    assert np.all(rows == rows[:, :1]), rows  # the clips of a class are adjacent
    assert len(set(rows[:, 0].tolist())) == batch // n_views  # distinct classes


def test_class_batch_order_pairs_covers_and_is_deterministic():
  labels = np.repeat(np.arange(10), [5, 3, 2, 4, 6, 2, 3, 1, 2, 2])  # class 7 has one clip
  order = functools.partial(per_class.class_batch_order, labels, n_views=2, global_batch=8,
                            steps=30)
  a = order(np.random.default_rng([0, 0, 0]))
  assert a.shape == (240,)
  _check_paired(labels, a, 8)
  np.testing.assert_array_equal(a, order(np.random.default_rng([0, 0, 0])))
  assert not np.array_equal(a, order(np.random.default_rng([1, 0, 0])))
  # Each class once per pass over a class permutation (at most ceil(10 / 4) + 1 batches), so
  # every window of two passes holds every class.
  window = 2 * (math.ceil(10 / 4) + 1) * 8
  for start in range(0, len(a) - window + 1, 8):
    assert set(labels[a[start:start + window]].tolist()) == set(range(10))
  assert np.all(a[labels[a] == 7] == np.flatnonzero(labels == 7)[0])  # drawn with replacement
  with pytest.raises(ValueError, match='needs 6 classes'):
    per_class.class_batch_order(labels[labels < 5], np.random.default_rng(0), n_views=2,
                                global_batch=12, steps=1)
  with pytest.raises(ValueError, match='not a multiple of n_views=2'):
    per_class.ClassBatchOrder([], n_views=2, global_batch=5)


def test_trainer_batches_are_class_paired(tiny_config, data_dir):
  c = _config(tiny_config, data_dir, 'scratch', epochs=3)
  curriculum = action_oneshot.make_curriculum(c)
  labels = per_class.source_labels(curriculum.phases[0].source)
  assert curriculum.total_steps == 9  # 12 clips // 4 per epoch
  steps = {}
  for seed in (0, 0, 1):
    batches = pipelines.HostBatches(curriculum, seed=seed)
    order = np.concatenate([batches.indices(s) for s in range(curriculum.total_steps)])
    _check_paired(labels, order, 4)
    steps.setdefault(seed, []).append(order)
    batch = batches[0]
    np.testing.assert_array_equal(batch['label'], labels[batches.indices(0)])
    assert batch['input'].shape == (4, 2, 9, 17, 3)
  np.testing.assert_array_equal(*steps[0])
  assert not np.array_equal(steps[0][0], steps[1][0])
  assert set(labels[steps[0][0][:12]].tolist()) == set(range(len(AUX_ORIG)))


def test_nearest_exemplar_by_hand():
  exemplars = np.array([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0]])
  queries = np.array([[0.9, 0.1, 0], [0.1, 0.2, 0.1], [1, 1, 0.1], [0, 0.1, 0.5]])
  # cosine nearest: 0, 1, (0 / 1 tie at 45 degrees -> first: 0), 2 ; labels 0, 2, 1, 2
  result = oneshot.nearest_exemplar_metrics(queries, [0, 2, 1, 2], exemplars, [0, 1, 2])
  assert result == {'accuracy': 50.0, 'error': 50.0, 'clips': 4, 'classes': 3, 'shots': 1}
  # 2-shot: nearest exemplar and the nearest class mean can differ.
  two = oneshot.nearest_exemplar_metrics(
      np.array([[1.0, 0.3]]), [0], np.array([[1.0, 0.35], [-1.0, 1.0], [1.0, 0.2], [1.0, 0.2]]),
      [0, 0, 1, 1])
  assert two['shots'] == 2 and two['accuracy'] == 100.0 and two['prototype_accuracy'] == 0.0
  with pytest.raises(ValueError, match=r'classes \[5\] have no exemplar'):
    oneshot.nearest_exemplar_metrics(queries[:1], [5], exemplars, [0, 1, 2])


class _MeanModel:
  """A stand-in model: the embedding of a clip is its mean over persons, frames and joints."""

  @staticmethod
  def apply(variables, x):
    del variables
    return jnp.mean(x, axis=(1, 2, 3))


def test_evaluator_equals_a_hand_computation(tiny_config, data_dir):
  c = _config(tiny_config, data_dir)
  run = oneshot.make_evaluator(c, _MeanModel(), c.evals.test, action.evaluator_inputs(c))
  result = run({})

  def embed(split):
    source = records.load('ntu120', split, data_dir=data_dir)
    rows = [finetune.action_example(source[i], np.random.default_rng([0, 2, i]), n_frames=9,
                                    train=False, scale_range=(2, 2)) for i in range(len(source))]
    x = np.stack([r['input'].mean(axis=(0, 1, 2)) for r in rows]).astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.array([int(r['label']) for r in rows])

  q, q_labels = embed('oneshot_eval')
  e, e_labels = embed('oneshot_exemplar')
  expected = 100 * np.mean(e_labels[np.argmax(q @ e.T, axis=1)] == q_labels)
  assert result['clips'] == 6 and result['classes'] == 20 and result['shots'] == 1
  np.testing.assert_allclose(result['accuracy'], expected)


def _by_hand_accuracy(model, variables, data_dir):
  """One-shot accuracy (%) of `variables`, the inputs made in plain numpy as the official test
  transform (evenly spaced frames, crop_scale [2, 2]: tests/official_action.py) and the cosine
  nearest exemplar in numpy."""
  def embed(split):
    source = records.load('ntu120', split, data_dir=data_dir)
    inputs, labels = [], []
    for i in range(len(source)):
      kp = source[i]['keypoint']
      frames = np.linspace(0, kp.shape[1], 9, endpoint=False).astype(int)
      inputs.append(official_action.crop_scale(kp[:, frames], (2, 2), np.random.default_rng(0)))
      labels.append(int(source[i]['label']))
    x = np.asarray(model.apply(variables, np.stack(inputs).astype(np.float32)), np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.array(labels)

  e, e_labels = embed('oneshot_exemplar')
  q, q_labels = embed('oneshot_eval')
  return 100 * np.mean(e_labels[np.argmax(q @ e.T, axis=1)] == q_labels)


def test_end_to_end_training_reports(tmp_path, tiny_config, data_dir):
  c = _config(tiny_config, data_dir, 'scratch')
  workdir = str(tmp_path / 'run')
  summary = train.train_and_evaluate(c, workdir)
  assert summary['step'] == 3
  logged = {}
  for row in metric_writer.read_jsonl(os.path.join(workdir, 'metrics.jsonl')):
    logged.setdefault(row['step'], {}).update(row)
  losses = [logged[s]['action/loss'] for s in (1, 2, 3)]
  assert all(np.isfinite(losses)) and all(v > 0 for v in losses), losses
  assert all(-1 <= logged[s]['action/positive_cosine'] <= 1 for s in (1, 2, 3))
  # The trainer's accuracy is the one-shot accuracy of its weights, computed by hand.
  model = action_oneshot.make_model(c)
  final = checkpoint.read_state(workdir, step=3)
  variables = {'params': final['params'], **final['model_state']}
  assert logged[3]['test/clips'] == 6
  assert logged[3]['test/accuracy'] == pytest.approx(_by_hand_accuracy(model, variables,
                                                                       data_dir))
  # The evaluate CLI on the workdir gives the trainer's last evaluation.
  result = cli.run(c, workdir, str(tmp_path / 'eval' / 'eval.json'))
  assert result['test']['accuracy'] == logged[3]['test/accuracy']


def test_official_train_mode_embeds_with_dropout(tiny_config, data_dir):
  """Official train_action_1shot.py embeds in train mode (dropout on): with
  `official_train_mode` the embeddings differ from call to call but a rerun repeats them;
  without, every call gives the same ones."""
  c = _config(tiny_config, data_dir)
  model = action_oneshot.make_model(c)
  assert c.model.head.dropout_ratio == 0.1 and not c.evals.test.official_train_mode
  x = np.stack([finetune.action_example(r, np.random.default_rng(0), n_frames=9, train=False,
                                        scale_range=(2, 2))['input']
                for r in (records.load('ntu120', 'oneshot_eval', data_dir=data_dir)[i]
                          for i in range(4))])
  variables = model.init(jax.random.key(0), x)
  on = oneshot.embedder(model, train_mode=True, seed=1)
  first, second = np.asarray(on(variables, 0)(x)), np.asarray(on(variables, 1)(x))
  assert np.abs(first - second).max() > 1e-3
  np.testing.assert_array_equal(first, oneshot.embedder(model, train_mode=True, seed=1)(
      variables, 0)(x))
  off = oneshot.embedder(model)
  deterministic = np.asarray(off(variables, 0)(x))
  np.testing.assert_array_equal(deterministic, np.asarray(off(variables, 1)(x)))
  np.testing.assert_allclose(deterministic, model.apply(variables, x), atol=1e-6)
  # Dropout is the only difference: at rate 0 train mode is eval mode.
  with c.unlocked():
    c.model.head.dropout_ratio = 0.0
  still = action_oneshot.make_model(c)
  np.testing.assert_allclose(oneshot.embedder(still, train_mode=True)(variables, 0)(x),
                             deterministic, atol=1e-5)
  # The evaluator with the switch: each call draws other masks, a new evaluator repeats them.
  with c.unlocked():
    c.evals.test.official_train_mode = True
  spec = c.evals.test
  run = oneshot.make_evaluator(c, model, spec, action.evaluator_inputs(c))
  again = oneshot.make_evaluator(c, model, spec, action.evaluator_inputs(c))
  results = [run(variables) for _ in range(4)]
  assert [again(variables) for _ in range(4)] == results
  fresh = _config(tiny_config, data_dir)
  fixed = oneshot.make_evaluator(fresh, model, fresh.evals.test, action.evaluator_inputs(fresh))
  assert fixed(variables) == fixed(variables)


def test_config_variants(tiny_config, data_dir):
  ft = action_ntu120_oneshot.get_config()
  assert ft.task == 'action_oneshot' and ft.finetune and ft.lr_head == 1e-3
  assert (ft.epochs, ft.batch_size, ft.n_views, ft.clip_len, ft.lr) == (50, 32, 2, 100, 1e-4)
  assert dict(ft.model.head) == dict(version='embed', num_classes=100, dropout_ratio=0.1,
                                     hidden_dim=2048)
  assert (ft.temperature, ft.base_temperature) == (0.1, 0.07) and ft.model.maxlen == 243
  assert ft.evals.test.type == 'oneshot' and not ft.best_metric
  scratch = action_ntu120_oneshot.get_config('scratch,runlocal')
  assert not scratch.finetune and scratch.lr_head == 1e-3 and scratch.batch_size == 8
  with pytest.raises(ValueError, match="unknown variant 'xsub'"):
    action_ntu120_oneshot.get_config('xsub')
  c = _config(tiny_config, data_dir)
  with pytest.raises(ValueError, match='config.init_from is empty'):
    action_oneshot.make_curriculum(c)
  with c.unlocked():
    c.model.head.version = 'class'
  with pytest.raises(ValueError, match="head.version must be 'embed'"):
    action_oneshot.make_model(c)
  assert action_oneshot.flops_per_step(_config(tiny_config, data_dir)) > 0
