"""Action recognition on your own clips: a dataset built by `python -m data_prep.build actions`.

  python -m data_prep.build actions --source my_clips --data_dir data/tfds
  python -m mbjax.train --config=configs/action_custom.py \\
      --config.init_from=checkpoint/pretrain/MB_release/latest_epoch.bin --workdir=runs/my_actions
  python -m mbjax.evaluate --config=configs/action_custom.py --checkpoint=runs/my_actions/best \\
      --evals=test
  python -m mbjax.predict_action --checkpoint=runs/my_actions --input=clip.json

The NTU-60 recipe (configs/action_ntu60.py: crop-scale, random_move, dropout 0.5, AdamW, lr x0.99
per epoch, the class head) on the `actions` dataset of `data.data_dir`: its `train` split minus a
seeded validation slice (`data.val_fraction`, the best checkpoint's), its `test` split evaluated
before training and at the end. The class count and names come from the dataset
(`model.head.num_classes=0`: its metadata's `label_names`, filled in when the run starts and kept
in the workdir's config.json). Fewer epochs than NTU's 300 suit datasets of a few hundred clips.

Variants: `ft` (default; finetune --config.init_from), `scratch`, `frozen` (head only), then the
switches of every config (configs/common.py), e.g. `configs/action_custom.py:frozen,runlocal`.
"""

import ml_collections

from configs import action_ntu60, common

EPOCHS = 30


def get_config(arg: str = 'ft') -> ml_collections.ConfigDict:
  mode, switches = common.parse_arg(arg, config_file=__file__, variants=action_ntu60.MODES)
  c = action_ntu60.get_config(f'xsub,{mode}')
  c.model.head.num_classes = 0  # from the dataset's label_names
  c.label_names = ()
  c.epochs = EPOCHS
  c.data.update(dataset='actions', train_split='train', test_split='test', val_fraction=0.1)
  c.evals.val.update(split='train', every_steps=200)
  c.evals.test.update(split='test')
  c.checkpoint.every_steps = 200
  common.apply_switches(c, switches)
  return c
