"""The `val=SUBJECTS` config word: hold Human3.6M training subjects out to pick the best checkpoint.

  python -m mbjax.main --config=configs/pretrain.py:lite,val=S8 --workdir=runs/pretrain_lite
  python -m mbjax.main --config=configs/pose3d_h36m.py:ft,val=S8 \
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

from configs import common

WORD = 'val'
TRAIN_SUBJECTS = ('S1', 'S5', 'S6', 'S7', 'S8')  # H36M's training subjects (test: S9, S11)
EVERY_STEPS = 5000  # when every_epochs is 0


def _subject(name: str, where: str) -> str:
  text = name.strip().upper()
  canonical = f'S{int(text[1:])}' if text[:1] == 'S' and text[1:].isdigit() else text
  if canonical not in TRAIN_SUBJECTS:
    raise ValueError(f'{where}: {name!r} is not a Human3.6M training subject; hold out some of '
                     f'{", ".join(TRAIN_SUBJECTS)} (S9 and S11 are the test subjects)')
  return canonical


def pop_subjects(arg: str, *, config_file: str) -> tuple[str, tuple[str, ...]]:
  """(arg without its `val=...` word, the held-out subjects or () when there is none).

  Raises:
    ValueError: `val` without subjects, given twice, a subject that is not a training subject,
      or every training subject held out.
  """
  where = f'{common._config_name(config_file)}: in {arg!r}'  # pylint: disable=protected-access
  kept, found = [], []
  for i, word in enumerate(arg.split(',')):
    name, _, value = word.partition('=')
    if i == 0 or name != WORD:
      kept.append(word)
      continue
    if not value:
      raise ValueError(f'{where}: {WORD} needs the held-out subjects, e.g. {WORD}=S8 or '
                       f'{WORD}=S7+S8')
    found.append([_subject(s, where) for s in value.split('+')])
  if len(found) > 1:
    raise ValueError(f'{where}: switch {WORD!r} given twice')
  held_out = tuple(sorted(set(found[0]), key=lambda s: int(s[1:]))) if found else ()
  if held_out and set(held_out) == set(TRAIN_SUBJECTS):
    raise ValueError(f'{where}: {WORD}={"+".join(held_out)} leaves no subject to train on')
  return ','.join(kept), held_out


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
