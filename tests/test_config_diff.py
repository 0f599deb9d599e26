"""config_diff: fields added to the configs after a run started are no change on resume when they
hold the value the run was trained with."""

import ml_collections

from mbjax.train import config_diff


def test_fields_added_later_are_no_change_at_their_neutral_value():
  stored = {'lr': 1e-3, 'model': {'dim_feat': 64}, 'data': {'data_dir': 'd'}}
  new = ml_collections.ConfigDict({
      'lr': 1e-3, 'model': {'dim_feat': 64, 'parameterization': 'standard', 'mup_base_width': 64},
      'data': {'data_dir': 'd', 'fraction': 1.0}, 'lr_schedule': 'epoch_decay'})
  assert config_diff.differences(stored, new) == {}
  new.model.parameterization = 'mup'
  new.data.fraction = 0.5
  assert config_diff.differences(stored, new) == {
      'data.fraction': ('<absent>', 0.5), 'model.parameterization': ('<absent>', 'mup')}
