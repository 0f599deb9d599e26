"""The `val=SUBJECTS` config word: hold Human3.6M training subjects out to pick the best checkpoint.

  python -m mbjax.train --config=configs/pretrain.py:lite,val=S8 --workdir=runs/pretrain_lite
  python -m mbjax.train --config=configs/pose3d_h36m.py:ft,val=S8 \
      --config.init_from=runs/pretrain_release --workdir=runs/ft_h36m
  (several subjects: val=S7+S8)

The official code evaluates H36M's test set every epoch and keeps the best test epoch; H36M has no
validation split, so the word carves one from the training subjects instead:
- the h36m training source gets `exclude_subjects` (training never sees those clips);
- `evals.h36m_val` (mbjax/evaluate/h36m_val.py) runs on their train-split clips every epoch
  (`every_epochs=1`, resolved by the task; `every_steps` when every_epochs is 0, as with runlocal);
- `best_metric='h36m_val/mpjpe_px'` keeps that evaluator's best checkpoint in `<workdir>/best/`.
The test split is never used for selection (`mbjax.evaluate.registry.check_best_metric`).
"""

from __future__ import annotations

from typing import Mapping

from configs import common

WORD = 'val'
VALUED = {WORD: 'S8'}  # `common.parse_arg(..., valued=VALUED)`: the word takes a value
TRAIN_SUBJECTS = ('S1', 'S5', 'S6', 'S7', 'S8')  # H36M's training subjects (test: S9, S11)
EVERY_STEPS = 5000  # when every_epochs is 0


def _subject(name: str, where: str) -> str:
  text = name.strip().upper()
  canonical = f'S{int(text[1:])}' if text[:1] == 'S' and text[1:].isdigit() else text
  if canonical not in TRAIN_SUBJECTS:
    raise ValueError(f'{where}: {name!r} is not a Human3.6M training subject; hold out some of '
                     f'{", ".join(TRAIN_SUBJECTS)} (S9 and S11 are the test subjects)')
  return canonical


def held_out(switches: Mapping[str, object], *, config_file: str) -> tuple[str, ...]:
  """The subjects of the `val=S7+S8` word among the parsed `switches` (() when it is absent).

  Raises:
    ValueError: a subject that is not a training subject, or every training subject held out.
  """
  value = switches.get(WORD)
  if not value:
    return ()
  where = f'{common.config_name(config_file)}: in {WORD}={value}'
  subjects = tuple(sorted({_subject(s, where) for s in str(value).split('+')},
                          key=lambda s: int(s[1:])))
  if set(subjects) == set(TRAIN_SUBJECTS):
    raise ValueError(f'{where}: that leaves no subject to train on')
  return subjects


def add_h36m_validation(c, subjects: tuple[str, ...], *, train_spec: dict,
                        runlocal: bool = False) -> None:
  """Holds `subjects` out of `train_spec` (a dict of the config, changed in place) and validates
  on them: `c.evals.h36m_val` and `c.best_metric`. Nothing when `subjects` is empty."""
  if not subjects:
    return
  train_spec['exclude_subjects'] = tuple(subjects)
  c.evals.h36m_val = dict(type='h36m_val', name='h36m', split='train', subjects=tuple(subjects),
                          every_epochs=0 if runlocal else 1, every_steps=EVERY_STEPS,
                          batch_size=32)
  c.best_metric = 'h36m_val/mpjpe_px'  # lower is better (the checkpointer's default mode)
