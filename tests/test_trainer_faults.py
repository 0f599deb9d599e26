"""The trainer against what goes wrong around it (issue 25): out-of-range trainer fields.
Each failure is one line, never a Python traceback."""

import pytest


# ----------------------------------------------------------------------- trainer fields


@pytest.mark.parametrize('field, value, says', [
    ('total_steps', 0, 'config.total_steps=0: expected a positive number of steps to stop after, '
                       'or -1 (the default) for the whole curriculum'),
    ('total_steps', -5, 'config.total_steps=-5'),
    ('lr', -1.0, 'config.lr=-1.0: expected a finite number > 0'),
    ('checkpoint.every_steps', 0, 'config.checkpoint.every_steps=0: expected a whole number >= 1'),
    ('log_every_steps', 0, 'config.log_every_steps=0'),
    ('evals.lifting.every_steps', -1, 'config.evals.lifting.every_steps=-1'),
])
def test_trainer_fields_out_of_range_stop_before_anything(tmp_path, tiny_config,
                                                          pretrain_data_dir, field, value, says):
  from mbjax import train
  c = tiny_config('tiny_pretrain', pretrain_data_dir)
  *parents, name = field.split('.')
  node = c
  for parent in parents:
    node = node[parent]
  node[name] = value
  with pytest.raises(ValueError) as refused:
    train.train_and_evaluate(c, str(tmp_path / 'run'))
  assert says in str(refused.value) and '\n' not in str(refused.value)
  assert not (tmp_path / 'run').exists()
