"""Config files read as `--config=FILE:ARG` reads them: variants, switches, and rejected words."""

import pathlib

import pytest
from absl import flags
from ml_collections import config_flags

from configs import common
from mbjax.train import sharding
from mbjax.models.dstformer import TINY

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Config file -> (a valid first word, the config's own switches).
CONFIGS = {
    'configs/pretrain.py': ('tiny', ('no_conf',)),
    'configs/pose3d_h36m.py': ('ft', ('no_conf',)),
    'tests/configs/tiny_pretrain.py': ('some/data_dir', ('nan', 'long')),
    'tests/configs/tiny_pose3d.py': ('some/data_dir', ('global', 'noflip')),
    'configs/action_ntu60.py': ('xsub', ('ft', 'scratch', 'frozen')),
    'tests/configs/tiny_action.py': ('some/data_dir', ('ft', 'scratch', 'frozen')),
    'configs/action_ntu120_oneshot.py': ('ft', ()),
    'tests/configs/tiny_oneshot.py': ('some/data_dir', ('scratch',)),
    'configs/scaling.py': ('pretrain', ()),
}


def _load(config_file: str, arg: str):
  """The ConfigDict `--config=ROOT/config_file:arg` gives, through ml_collections' flag parser."""
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, 'Config file.', flag_values=flag_values,
                                  lock_config=True)
  flag_values(['test', f'--config={ROOT / config_file}:{arg}'])
  return flag_values.config


def _error(config_file: str, arg: str) -> str:
  """The message of the error loading `config_file:arg` raises."""
  with pytest.raises(flags.IllegalFlagValueError) as info:  # wraps the config's ValueError
    _load(config_file, arg)
  return str(info.value)


@pytest.mark.parametrize('config_file', CONFIGS)
def test_common_switches_set_their_fields(config_file):
  first, _ = CONFIGS[config_file]
  plain = _load(config_file, first)
  assert (plain.fsdp, plain.tensor_parallel, plain.model.dtype, plain.model.scan_layers) == (
      False, False, 'float32', False)
  c = _load(config_file, f'{first},fsdp=2,tp=4,bf16,scan,runlocal')
  assert c.fsdp and c.mesh.fsdp == 2
  assert c.tensor_parallel and c.mesh.tensor == 4
  assert c.model.dtype == 'bfloat16' and c.model.param_dtype == 'float32'
  assert c.model.scan_layers
  assert (c.batch_size, c.total_steps, c.checkpoint.every_steps) == (8, 20, 10)
  assert all(e.every_steps in (0, 10) for e in c.evals.values())
  sharding.check_parallelism(c.mesh, fsdp=c.fsdp, tensor=c.tensor_parallel)


@pytest.mark.parametrize('config_file', CONFIGS)
def test_unknown_switch_is_rejected_with_the_valid_ones(config_file):
  first, options = CONFIGS[config_file]
  message = _error(config_file, f'{first},runlocal,runlcoal')
  assert f"{config_file}: in '{first},runlocal,runlcoal': unknown switch 'runlcoal'" in message
  valid = ', '.join(['runlocal', 'bf16', 'scan', 'fsdp=N', 'tp=N', *options])
  assert f'valid switches: {valid}' in message


@pytest.mark.parametrize('arg, expected', [
    ('fsdp', "switch 'fsdp' needs a device count, e.g. fsdp=4"),
    ('tp=', "switch 'tp=': N must be a positive integer, got ''"),
    ('fsdp=0', "switch 'fsdp=0': N must be a positive integer, got '0'"),
    ('tp=-2', "switch 'tp=-2': N must be a positive integer, got '-2'"),
    ('fsdp=two', "switch 'fsdp=two': N must be a positive integer, got 'two'"),
    ('tp=1', "switch 'tp=1' splits over one device, which does nothing"),
    ('bf16=1', "switch 'bf16' takes no value, got 'bf16=1'"),
    ('fsdp=2,fsdp=4', "switch 'fsdp' given twice"),
])
def test_bad_switch_values(arg, expected):
  with pytest.raises(ValueError, match='^configs/pretrain.py: ') as info:
    common.parse_arg(f'lite,{arg}', config_file=str(ROOT / 'configs/pretrain.py'),
                     variants=('lite',))
  assert expected in str(info.value)


def test_unknown_variant_lists_variants_and_switches():
  message = _error('configs/pretrain.py', 'tyni,runlocal')
  assert ("configs/pretrain.py: unknown variant 'tyni', expected one of "
          "['release', 'lite', 'tiny'], then switches among: runlocal, bf16, scan") in message
  assert "unknown variant 'tiny'" in _error('configs/pose3d_h36m.py', 'tiny')


def test_test_configs_need_a_data_dir_and_take_their_options():
  assert 'the first word, a data directory, is empty' in _error(
      'tests/configs/tiny_pretrain.py', ',nan')
  assert "unknown switch 'noflip'" in _error('tests/configs/tiny_pretrain.py', 'd,noflip')
  c = _load('tests/configs/tiny_pretrain.py', 'd,nan,long')
  assert (c.data.data_dir, c.lr, c.total_steps) == ('d', 1e12, 40)
  c = _load('tests/configs/tiny_pose3d.py', 'd,global,noflip')
  assert (c.data.data_dir, c.rootrel, c.flip, c.flip_test) == ('d', False, False, False)


def test_tiny_configs_use_the_one_tiny_model():
  pretrain = _load('configs/pretrain.py', 'tiny').model
  assert {k: pretrain[k] for k in TINY} == TINY
  pose3d = _load('tests/configs/tiny_pose3d.py', 'd').model
  assert {k: pose3d[k] for k in TINY} == TINY  # maxlen 243: the h36m clips
  short = _load('tests/configs/tiny_pretrain.py', 'd').model
  assert {k: short[k] for k in TINY} == dict(TINY, maxlen=9)  # the 9-frame session clips


def test_release_variants_unchanged():
  c = _load('configs/pretrain.py', 'release')
  assert (c.model.dim_feat, c.model.depth, c.batch_size, c.total_steps) == (512, 5, 64, -1)
  c = _load('configs/pose3d_h36m.py', 'lite,runlocal')
  assert (c.model.dim_feat, c.evals.h36m.every_steps, c.total_steps) == (256, 10, 20)


@pytest.mark.parametrize('config_file', ['configs/pretrain.py', 'configs/pose3d_h36m.py'])
def test_official_input_switches(config_file):
  """`no_conf` and `gt_2d` off as in every official config; the `no_conf` word sets both fields
  the model needs (official `no_conf`: x, y input only)."""
  first, _ = CONFIGS[config_file]
  plain = _load(config_file, first)
  assert (plain.no_conf, plain.gt_2d, plain.model.dim_in) == (False, False, 3)
  c = _load(config_file, f'{first},no_conf')
  assert (c.no_conf, c.model.dim_in) == (True, 2)


def test_pretrain_data_fields_and_overrides():
  """Official MB_pretrain: rootrel, synthetic 2D, 3D clips not crop-scaled (no
  `scale_range_pretrain`); a crop-scale range can be given on the command line."""
  c = _load('configs/pretrain.py', 'tiny')
  assert c.rootrel and c.synthetic and c.augment.scale_range_3d == ()
  assert [s.get('key_2d') for s in c.data.sources_3d] == [None, 'joint_2d']  # AMASS has no 2D
  argv = ['test', f'--config={ROOT / "configs/pretrain.py"}:tiny',
          '--config.augment.scale_range_3d=(1, 1)', '--config.synthetic=False']
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, 'Config file.', flag_values=flag_values,
                                  sys_argv=argv)
  flag_values(argv)
  assert tuple(flag_values.config.augment.scale_range_3d) == (1, 1)
  assert not flag_values.config.synthetic
