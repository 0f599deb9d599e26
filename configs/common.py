"""Config blocks every task shares: model fields, optimiser, loss weights, mesh/checkpoint/logging.

Task configs (pretrain.py, pose3d_h36m.py) call these and then set what is theirs. Every config's
`get_config(arg)` reads its arg with `parse_arg`: `VARIANT[,switch...]`, where the switches every
config takes are

  runlocal  a few steps on CPU, logged, checkpointed and evaluated often
  bf16      bfloat16 compute (parameters stay float32)
  scan      `nn.scan` over the transformer blocks
  fsdp=N    parameters and optimiser state sharded over an fsdp mesh axis of N devices
  tp=N      tensor parallel over a tensor mesh axis of N devices

e.g. `--config=configs/pretrain.py:lite,bf16,fsdp=4`. Configs whose model reads 2D clips also take

  no_conf   x, y input only (official `no_conf`): sets `no_conf` and `model.dim_in=2`
"""

import pathlib
from typing import Mapping, Sequence

import ml_collections

SWITCHES = ('runlocal', 'bf16', 'scan')  # on when present
SIZED_SWITCHES = ('fsdp', 'tp')  # `word=N`, N >= 2 devices
INPUT_OPTIONS = ('no_conf',)  # `options` of the configs that call `add_input_switches`
_ROOT = pathlib.Path(__file__).resolve().parents[1]


def config_name(config_file: str) -> str:
  """`configs/pretrain.py` for a config file under the repository, else the path as given."""
  path = pathlib.Path(config_file).resolve()
  return str(path.relative_to(_ROOT)) if path.is_relative_to(_ROOT) else config_file


def _valid_words(options: Sequence[str], valued: Mapping[str, str] = {}) -> str:
  return ', '.join([*SWITCHES, *(f'{w}=N' for w in SIZED_SWITCHES), *options,
                    *(f'{w}={example}' for w, example in valued.items())])


def _parse_word(word: str, options: Sequence[str], valued: Mapping[str, str],
                where: str) -> tuple[str, bool | int | str]:
  """One switch word -> (name, True), (name, N) or, for a `valued` option, (name, its text)."""
  name, has_value, value = word.partition('=')
  if name in valued:
    if not value:
      raise ValueError(f'{where}: switch {name!r} needs a value, e.g. {name}={valued[name]}')
    return name, value
  if name in SIZED_SWITCHES:
    if not has_value:
      raise ValueError(f'{where}: switch {name!r} needs a device count, e.g. {name}=4')
    if not value.isdigit() or int(value) < 1:
      raise ValueError(f'{where}: switch {word!r}: N must be a positive integer, got {value!r}')
    if int(value) == 1:  # the trainer rejects a parallelism switch over a 1-device axis
      raise ValueError(f'{where}: switch {word!r} splits over one device, which does nothing: '
                       f'N must be at least 2 (leave {name!r} out for none)')
    return name, int(value)
  if name in SWITCHES or name in options:
    if has_value:
      raise ValueError(f'{where}: switch {name!r} takes no value, got {word!r}')
    return name, True
  raise ValueError(f'{where}: unknown switch {word!r}; valid switches: '
                   f'{_valid_words(options, valued)}')


def parse_arg(arg: str, *, config_file: str, variants: Sequence[str] | None,
              options: Sequence[str] = (), valued: Mapping[str, str] = {}
              ) -> tuple[str, dict[str, bool | int | str]]:
  """Splits a config arg `VARIANT[,switch...]` and checks every word.

  Args:
    arg: what follows the colon of `--config=FILE:ARG`.
    config_file: the config's `__file__`, named in errors.
    variants: the valid first words; None when the first word is free (a data directory).
    options: the config's own on/off switches, besides the common `SWITCHES`.
    valued: the config's own `word=VALUE` options, name -> an example value (for messages).

  Returns:
    (variant, switches): switches maps each given switch to True, to N for `fsdp=N`/`tp=N`, or
    to the text after `=` for a `valued` option.

  Raises:
    ValueError: an unknown variant or switch (the message lists the valid ones), a switch given
      twice, or a bad N.
  """
  name = config_name(config_file)
  where = f'{name}: in {arg!r}'
  variant, *words = arg.split(',')
  if variants is not None and variant not in variants:
    raise ValueError(f'{name}: unknown variant {variant!r}, expected one of {list(variants)}, '
                     f'then switches among: {_valid_words(options, valued)}')
  if variants is None and not variant:
    raise ValueError(f'{where}: the first word, a data directory, is empty')
  switches = {}
  for word in words:
    switch, value = _parse_word(word, options, valued, where)
    if switch in switches:
      raise ValueError(f'{where}: switch {switch!r} given twice')
    switches[switch] = value
  return variant, switches


def apply_switches(c: ml_collections.ConfigDict, switches: dict[str, bool | int]) -> None:
  """Sets the fields of the common switches (see the module docstring) that `switches` holds."""
  if switches.get('runlocal'):
    shrink_for_runlocal(c)
  if switches.get('bf16'):
    c.model.dtype = 'bfloat16'
  if switches.get('scan'):
    c.model.scan_layers = True
  if 'fsdp' in switches:
    c.fsdp = True
    c.mesh.fsdp = switches['fsdp']
  if 'tp' in switches:
    c.tensor_parallel = True
    c.mesh.tensor = switches['tp']
  if switches.get('no_conf'):
    c.no_conf = True
    c.model.dim_in = 2


def add_input_switches(c: ml_collections.ConfigDict) -> None:
  """The official 2D input switches, off as in every official config."""
  # Official `no_conf`: the model gets x, y only, the confidence channel dropped (training and
  # evaluation); `model.dim_in` must then be 2 (the `no_conf` config switch sets both).
  c.no_conf = False
  # Official `gt_2d`: the 2D input is the 3D ground truth's x, y with confidence 1 instead of the
  # detected 2D, in training and in the h36m evaluator (whose predicted x, y are then the input's).
  c.gt_2d = False


def model(size: dict) -> dict:
  """DSTformer fields: the official constructor arguments at `size`, plus the scale-out knobs.

  parameterization='mup' (mbjax/models/mup.py) makes lr tuned at dim_feat=mup_base_width transfer
  to wider models; 'standard' is the official parameterisation.
  """
  return dict(size, dim_in=3, dim_out=3, num_joints=17, drop_rate=0.0, attn_drop_rate=0.0,
              drop_path_rate=0.0, att_fuse=True, dtype='float32', param_dtype='float32',
              attention_impl='auto', remat_policy='none', scan_layers=False,
              init_scheme='official', parameterization='standard', mup_base_width=64)


def add_optimizer(c: ml_collections.ConfigDict, *, epochs: int, batch_size: int, lr: float,
                  lr_decay: float) -> None:
  """AdamW with wd 0.01 and lr x`lr_decay` per epoch (official); warmup and clipping off."""
  c.epochs = epochs
  c.batch_size = batch_size
  c.lr = lr
  c.lr_head = None
  c.weight_decay = 0.01
  c.lr_decay = lr_decay
  c.warmup_steps = 0
  c.grad_clip = 0.0
  c.head_patterns = ()
  c.partial_train = None
  c.freeze_patterns = ()
  c.total_steps = -1  # -1: the whole curriculum; N > 0 stops after N steps (others refused)
  c.grad_accum_steps = 1  # > 1: the batch is split into that many scanned micro-batches


def loss_3d() -> dict:
  """Official 3D loss weights: MPJPE + 0.5 N-MPJPE + 20 velocity; limb/angle terms off."""
  return dict(lambda_scale=0.5, lambda_3d_velocity=20.0, lambda_lv=0.0, lambda_lg=0.0,
              lambda_a=0.0, lambda_av=0.0)


def add_runtime(c: ml_collections.ConfigDict) -> None:
  """Mesh, checkpointing, logging and initialisation defaults."""
  c.mesh = dict(data=-1, fsdp=1, tensor=1)
  c.fsdp = False
  c.tensor_parallel = False
  # snapshot_every_epochs: keep the state at the end of every N-th epoch in snapshots/ for good
  # (official `checkpoint_frequency`, which saves epoch_N.bin); 0 keeps none.
  c.checkpoint = dict(every_steps=1000, keep=3, async_save=True, snapshot_every_epochs=0)
  c.best_metric = ''
  c.log_every_steps = 50
  c.init_from = ''
  # Resuming a workdir with a config that changes what a step computes (model, batch, data,
  # schedule) stops with the differences; True resumes anyway (recorded in config_history.jsonl).
  c.allow_config_change = False


def shrink_for_runlocal(c: ml_collections.ConfigDict) -> None:
  """A few steps on CPU, logged, checkpointed and evaluated often."""
  c.batch_size = 8
  c.total_steps = 20
  c.log_every_steps = 1
  c.checkpoint.every_steps = 10
  for evaluator in c.evals.values():
    if evaluator.get('every_steps', 0) > 0:  # 0: only before training and at the last step
      evaluator.every_steps = 10
