"""Every command line on broken input, as a new user would type it: each case asserts the exit
status, that the message names the file / field / option at fault, and that no Python traceback
reaches the user (MBJAX_TRACEBACK=1 shows one on purpose).

The cases run as real processes (`python -m ...` from the repository root), a few at a time.
"""

import concurrent.futures
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from mbjax.checkpoint import converted, official
from mbjax.checkpoint import torch_zip as torch_format
from mbjax.models import dstformer

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = 'tests/configs/tiny_pretrain.py'


# infer on a keypoint file (its mistakes are found before the model loads).
INFER = ('{tmp}/keypoints.json', '--checkpoint={tmp}/tiny.bin')
# predict_action on a tiny action-class .bin: the official config with the tiny model's sizes.
ACTION = ('--checkpoint={tmp}/ntu_action.bin', '--config=configs/action_ntu60.py:xsub',
          *(f'--config.model.{k}={v}' for k, v in dstformer.TINY.items()),
          '--config.model.head.hidden_dim=32', '--input={tmp}/clip.npy', '--format=coco',
          '--size=640x480')


@dataclasses.dataclass(frozen=True)
class Case:
  id: str
  module: str
  args: tuple  # '{tmp}' is the case folder, '{data}' the session's tiny datasets
  status: int
  says: tuple  # substrings of stderr ('{tmp}' expanded)


CASES = [
    # python -m mbjax.convert
    Case('convert-missing', 'mbjax.convert', ('{tmp}/nowhere.bin', '{tmp}/out'), 1,
         ('nowhere.bin: no such file',)),
    Case('convert-truncated', 'mbjax.convert', ('{tmp}/cut.bin', '{tmp}/out'), 1,
         ('cut.bin: truncated',)),
    Case('convert-legacy', 'mbjax.convert', ('{tmp}/legacy.bin', '{tmp}/out'), 1,
         ('legacy.bin: a legacy (pre-1.6) torch.save file',)),
    Case('convert-not-torch', 'mbjax.convert', ('{tmp}/page.bin', '{tmp}/out'), 1,
         ('page.bin: not a torch.save file',)),
    Case('convert-bad-crc', 'mbjax.convert', ('{tmp}/crc.bin', '{tmp}/out'), 1,
         ('crc.bin: damaged archive (reading member', 'Bad CRC-32')),
    Case('convert-pose-as-action', 'mbjax.convert',
         ('{tmp}/tiny.bin', '{tmp}/out', '--model=action-class', '--variant=lite'), 1,
         ('tiny.bin', 'holds an official pose model, not action-class; pass --model pose')),
    Case('convert-wrong-variant', 'mbjax.convert', ('{tmp}/tiny.bin', '{tmp}/out'), 1,
         ("tiny.bin: checkpoint does not match variant 'release' (it is a tiny checkpoint",)),
    Case('convert-to-official-not-a-run', 'mbjax.convert',
         ('--to-official', '{tmp}', '{tmp}/back.bin'), 1, ('config.json not found',)),
    Case('convert-unknown-flag', 'mbjax.convert', ('a.bin', 'b', '--varient=lite'), 2,
         ("Unknown command line flag 'varient'",)),
    # python -m mbjax.evaluate
    Case('evaluate-missing-checkpoint', 'mbjax.evaluate',
         ('--config=configs/pretrain.py:lite', '--checkpoint={tmp}/nowhere'), 1,
         ('nowhere: no such file or directory',)),
    Case('evaluate-other-size', 'mbjax.evaluate',
         ('--config=configs/pretrain.py:lite', '--checkpoint={tmp}/tiny.bin'), 1,
         ('tiny.bin', 'the file holds a DSTformer tiny (dim_feat 64',
          'the config asks for lite (dim_feat 256')),
    Case('evaluate-config-typo', 'mbjax.evaluate',
         ('--config=configs/pretrain.py:lite', '--checkpoint=x',
          '--config.loss.lambda_3d_velocty=1'), 2,
         ('unknown config field config.loss.lambda_3d_velocty', 'nearest: lambda_3d_velocity')),
    Case('evaluate-config-typo-top', 'mbjax.evaluate',
         ('--config=configs/pretrain.py:lite', '--checkpoint=x', '--config.flip_tset=True'), 2,
         ('unknown config field config.flip_tset', 'fields here: allow_config_change, augment')),
    # python -m mbjax.train (the first case through its older name, python -m mbjax.main)
    Case('main-unknown-field', 'mbjax.main',
         (f'--config={TINY}:{{data}}', '--workdir={tmp}/run', '--config.bach_size=3'), 2,
         ('unknown config field config.bach_size', 'nearest: batch_size')),
    Case('main-unknown-nested-field', 'mbjax.train',
         (f'--config={TINY}:{{data}}', '--workdir={tmp}/run', '--config.model.dimfeat=3'), 2,
         ('unknown config field config.model.dimfeat', 'nearest: dim_feat')),
    Case('main-bad-value', 'mbjax.train',
         (f'--config={TINY}:{{data}}', '--workdir={tmp}/run', '--config.batch_size=abc'), 2,
         ('--config.batch_size=abc',)),
    Case('main-unknown-variant', 'mbjax.train',
         ('--config=configs/pretrain.py:huge', '--workdir={tmp}/run'), 2,
         ("configs/pretrain.py: unknown variant 'huge'",)),
    Case('main-dtype-typo', 'mbjax.train',
         (f'--config={TINY}:{{data}}', '--workdir={tmp}/run', '--config.model.dtype=bfloat17'), 1,
         ("config.model.dtype='bfloat17': unknown dtype, expected one of",)),
    Case('main-batch-size-0', 'mbjax.train',
         (f'--config={TINY}:{{data}}', '--workdir={tmp}/run', '--config.batch_size=0'), 1,
         ('batch_size',)),
    Case('main-num-heads', 'mbjax.train',
         (f'--config={TINY}:{{data}}', '--workdir={tmp}/run', '--config.model.num_heads=5'), 1,
         ('config.model.num_heads=5 does not divide config.model.dim_feat=64',)),
    Case('main-init-from-missing', 'mbjax.train',
         (f'--config={TINY}:{{data}}', '--workdir={tmp}/run', '--config.init_from={tmp}/nowhere'),
         1, ('nowhere: no such file or directory',)),
    Case('main-no-data', 'mbjax.train',
         (f'--config={TINY}:{{tmp}}/no_data', '--workdir={tmp}/run'), 1,
         ("no built dataset 'mocap' under", 'python -m data_prep.build mocap')),
    # python -m data_prep.build
    Case('build-clip-len-0', 'data_prep.build',
         ('mocap', '--source=data_prep/assets/mocap', '--data_dir={tmp}/tfds', '--opt=clip_len=0'),
         2, ('mocap: option clip_len=0 is out of range; allowed: >= 3',)),
    Case('build-yaws-type', 'data_prep.build',
         ('mocap', '--source=data_prep/assets/mocap', '--data_dir={tmp}/tfds', '--opt=yaws=90'),
         2, ('option yaws=90 (int): expected a sequence of numbers',)),
    Case('build-unknown-option', 'data_prep.build',
         ('amass', '--source={tmp}/cut.pkl', '--data_dir={tmp}/tfds', '--opt=sed=1'), 2,
         ('unknown option sed; amass accepts: seed, stride',)),
    Case('build-truncated-pickle', 'data_prep.build',
         ('h36m', '--source={tmp}/cut.pkl', '--data_dir={tmp}/tfds'), 1,
         ('cut.pkl: truncated pickle',)),
    Case('build-not-a-pickle', 'data_prep.build',
         ('h36m', '--source={tmp}/page.bin', '--data_dir={tmp}/tfds'), 1,
         ('page.bin: not a pickle file', 'expected the H36M pickle')),
    Case('build-folder-for-file', 'data_prep.build',
         ('amass', '--source={tmp}', '--data_dir={tmp}/tfds'), 1,
         ('is a folder; expected the AMASS joints pickle',)),
    Case('build-empty-folder', 'data_prep.build',
         ('mocap', '--source={tmp}/empty', '--data_dir={tmp}/tfds'), 1,
         ('empty: no motion capture recordings found (looked for .bvh, .amc files',)),
    # python -m mbjax.demo and python -m mbjax.bench
    Case('demo-missing-assets', 'mbjax.demo', ('--workdir={tmp}/demo', '--assets={tmp}/none'), 1,
         ('none',)),
    Case('bench-no-assets', 'mbjax.bench', ('data', '--assets={tmp}/none'), 1,
         ('mbjax.bench data: error:', 'none')),
    Case('bench-unknown-field', 'mbjax.bench',
         ('train', f'--config={TINY}:{{data}}', '--config.bach_size=2'), 2,
         ('unknown config field config.bach_size', 'nearest: batch_size')),
    # issue 25: checkpoint kinds
    Case('evaluate-action-as-pose', 'mbjax.evaluate',
         ('--config=tests/configs/tiny_pose3d.py:{tmp}/no_data', '--checkpoint={tmp}/action.bin',
          '--out={tmp}/eval.json'), 1,
         ('action.bin holds an action-class model', 'the config asks for a pose model')),
    Case('infer-action-as-pose', 'mbjax.infer',
         ('data_prep/assets/wild/boxing2_alphapose-results.json', '--checkpoint={tmp}/action.bin',
          '--config=tests/configs/tiny_pose3d.py:{tmp}/no_data', '--out={tmp}/lifted'), 1,
         ('action.bin holds an action-class model', 'the config asks for a pose model')),
    Case('export-action-as-pose', 'mbjax.export',
         ('--checkpoint={tmp}/action.bin', '--config=tests/configs/tiny_pose3d.py:{tmp}/no_data',
          '--out={tmp}/pose.stablehlo'), 1,
         ('action.bin holds an action-class model', 'the config asks for a pose model')),
    Case('evaluate-backbone-as-action', 'mbjax.evaluate',
         ('--config=tests/configs/tiny_action.py:{tmp}/no_data', '--checkpoint={tmp}/tiny.bin',
          '--out={tmp}/eval.json'), 1,
         ('tiny.bin holds a pose model', 'the config asks for an action-class model',
          'a pretrained backbone alone only starts a training run')),
    Case('infer-action-workdir', 'mbjax.infer',
         ('data_prep/assets/wild/boxing2_alphapose-results.json', '--checkpoint={tmp}/action_run',
          '--out={tmp}/lifted'), 1,
         ('action_run: an action-class checkpoint; inference needs a pose',)),
    Case('evaluate-no-checkpoint-restores', 'mbjax.evaluate',
         ('--config=tests/configs/tiny_pose3d.py:{tmp}/no_data', '--checkpoint={tmp}/broken_run',
          '--out={tmp}/eval.json'), 1,
         ('broken_run/checkpoints: no checkpoint restores: step 3 (', '; step 2 (')),
    Case('infer-no-checkpoint-restores', 'mbjax.infer',
         ('data_prep/assets/wild/boxing2_alphapose-results.json', '--checkpoint={tmp}/broken_run',
          '--out={tmp}/lifted'), 1,
         ('broken_run/checkpoints: no checkpoint restores: step 3 (', '; step 2 (')),
    Case('export-no-checkpoint-restores', 'mbjax.export',
         ('--checkpoint={tmp}/broken_run', '--out={tmp}/pose.stablehlo'), 1,
         ('broken_run/checkpoints: no checkpoint restores: step 3 (', '; step 2 (')),
    Case('build-bvh-channel-count', 'data_prep.build',
         ('mocap', '--source={tmp}/bvh', '--data_dir={tmp}/tfds'), 1,
         ('count.bvh: line 5: CHANNELS 6 declared, 5 given',)),
    # issue 25: trainer
    Case('train-config-path-typo', 'mbjax.train',
         ('--config=configs/pose3d_h36n.py:ft', '--workdir={tmp}/run-typo'), 2,
         ('--config=configs/pose3d_h36n.py:ft: no such config file configs/pose3d_h36n.py; '
          'nearest: configs/pose3d_h36m.py',)),
    Case('train-config-syntax-error', 'mbjax.train',
         ('--config={tmp}/syntax_error.py:x', '--workdir={tmp}/run-syntax'), 2,
         ('syntax_error.py:x: the config file fails: SyntaxError: expected \':\'',)),
    Case('train-config-raises', 'mbjax.train',
         ('--config={tmp}/raises.py:x', '--workdir={tmp}/run-raises'), 2,
         ('raises.py:x: the config file fails: RuntimeError: no variant x ({tmp}/raises.py, '
          'line 2)',)),
    Case('train-missing-workdir', 'mbjax.train', (f'--config={TINY}:{{data}}',), 2,
         ('mbjax.train: error: missing required flag --workdir (see --help)',)),
    Case('evaluate-missing-flags', 'mbjax.evaluate', ('--config=configs/pretrain.py:lite',), 2,
         ('mbjax.evaluate: error: --checkpoint required (see --help)',)),
    Case('train-total-steps-0', 'mbjax.train',
         (f'--config={TINY}:{{data}}', '--workdir={tmp}/run-steps', '--config.total_steps=0'), 1,
         ('config.total_steps=0: expected a positive number of steps to stop after, or -1',)),
    Case('train-total-steps-negative', 'mbjax.train',
         (f'--config={TINY}:{{data}}', '--workdir={tmp}/run-steps', '--config.total_steps=-5'), 1,
         ('config.total_steps=-5: expected',)),
    Case('train-lr-negative', 'mbjax.train',
         (f'--config={TINY}:{{data}}', '--workdir={tmp}/run-lr', '--config.lr=-1'), 1,
         ('config.lr=-1.0: expected a finite number > 0',)),
    Case('train-checkpoint-every-0', 'mbjax.train',
         (f'--config={TINY}:{{data}}', '--workdir={tmp}/run-every',
          '--config.checkpoint.every_steps=0'), 1,
         ('config.checkpoint.every_steps=0: expected a whole number >= 1',)),
    Case('train-non-finite-loss', 'mbjax.train',
         (f'--config={TINY}:{{data}},nan', '--workdir={tmp}/run-nan'), 1,
         ('mbjax.train: error: non-finite loss', 'Lower the learning rate')),
    # issue 25: outputs
    Case('export-existing-out', 'mbjax.export',
         ('--checkpoint={tmp}/conv', '--out={tmp}/notes.txt'), 1,
         ('{tmp}/notes.txt exists; pass --overwrite to replace it',)),
    Case('export-disk-full', 'mbjax.export', ('--checkpoint={tmp}/conv', '--out=/dev/full'), 1,
         ('mbjax.export: error: /dev/full: No space left on device',)),
    Case('convert-to-official-existing', 'mbjax.convert',
         ('--to-official', '{tmp}/conv', '{tmp}/notes.txt'), 1,
         ('{tmp}/notes.txt exists; pass --overwrite to replace it',)),
    Case('convert-to-official-disk-full', 'mbjax.convert',
         ('--to-official', '{tmp}/conv', '/dev/full'), 1,
         ('mbjax.convert: error: /dev/full: No space left on device',)),
    Case('convert-to-official-missing-data', 'mbjax.convert',
         ('--to-official', '{tmp}/conv_cut', '{tmp}/cut_back.bin'), 1,
         ('{tmp}/conv_cut: the weights cannot be read (missing variables/d)',)),
    Case('convert-into-a-device', 'mbjax.convert', ('{tmp}/tiny.bin', '/dev/full'), 1,
         ('/dev/full exists and is not a directory',)),
    Case('infer-existing-results', 'mbjax.infer', (*INFER, '--out={tmp}/had_results'), 1,
         ('{tmp}/had_results/results.json exists; pass --overwrite to replace it',)),
    Case('infer-clip-len-0', 'mbjax.infer', (*INFER, '--out={tmp}/o', '--clip_len=0'), 1,
         ("--clip_len=0: must be between 1 and the model's maxlen",)),
    Case('infer-clip-len-negative', 'mbjax.infer', (*INFER, '--out={tmp}/o', '--clip_len=-5'), 1,
         ("--clip_len=-5: must be between 1 and the model's maxlen",)),
    Case('infer-stride-0', 'mbjax.infer', (*INFER, '--out={tmp}/o', '--stride=0'), 1,
         ('--stride=0: must be between 1 and --clip_len',)),
    Case('infer-stride-negative', 'mbjax.infer', (*INFER, '--out={tmp}/o', '--stride=-3'), 1,
         ('--stride=-3: must be between 1 and --clip_len',)),
    Case('predict-action-existing-json', 'mbjax.predict_action',
         (*ACTION, '--json={tmp}/notes.txt'), 1,
         ('{tmp}/notes.txt exists; pass --overwrite to replace it',)),
    Case('predict-action-embed-disk-full', 'mbjax.predict_action', (*ACTION, '--embed=/dev/full'),
         1, ('mbjax.predict_action: error: /dev/full: No space left on device',)),
    Case('predict-action-json-disk-full', 'mbjax.predict_action', (*ACTION, '--json=/dev/full'),
         1, ('mbjax.predict_action: error: /dev/full: No space left on device',)),
]


def _write_inputs(folder: pathlib.Path) -> None:
  """The broken (and one good) input files the cases name, in `folder`."""
  import jax
  import jax.numpy as jnp
  from mbjax import models
  from mbjax.models import dstformer
  model = models.from_config(dict(dstformer.TINY))
  variables = model.init(jax.random.key(0), jnp.zeros((1, 4, 17, 3)))
  official.save_official(variables, 'pose', folder / 'tiny.bin')
  good = (folder / 'tiny.bin').read_bytes()
  (folder / 'cut.bin').write_bytes(good[:len(good) // 2])
  (folder / 'legacy.bin').write_bytes(b'\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19.')
  (folder / 'page.bin').write_text('<html>404 not found</html>')
  torch_format.save({'w': np.arange(256, dtype=np.float32)}, folder / 'crc.bin')
  raw = bytearray((folder / 'crc.bin').read_bytes())
  raw[raw.index(np.arange(256, dtype=np.float32).tobytes()) + 9] ^= 0xFF
  (folder / 'crc.bin').write_bytes(bytes(raw))
  assert zipfile.is_zipfile(folder / 'crc.bin')
  (folder / 'cut.pkl').write_bytes(b'\x80\x04\x95\x00\x01\x00\x00\x00\x00\x00\x00}\x94(\x8c')
  (folder / 'empty').mkdir()
  _write_kind_inputs(folder)
  _write_trainer_inputs(folder)
  _write_output_inputs(folder, variables)


def _write_kind_inputs(folder: pathlib.Path) -> None:
  """Issue 25's inputs: an action .bin, workdirs of an action model and of damaged steps only,
  and a BVH whose CHANNELS count is not its names'."""
  import json
  import jax
  import jax.numpy as jnp
  from mbjax import models
  from mbjax.models import dstformer
  head = dict(version='class', num_classes=5)
  action = models.from_config(dict(dstformer.TINY, head=head))
  shapes = jax.eval_shape(action.init, jax.random.key(0), jnp.zeros((1, 1, 4, 17, 3)))
  official.save_official(jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), shapes),
                         'action-class', folder / 'action.bin')
  for name, task, model in (('action_run', 'action', dict(dstformer.TINY, head=head)),
                            ('broken_run', 'pretrain', dict(dstformer.TINY))):
    (folder / name / 'checkpoints' / '2' / 'state').mkdir(parents=True)
    (folder / name / 'config.json').write_text(json.dumps(dict(task=task, model=model)))
  (folder / 'broken_run' / 'checkpoints' / '3' / 'state').mkdir(parents=True)
  (folder / 'broken_run' / 'checkpoints' / '3' / 'state' / '_METADATA').write_text('{"tree')
  (folder / 'bvh').mkdir()
  (folder / 'bvh' / 'count.bvh').write_text(
      'HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0 0\n  CHANNELS 6 Xposition Yposition Zposition '
      'Zrotation Xrotation\n  End Site\n  {\n    OFFSET 0 1 0\n  }\n}\nMOTION\nFrames: 1\n'
      'Frame Time: 0.04\n0 0 0 0 0 0\n')


def _write_trainer_inputs(folder: pathlib.Path) -> None:
  """Issue 25's trainer inputs: config files that do not compile, or raise."""
  (folder / 'syntax_error.py').write_text('def get_config(arg)\n  return None\n')
  (folder / 'raises.py').write_text(
      'def get_config(arg):\n  raise RuntimeError(f"no variant {arg}")\n')


def _write_output_inputs(folder: pathlib.Path, variables) -> None:
  """What the issue 25 cases name: a file of the user's, a convert directory (and one with its
  data gone), a folder with results, a keypoint file, a tiny NTU-60 action .bin and its clip."""
  import jax
  import jax.numpy as jnp
  from flax.core import meta
  from mbjax import models
  from mbjax.infer import model as model_lib
  (folder / 'notes.txt').write_text('mine')
  for name in ('conv', 'conv_cut'):
    converted.save(folder / name, meta.unbox(variables),
                   {'model': 'pose', 'backbone': dict(dstformer.TINY)})
  shutil.rmtree(folder / 'conv_cut' / 'variables' / 'd')
  (folder / 'had_results').mkdir()
  (folder / 'had_results' / 'results.json').write_text('{"mine": true}')
  pose = np.random.default_rng(0).uniform(100, 400, (17, 2))
  frames = np.stack([np.concatenate([pose + t, np.ones((17, 1))], -1) for t in range(12)])
  (folder / 'keypoints.json').write_text(json.dumps(
      [dict(image_id=f'{t}.jpg', category_id=1, keypoints=frames[t].reshape(-1).tolist(),
            score=2.0, idx=1) for t in range(12)]))
  np.save(folder / 'clip.npy', frames.astype(np.float32))
  config = model_lib.load_config_file('configs/action_ntu60.py:xsub')
  config.model.update(dstformer.TINY)
  config.model.head.update(hidden_dim=32)
  model = models.from_config(config.model)
  shapes = meta.unbox(jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2, 9, 17, 3))))
  official.save_official(jax.tree_util.tree_map(lambda a: np.zeros(a.shape, a.dtype), shapes),
                         'action-class', folder / 'ntu_action.bin')


def _run(case: Case, folder: pathlib.Path, data_dir: str) -> subprocess.CompletedProcess:
  fill = lambda s: s.replace('{tmp}', str(folder)).replace('{data}', data_dir)
  env = {k: v for k, v in os.environ.items() if k != 'MBJAX_TRACEBACK'}
  env.update(JAX_PLATFORMS='cpu', XLA_FLAGS='')
  return subprocess.run([sys.executable, '-m', case.module, *map(fill, case.args)], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope='module')
def results(tmp_path_factory, pretrain_data_dir):
  """{case id: (completed process, its folder)}, the cases run two at a time."""
  folder = tmp_path_factory.mktemp('bad_inputs')
  _write_inputs(folder)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    futures = {c.id: pool.submit(_run, c, folder, pretrain_data_dir) for c in CASES}
    return {k: (f.result(), folder) for k, f in futures.items()}


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_a_mistake_is_one_clear_message(results, case):
  done, folder = results[case.id]
  shown = done.stdout + done.stderr
  assert done.returncode == case.status, shown[-3000:]
  assert 'Traceback (most recent call last)' not in shown, shown[-3000:]
  for text in case.says:
    assert text.replace('{tmp}', str(folder)) in done.stderr, done.stderr[-3000:]
  assert not (folder / 'nowhere').exists()  # a missing init_from / checkpoint is not created


def test_the_traceback_is_there_when_asked_for(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS='cpu', MBJAX_TRACEBACK='1')
  done = subprocess.run([sys.executable, '-m', 'mbjax.convert', str(tmp_path / 'x.bin'),
                         str(tmp_path / 'out')], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode != 0 and 'Traceback (most recent call last)' in done.stderr
  assert 'TorchFormatError' in done.stderr
