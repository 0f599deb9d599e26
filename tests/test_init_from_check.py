"""One check for every task: a finetuning config (`finetune=True`) without --config.init_from
stops in make_curriculum, before any data is read, instead of training from random init."""

import pathlib

import pytest

from configs import action_ntu60, action_ntu120_oneshot, mesh, pose3d_h36m, pretrain
from mbjax.tasks import base

ROOT = pathlib.Path(__file__).resolve().parents[1]
# (config module, finetuning variants, from-scratch variant)
CONFIGS = [
    (pose3d_h36m, ('ft', 'global', 'global_lite', 'lite'), 'scratch'),
    (action_ntu60, ('xsub', 'xview,frozen'), 'xsub,scratch'),
    (action_ntu120_oneshot, ('ft',), 'scratch'),
    (mesh, ('pw3d', 'h36m,frozen'), 'pw3d,scratch'),
]


def _curriculum(config, tmp_path):
  config.data.data_dir = str(tmp_path / 'no_data')  # reading any data would fail differently
  return base.get_task(config).make_curriculum(config)


@pytest.mark.parametrize('module, finetuning, scratch', CONFIGS,
                         ids=[m.__name__.split('.')[-1] for m, _, _ in CONFIGS])
def test_every_finetuning_variant_needs_init_from(module, finetuning, scratch, tmp_path):
  for variant in finetuning:
    c = module.get_config(variant)
    assert c.finetune, variant
    with pytest.raises(ValueError, match=r'finetune=True.*config\.init_from is empty'):
      _curriculum(c, tmp_path)
  c = module.get_config(scratch)
  assert not c.finetune
  with pytest.raises(FileNotFoundError, match='no built dataset'):  # past the check: the data
    _curriculum(c, tmp_path)
  c = module.get_config(finetuning[0])
  c.init_from = str(tmp_path / 'pretrained.bin')  # given: the check lets it through
  with pytest.raises(FileNotFoundError, match='no built dataset'):
    _curriculum(c, tmp_path)


def test_pretraining_has_no_finetune_field_and_is_not_stopped(tmp_path):
  c = pretrain.get_config('tiny')
  assert 'finetune' not in c
  with pytest.raises(FileNotFoundError, match='no built dataset'):
    _curriculum(c, tmp_path)


def test_the_check_lives_in_one_place():
  """Each task calls base.check_init_from; none keeps a copy of its message."""
  tasks = ROOT / 'mbjax' / 'tasks'
  for name in ('pretrain', 'pose3d', 'action', 'action_oneshot', 'mesh'):
    text = (tasks / f'{name}.py').read_text()
    assert 'base.check_init_from(config)' in text, name
    assert 'init_from is empty' not in text, name
