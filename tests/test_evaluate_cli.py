"""python -m mbjax.evaluate's choice of config and data for a checkpoint (mbjax/evaluate/__main__.py):
a workdir brings its config.json, a demo workdir its train/, data folders move with the run."""

import json

import ml_collections
import pytest

from mbjax.evaluate import __main__ as evaluate


def _run(root, data_dir, eval_dir):
  run = root / 'demo' / 'train'
  run.mkdir(parents=True)
  (root / 'demo' / 'tfds').mkdir()
  (root / 'demo' / 'tfds_eval').mkdir()
  (run / 'config.json').write_text(json.dumps({
      'task': 'pretrain', 'model': {'dim_feat': 16}, 'data': {'data_dir': data_dir},
      'evals': {'lifting': {'type': 'lifting', 'data_dir': eval_dir}}}))
  return run


def test_a_demo_workdir_brings_its_config_and_finds_its_moved_data(tmp_path):
  run = _run(tmp_path, '/elsewhere/demo/tfds', '/elsewhere/demo/tfds_eval')
  config, weights, run_dir = evaluate.resolve(str(tmp_path / 'demo'))
  assert weights == run_dir == str(run) and config.task == 'pretrain'
  assert config.data.data_dir == str(tmp_path / 'demo' / 'tfds')
  assert config.evals.lifting.data_dir == str(tmp_path / 'demo' / 'tfds_eval')
  assert config.data.fraction == 1.0  # a field added after the run: the value it ran with


def test_a_given_config_keeps_its_data_and_takes_the_runs_for_blank_ones(tmp_path):
  run = _run(tmp_path, 'tfds', str(tmp_path / 'demo' / 'tfds_eval'))
  given = ml_collections.ConfigDict({'task': 'pretrain', 'data': {'data_dir': str(tmp_path)},
                                     'evals': {'lifting': {'data_dir': ''}}})
  config, _, _ = evaluate.resolve(str(run), given)
  assert config.data.data_dir == str(tmp_path)
  assert config.evals.lifting.data_dir == str(tmp_path / 'demo' / 'tfds_eval')


def test_a_bin_needs_a_config(tmp_path):
  (tmp_path / 'x.bin').write_bytes(b'')
  with pytest.raises(ValueError, match='x.bin: not a trainer workdir, so it brings no config'):
    evaluate.resolve(str(tmp_path / 'x.bin'))
