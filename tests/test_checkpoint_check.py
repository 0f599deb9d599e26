"""python -m mbjax.checkpoint check: what an official .bin, a convert directory or a workdir holds
and which commands take it (mbjax/checkpoint/describe.py)."""

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from mbjax.checkpoint import converted, describe, official
from mbjax.models import dstformer

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(dstformer.TINY, maxlen=27)


def _params(shape_of: dict) -> int:
  return sum(int(np.prod(np.shape(x))) for x in jax.tree_util.tree_leaves(shape_of))


@pytest.fixture(scope='module')
def tiny(reference_dir):
  """The official tiny DSTformer (pose) and action-class state dicts as variables."""
  with np.load(reference_dir / 'dstformer_tiny.npz') as z:
    pose = {k.removeprefix('model_pos/'): z[k] for k in z.files if k.startswith('model_pos/')}
  with np.load(reference_dir / 'action_class_tiny.npz') as z:
    action = {k.removeprefix('model/'): z[k] for k in z.files if k.startswith('model/')}
  return {'pose': official.official_to_variables(pose, 'pose'),
          'action-class': official.official_to_variables(action, 'action-class')}


def test_an_official_bin_names_its_kind_size_and_commands(tiny, tmp_path):
  for kind, variables in tiny.items():
    path = tmp_path / f'{kind}.bin'
    official.save_official(variables, kind, path)
    info = describe.describe(str(path))
    assert info['container'] == 'official .bin' and info['kind'] == kind
    assert info['joints'] == 17 and info['parameters'] == _params(variables['params'])
    assert info['maxlen'] == int(variables['params'].get('backbone', variables['params'])
                                 ['temp_embed'].shape[0])
    lines = describe.commands(info)
    assert any(f'--config.init_from={path}' in line for line in lines)
    assert not any('mbjax.convert' in line for line in lines)  # no released size: not convertible
    if kind == 'pose':
      assert any(line.startswith('python -m mbjax.infer') for line in lines)
    else:
      assert any('predict_action' in line and '--config=CONFIG' in line for line in lines)
  released = dict(info, variant='release')  # a released size names its config and converts
  assert any('--config=configs/action_ntu60.py:xsub' in line
             for line in describe.commands(released))
  assert any(line.startswith(f'python -m mbjax.convert {path} ckpt/NAME --model action-class '
                             '--variant release') for line in describe.commands(released))


def test_a_convert_directory_and_the_command_line(tiny, tmp_path):
  converted.save(tmp_path / 'ckpt', tiny['pose'], {'model': 'pose', 'backbone': TINY})
  info = describe.describe(str(tmp_path / 'ckpt'))
  assert info['container'] == 'mbjax.convert directory' and info['kind'] == 'pose'
  assert info['variant'] == 'tiny' and info['maxlen'] == 27
  assert info['parameters'] == _params(tiny['pose']['params'])
  assert any('--to-official' in line for line in describe.commands(info))
  done = subprocess.run([sys.executable, '-m', 'mbjax.checkpoint', 'check', str(tmp_path / 'ckpt'),
                         '--json'], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert json.loads(done.stdout)['parameters'] == info['parameters']
  bad = subprocess.run([sys.executable, '-m', 'mbjax.checkpoint', 'check', str(tmp_path / 'no')],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].startswith(
      'mbjax.checkpoint: error: ') and 'no such file or directory' in bad.stderr


def test_a_run_is_found_from_its_folders(tmp_path):
  run = tmp_path / 'demo' / 'train'
  (run / 'checkpoints' / '7').mkdir(parents=True)
  (run / 'checkpoints' / '12').mkdir()
  (run / 'checkpoints' / '13.orbax-checkpoint-tmp-1').mkdir()  # a save in progress
  (run / 'best' / '5').mkdir(parents=True)
  (run / 'config.json').write_text(json.dumps({'task': 'pretrain', 'model': TINY}))
  assert describe.find_run(str(tmp_path / 'demo')) == (str(run), str(run))
  assert describe.find_run(str(run / 'best')) == (str(run / 'best'), str(run))
  assert describe.find_run(str(tmp_path)) == (str(tmp_path), None)
  assert describe.latest_step(str(run)) == 12 and describe.latest_step(str(run / 'best')) == 5
