"""python -m mbjax.infer end to end with a tiny random DSTformer, and where its model comes from."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

from mbjax import models
from mbjax.checkpoint import converted, official
from mbjax.data import transforms
from mbjax.infer import model as model_lib
from mbjax.infer import pipeline
from mbjax.models import dstformer

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(dstformer.TINY, maxlen=27)
TINY_FLAGS = [f'--config.model.{k}={v}' for k, v in TINY.items()]


def _halpe(t, dx):
  """(26, 3) a Halpe pose moving with t; every joint distinct."""
  j = np.arange(26.0)
  return np.stack([100 + dx + 3 * j + t, 50 + 9 * j + 0.5 * t, np.full(26, 0.8)], axis=-1)


def write_two_persons(path):
  dets = [dict(image_id=f'{t}.jpg', category_id=1, keypoints=_halpe(t, 0).reshape(-1).tolist(),
               score=2.0, idx=1) for t in range(40)]
  dets += [dict(image_id=f'{t}.jpg', category_id=1, keypoints=_halpe(t, 400).reshape(-1).tolist(),
                score=2.0, idx=2) for t in range(5, 35)]
  dets.sort(key=lambda d: int(d['image_id'][:-4]))  # AlphaPose writes frame by frame
  path.write_text(json.dumps(dets))
  return path


def _tiny_variables():
  variables = models.from_config(TINY).init(jax.random.key(0), jnp.zeros((1, 27, 17, 3)))
  return meta.unbox(variables)


def test_cli_end_to_end(tmp_path):
  official.save_official(_tiny_variables(), 'pose', tmp_path / 'tiny.bin')
  source = write_two_persons(tmp_path / 'two_alphapose-results.json')
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='')
  done = subprocess.run([sys.executable, '-m', 'mbjax.infer', str(source),
                         f'--checkpoint={tmp_path / "tiny.bin"}', f'--out={tmp_path / "out"}',
                         '--config=configs/pose3d_h36m.py:global_lite', *TINY_FLAGS],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert 'lifted tracks [1, 2] (halpe, crop, clip_len 27 stride 9)' in done.stdout
  with np.load(tmp_path / 'out' / 'results.npz') as z:
    results = {k: z[k] for k in z.files}
  summary = json.loads((tmp_path / 'out' / 'results.json').read_text())
  assert [t['id'] for t in summary['tracks']] == [1, 2]
  assert summary['format'] == 'halpe' and summary['options']['rootrel'] is False
  for person, frames in ((1, range(40)), (2, range(5, 35))):
    assert results[f'{person}/frames'].tolist() == list(frames)
    x = results[f'{person}/input_2d']
    np.testing.assert_array_equal(x, transforms.crop_scale_2d(
        results[f'{person}/keypoints_px'].astype(np.float64)).astype(np.float32))
    assert results[f'{person}/joints3d'].shape == (len(frames), 17, 3)
    assert np.all(np.isfinite(results[f'{person}/joints3d']))
    assert results[f'{person}/joints3d'][0, 0, 2] == 0  # rootrel=False: first root depth is 0
  track = summary['tracks'][1]
  np.testing.assert_allclose(track['joints3d'], results['2/joints3d'], atol=1e-6)
  # A user mistake is one line naming the flag.
  bad = subprocess.run([sys.executable, '-m', 'mbjax.infer', str(source), '--pixel',
                        f'--checkpoint={tmp_path / "tiny.bin"}', f'--out={tmp_path / "o2"}',
                        '--config=configs/pose3d_h36m.py:global_lite', *TINY_FLAGS],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1] == (
      'mbjax.infer: error: --pixel needs the frame size: pass --size WxH (or a file that holds '
      'it)')


def test_convert_dir_brings_its_model_and_pixel_outputs(tmp_path):
  converted.save(tmp_path / 'ckpt', _tiny_variables(),
               {'model': 'pose', 'backbone': {k: v for k, v in TINY.items()}})
  config = model_lib.load_config_file(model_lib.DEFAULT_CONFIG)
  lifter = model_lib.load(config, str(tmp_path / 'ckpt'))
  assert lifter.maxlen == 27 and lifter.rootrel is False and lifter.flip is True
  source = write_two_persons(tmp_path / 'two.json')
  request = pipeline.Request(input=str(source), pixel=True, size=(640, 480), focus=2, stride=27)
  summary = pipeline.run(request, lifter, str(tmp_path / 'out'))
  assert summary['tracks'] == [2] and summary['options']['stride'] == 27
  with np.load(tmp_path / 'out' / 'results.npz') as z:
    j3d, px = z['2/joints3d'], z['2/joints3d_px']
  want = j3d * 240.0  # official --pixel output: x min(w, h) / 2, + (w, h) / 2 on x, y
  want[..., :2] += [320, 240]
  np.testing.assert_allclose(px, want, rtol=1e-6, atol=1e-3)


def test_default_config_and_workdir_config(tmp_path):
  config = model_lib.load_config_file(model_lib.DEFAULT_CONFIG)
  assert config.model.dim_feat == dstformer.LITE['dim_feat'] and config.rootrel is False
  assert config.flip_test is True and config.model.maxlen == 243
  demo = tmp_path / 'demo'
  (demo / 'train').mkdir(parents=True)
  stored = dict(task='pretrain', model=dict(config.model.to_dict(), **TINY,
                                            attention_impl='cudnn'))
  (demo / 'train' / 'config.json').write_text(json.dumps(stored))
  workdir = model_lib.checkpoint_dir(str(demo))
  assert workdir == str(demo / 'train')
  merged, source = model_lib.model_config(config, workdir)
  assert merged.model.maxlen == 27 and merged.model.dim_feat == 64
  assert merged.model.attention_impl == config.model.attention_impl  # how to run: --config's
  assert merged.rootrel is True  # the trainer's default when the workdir has none
  assert source.startswith('workdir')
  with pytest.raises(FileNotFoundError, match='nowhere.py: config file not found'):
    model_lib.load_config_file('nowhere.py:x')


def test_outputs_in_the_folder_are_replaced_only_with_overwrite(tmp_path):
  lifter = model_lib.Lifter(predict=lambda x: x, maxlen=9, rootrel=False, flip=False,
                            gt_2d=False, no_conf=False, config=None, source='stand-in')
  source = write_two_persons(tmp_path / 'two.json')
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'track_2.bvh').write_text('mine')
  request = pipeline.Request(input=str(source), bvh=True)
  with pytest.raises(FileExistsError, match='track_2.bvh exists; pass --overwrite to replace it'):
    pipeline.run(request, lifter, str(out))
  assert os.listdir(out) == ['track_2.bvh'] and (out / 'track_2.bvh').read_text() == 'mine'
  summary = pipeline.run(dataclasses.replace(request, overwrite=True), lifter, str(out))
  assert sorted(os.listdir(out)) == ['results.json', 'results.npz', 'track_1.bvh', 'track_2.bvh']
  assert (out / 'track_2.bvh').read_text().startswith('HIERARCHY')
  assert summary['written']['json'] == str(out / 'results.json')
  for flag in ('clip_len', 'stride'):  # 0 used to mean the default
    for value in (0, -3):
      with pytest.raises(ValueError, match=f'--{flag}={value}: must be between 1 and'):
        pipeline.prepare(dataclasses.replace(request, **{flag: value}))
