"""The user's own actions: `data_prep.build actions` on one folder per label (AlphaPose, COCO JSON
and .npy clips), label names in the metadata, the seeded per-label split and given train/test
folders, the clip layout (two persons by detected frames, absent frames zeros), finetuning with
configs/action_custom.py (classes from the dataset), and `mbjax.predict_action` agreeing with the
evaluator on the same clip."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data_prep import build as build_cli
from mbjax import train
from mbjax.data import action_clips, actions, records, skeletons, transforms
from mbjax.evaluate import action as action_eval
from mbjax.infer import action as infer_action

LABELS = ('clap', 'jump', 'wave')
SIZE = (640, 480)


def _pose(rng, frames, shift=0.0):
  """(T, 17, 2) COCO-17 pixels: a random figure drifting right."""
  base = rng.uniform(150, 450, (17, 2))
  return np.stack([base + [shift + 3.0 * t, 0] for t in range(frames)])


def _coco_results(poses, *, ids=None, halpe=False):
  """COCO / AlphaPose results JSON rows of (T, J, 2) poses (one list per person)."""
  rows = []
  for person, pose in enumerate(poses):
    for t, p in enumerate(pose):
      kp = np.concatenate([p, np.full((len(p), 1), 0.9)], axis=1)
      if halpe:  # Halpe-26: COCO-17 then head, neck, hip, toes and heels
        kp = np.concatenate([kp, np.tile(kp[:1], (9, 1))])
      row = dict(image_id=f'{t}.jpg', category_id=1, keypoints=kp.reshape(-1).tolist(), score=0.9)
      if ids is not None:
        row['idx'] = ids[person]
      rows.append(row)
  return rows


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
  """my_clips/<label>/: 5 clips each: .npy (COCO, x, y), a COCO JSON and an AlphaPose JSON."""
  root = tmp_path_factory.mktemp('custom') / 'my_clips'
  rng = np.random.default_rng(0)
  for label in LABELS:
    folder = root / label
    folder.mkdir(parents=True)
    for i in range(3):
      np.save(folder / f'clip{i}.npy', _pose(rng, 12 + i))
    (folder / 'coco.json').write_text(json.dumps(_coco_results([_pose(rng, 10)])))
    (folder / 'alphapose.json').write_text(json.dumps(
        _coco_results([_pose(rng, 9), _pose(rng, 9, 200)], ids=[1, 2], halpe=True)))
  return root


@pytest.fixture(scope='module')
def data_dir(clips):
  out = clips.parent / 'tfds'
  assert build_cli.run(['actions', '--source', str(clips), '--data_dir', str(out),
                        '--opt', 'format=coco', '--opt', 'test_fraction=0.4']) == 0
  return str(out)


def test_build_names_labels_and_splits_per_label(clips, data_dir):
  meta = records.metadata('actions', data_dir=data_dir)
  assert meta['label_names'] == list(LABELS)
  train_split = records.load('actions', 'train', data_dir=data_dir)
  test_split = records.load('actions', 'test', data_dir=data_dir)
  assert (len(train_split), len(test_split)) == (9, 6)  # of 5 per label, round(0.4 * 5) = 2 test
  names = {}
  for split, source in (('train', train_split), ('test', test_split)):
    for i in range(len(source)):
      r = source[i]
      label, clip = r['frame_dir'].decode().split('/')
      assert LABELS[int(r['label'])] == label
      names[(label, clip)] = split
  for index, label in enumerate(LABELS):
    held = actions.test_clips(5, 0.4, 0, index)
    clip_names = sorted(p.name for p in (clips / label).iterdir())
    assert {c for c in clip_names if names[(label, c)] == 'test'} == {
        clip_names[i] for i in held}


def test_record_is_the_clip_as_predict_reads_it(clips, data_dir):
  source = records.load('actions', 'train', data_dir=data_dir)
  for i in range(len(source)):
    r = source[i]
    path = clips / r['frame_dir'].decode()
    expected, _ = action_clips.read_clip(path, skeleton='coco' if path.suffix == '.npy' else None)
    np.testing.assert_array_equal(r['keypoint'], expected)
    assert int(r['total_frames']) == expected.shape[1]


def test_clip_layout_persons_and_normalisation(tmp_path):
  rng = np.random.default_rng(1)
  a, b, c = _pose(rng, 8), _pose(rng, 6, 100), _pose(rng, 3, 200)
  rows = _coco_results([a, b, c], ids=[5, 7, 9])
  rows = [r for r in rows if not (r['idx'] == 7 and r['image_id'] == '0.jpg')]  # b from frame 1
  path = tmp_path / 'three.json'
  path.write_text(json.dumps(rows))
  keypoint, notes = action_clips.read_clip(path, size=SIZE)
  assert keypoint.shape == (2, 8, 17, 3) and any('dropped [9]' in n for n in notes)
  # person 0 = track 5 (8 frames), person 1 = track 7 (frames 1-5 of the clip), by make_cam
  h36m = skeletons.coco_to_h36m
  np.testing.assert_allclose(keypoint[0, ..., :2], transforms.make_cam(h36m(a), SIZE[::-1]),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(keypoint[1, 1:6, :, :2],
                             transforms.make_cam(h36m(b[1:]), SIZE[::-1]), rtol=1e-5, atol=1e-5)
  assert np.all(keypoint[1, [0, 6, 7]] == 0)  # absent: zeros, as the official padding
  assert np.all(keypoint[0, ..., 2] > 0)


def test_given_train_test_folders_and_mistakes(tmp_path, clips):
  root = tmp_path / 'given'
  for split, n in (('train', 2), ('test', 1)):
    for label in LABELS[:2]:
      (root / split / label).mkdir(parents=True)
      for i in range(n):
        np.save(root / split / label / f'{i}.npy', _pose(np.random.default_rng(i), 5))
  counts = {}
  for split in actions.SPLITS:
    counts[split] = sum(1 for _ in actions.generate(root, split, actions.BuildReport('a'),
                                                    format='coco'))
  assert counts == {'train': 4, 'test': 2}
  (root / 'test' / 'dance').mkdir()
  with pytest.raises(ValueError, match="'dance' is not a label"):
    list(actions.generate(root, 'test', actions.BuildReport('a'), format='coco'))
  with pytest.raises(ValueError, match='at least two labels'):
    actions.label_folders(clips / 'wave')
  (tmp_path / 'empty' / 'a').mkdir(parents=True)
  (tmp_path / 'empty' / 'b').mkdir()
  with pytest.raises(ValueError, match="label 'a' has no clips"):
    list(actions.generate(tmp_path / 'empty', 'train', actions.BuildReport('a')))


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_config, data_dir):
  c = tiny_config('tiny_action_custom', data_dir)
  workdir = str(tmp_path_factory.mktemp('run') / 'run')
  return c, workdir, train.train_and_evaluate(c, workdir)


def test_classes_come_from_the_dataset(trained):
  config, workdir, summary = trained
  with open(os.path.join(workdir, 'config.json')) as f:
    stored = json.load(f)
  assert stored['model']['head']['num_classes'] == 3
  assert stored['label_names'] == list(LABELS)
  assert 'test/top1' in summary


def test_predict_equals_the_evaluator_and_the_cli_prints_names(trained, clips, data_dir):
  config, workdir, _ = trained
  classifier = infer_action.load(workdir)
  source = records.load('actions', 'test', data_dir=data_dir)
  log_p, _ = action_eval.predict_log_probs(
      lambda x: classifier.apply(classifier.variables, x)[0], source, n_frames=9, batch_size=4)
  for i in range(len(source)):
    path = clips / source[i]['frame_dir'].decode()
    keypoint, _ = action_clips.read_clip(path, skeleton='coco' if path.suffix == '.npy' else None)
    np.testing.assert_allclose(infer_action.log_probs(classifier, keypoint), log_p[i], atol=1e-5)
  clip = clips / source[0]['frame_dir'].decode()
  embed = clips.parent / 'embedding.npy'
  out = subprocess.run(
      [sys.executable, '-m', 'mbjax.predict_action', f'--checkpoint={workdir}', f'--input={clip}',
       '--format=coco', f'--embed={embed}', '--top_k=2'],
      capture_output=True, text=True, check=True)
  lines = out.stdout.strip().splitlines()[-2:]
  best = np.argsort(-log_p[0])[:2]
  for line, k in zip(lines, best):
    prob, name = line.split('%')
    assert name.strip() == LABELS[k]
    assert abs(float(prob) - 100 * np.exp(log_p[0][k])) < 0.01
  e = np.load(embed)
  assert e.shape == (2048,) and abs(np.linalg.norm(e) - 1) < 1e-5


def test_infer_labels_each_track_with_the_action_model(trained, clips, tmp_path):
  from mbjax.infer import model, pipeline
  _, workdir, _ = trained
  lifter = model.Lifter(predict=lambda x: x, maxlen=9, rootrel=False, flip=False, gt_2d=False,
                        no_conf=False, config=None, source='stand-in')
  clip = clips / 'wave' / 'alphapose.json'  # two tracks
  summary = pipeline.run(pipeline.Request(input=str(clip), action=workdir), lifter,
                         str(tmp_path / 'out'))
  with open(tmp_path / 'out' / 'results.json') as f:
    tracks = {t['id']: t for t in json.load(f)['tracks']}
  classifier = infer_action.load(workdir)
  prepared = pipeline.prepare(pipeline.Request(input=str(clip)))
  assert sorted(tracks) == summary['tracks'] == [1, 2]
  for k, track in prepared.tracks.items():
    log_p = infer_action.log_probs(classifier, action_clips.from_tracks([track]))
    want = infer_action.top_k(classifier, log_p, 3)
    got = tracks[k]['actions']
    assert [a['label'] for a in got] == [n for n, _ in want]
    np.testing.assert_allclose([a['probability'] for a in got], [q for _, q in want], atol=1e-6)
