"""Official checkpoints in and out: torch.save files without torch, key/shape/value identity."""

import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbjax import convert
from mbjax.checkpoint import converted, official
from mbjax.checkpoint import torch_zip as torch_format
from mbjax.models import dstformer_from_variant

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _layout(reference_dir, section: str) -> dict[str, tuple]:
  """Key -> shape for one section of official_checkpoint_layout.md."""
  text = (reference_dir / 'official_checkpoint_layout.md').read_text()
  block = text.split(f'## {section}')[1].split('```')[1]
  out = {}
  for line in block.strip().splitlines():
    key, shape = line.split(' ', 1)
    out[key] = tuple(int(s) for s in re.findall(r'\d+', shape))
  return out


def _random_state_dict(layout, seed=0):
  rng = np.random.default_rng(seed)
  sd = {}
  for k, shape in layout.items():
    if k.endswith('num_batches_tracked'):
      sd[k] = np.array(123, np.int64)
    elif k.endswith('running_var'):
      sd[k] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    else:
      sd[k] = rng.standard_normal(shape).astype(np.float32)
  return sd


def _assert_same_state_dict(a, b):
  assert sorted(a) == sorted(b)
  for k in a:
    assert a[k].shape == b[k].shape, k
    assert a[k].dtype == b[k].dtype, k
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize('section,model', [
    ('MB_release', 'pose'), ('MB_lite', 'pose')])
def test_official_flax_official_is_identity(reference_dir, tmp_path, section, model):
  layout = _layout(reference_dir, section)
  sd = _random_state_dict(layout)
  path = tmp_path / 'official.bin'
  torch_format.save({'epoch': 7, 'lr': 2e-4, 'model_pos': sd, 'min_loss': 41.5}, path)
  loaded = official.load_official(path)
  _assert_same_state_dict(loaded, sd)
  variables = official.official_to_variables(loaded, model)
  variant = 'release' if section == 'MB_release' else 'lite'
  converted.check_against_module(variables, converted.config_from_state_dict(sd, model, variant), path)
  back_path = tmp_path / 'back.bin'
  official.save_official(variables, model, back_path)
  _assert_same_state_dict(official.load_official(back_path), sd)


def test_action_class_head_round_trip(reference_dir, tmp_path):
  backbone = {k.replace('module.', 'module.backbone.'): v
              for k, v in _layout(reference_dir, 'MB_release').items()}
  head = _layout(reference_dir, "Action head (version='class', NTU60), keys under `model`")
  sd = _random_state_dict({**backbone, **head}, seed=1)
  path = tmp_path / 'action.bin'
  torch_format.save({'model': sd, 'best_acc': 0.9}, path)
  variables = official.official_to_variables(official.load_official(path), 'action-class')
  assert int(variables['batch_stats']['head']['bn']['num_batches_tracked']) == 123
  config = converted.config_from_state_dict(sd, 'action-class', 'release')
  assert config['head']['num_classes'] == 60
  converted.check_against_module(variables, config, path)
  _assert_same_state_dict(official.variables_to_official(variables, 'action-class'), sd)


def test_flax_init_to_official_layout(reference_dir):
  model = dstformer_from_variant('release')
  variables = jax.jit(lambda: model.init(jax.random.key(0), jnp.zeros((1, 4, 17, 3))))()
  sd = official.variables_to_official(variables, 'pose')
  layout = _layout(reference_dir, 'MB_release')
  assert {k: v.shape for k, v in sd.items()} == layout
  assert all(v.dtype == np.float32 for v in sd.values())


def test_module_prefix_is_optional(reference_dir):
  layout = _layout(reference_dir, 'MB_lite')
  sd = _random_state_dict(layout)
  bare = {k[len('module.'):]: v for k, v in sd.items()}
  a = official.official_to_variables(sd, 'pose')
  b = official.official_to_variables(bare, 'pose')
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def _cli(*args) -> int:
  """`python -m mbjax.convert ARGS` in this process: absl's flag parsing, then main."""
  return convert.main(convert.parse_flags(['mbjax.convert', *args]))


def test_cli_round_trip_and_restore(reference_dir, tmp_path):
  sd = _random_state_dict(_layout(reference_dir, 'MB_lite'), seed=2)
  src = tmp_path / 'lite.bin'
  torch_format.save({'model_pos': sd}, src)
  out = tmp_path / 'ckpt'
  assert _cli(str(src), str(out), '--model', 'pose', '--variant', 'lite') == 0
  module, variables = converted.restore(out)
  x = np.random.default_rng(0).standard_normal((1, 5, 17, 3)).astype(np.float32)
  direct = module.apply(official.official_to_variables(sd, 'pose'), x)
  np.testing.assert_array_equal(module.apply(variables, x), direct)
  back = tmp_path / 'back.bin'
  assert _cli('--to-official', str(out), str(back)) == 0
  _assert_same_state_dict(official.load_official(back), sd)


def _run_cli(*args) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'mbjax.convert', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('args, message', [
    (['only_src.bin'], "expected 2 arguments, SRC and DST, got 1: ['only_src.bin']"),
    (['a.bin', 'out', 'extra'], 'expected 2 arguments, SRC and DST, got 3'),
    (['a.bin', 'out', '--model', 'posee'], 'flag --model=posee: value should be one of'),
    (['--variant=huge', 'a.bin', 'out'], 'flag --variant=huge: value should be one of'),
    (['missing.bin', 'out'], 'missing.bin'),
])
def test_cli_user_mistakes_exit_with_one_line(args, message):
  result = _run_cli(*args)
  assert result.returncode != 0
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('mbjax.convert: '), result.stderr
  assert message in lines[0]


def test_cli_help_lists_its_flags_and_import_defines_none():
  result = _run_cli('--help')  # absl's --help exits with status 1
  for flag in ('--model', '--variant', '--[no]to-official'):
    assert flag in result.stdout, result.stdout
  check = ('import mbjax.convert; from absl import flags; '
           'assert not {"model", "variant", "to-official"} & set(flags.FLAGS), list(flags.FLAGS)')
  subprocess.run([sys.executable, '-c', check], cwd=ROOT, check=True, timeout=300)


def test_wrong_variant_and_model_fail_clearly(reference_dir, tmp_path):
  sd = _random_state_dict(_layout(reference_dir, 'MB_lite'))
  with pytest.raises(ValueError, match="does not match variant 'release' .it is a lite "
                     'checkpoint: pass --variant lite'):
    converted.config_from_state_dict(sd, 'pose', 'release')
  # A pose checkpoint converted as an action model (used to be an IndexError).
  with pytest.raises(ValueError, match='holds an official pose model, not action-class; pass '
                     '--model pose'):
    converted.config_from_state_dict(sd, 'action-class', 'lite')
  with pytest.raises(ValueError, match='not under backbone'):
    official.official_to_variables(sd, 'action-class')
  with pytest.raises(ValueError, match='not a DSTformer state dict: no pos_embed'):
    converted.config_from_state_dict({'fc.weight': np.zeros((2, 2))}, 'pose', 'lite')


def _zip_with_bad_crc(path):
  """A torch.save file whose first storage has one byte flipped after writing (bad CRC-32)."""
  torch_format.save({'w': np.arange(64, dtype=np.float32)}, path)
  raw = bytearray(path.read_bytes())
  offset = raw.index(np.arange(64, dtype=np.float32).tobytes())
  raw[offset + 5] ^= 0xFF
  path.write_bytes(bytes(raw))


@pytest.mark.parametrize('make, message', [
    (lambda p: None, r'not_here\.bin: no such file'),
    (lambda p: p.mkdir(), r'\.bin: is a folder, expected a torch.save file'),
    (lambda p: p.write_bytes(b''), r'\.bin: the file is empty'),
    (lambda p: p.write_bytes(b'\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19.'),
     r'\.bin: a legacy \(pre-1\.6\) torch\.save file'),
    (lambda p: p.write_bytes(b'<html>not found</html>'), r'\.bin: not a torch\.save file'),
    (lambda p: (torch_format.save({'w': np.ones(1000, np.float32)}, p),
                p.write_bytes(p.read_bytes()[:2000])), r'\.bin: truncated: a zip archive'),
    (_zip_with_bad_crc, r'\.bin: damaged archive \(reading member not_here/data/0\): Bad CRC'),
])
def test_torch_format_errors_name_the_file_and_what_is_wrong(tmp_path, make, message):
  path = tmp_path / 'not_here.bin'
  make(path)
  with pytest.raises(torch_format.TorchFormatError, match=message):
    torch_format.load(path)


def test_reads_reference_state_dict_through_a_bin(reference_dir, tmp_path):
  data = np.load(reference_dir / 'dstformer_tiny.npz')
  sd = {k[len('model_pos/'):]: data[k] for k in data.files if k.startswith('model_pos/')}
  path = tmp_path / 'tiny.bin'
  torch_format.save({'model_pos': sd}, path)
  from mbjax.models import DSTformer
  import json
  cfg = json.loads(str(data['config']))
  model = DSTformer(**cfg)
  out = model.apply(official.official_to_variables(official.load_official(path), 'pose'), data['x'])
  assert float(np.max(np.abs(out - data['out']))) <= 1e-4


def test_cli_never_clobbers_an_output_it_was_not_told_to(reference_dir, tmp_path, monkeypatch):
  sd = _random_state_dict(_layout(reference_dir, 'MB_lite'), seed=3)
  src = tmp_path / 'lite.bin'
  torch_format.save({'model_pos': sd}, src)
  out = tmp_path / 'ckpt'
  assert _cli(str(src), str(out), '--variant', 'lite') == 0
  before = sorted(p.relative_to(out) for p in out.rglob('*'))
  with pytest.raises(FileExistsError, match='exists and is not empty; pass --overwrite'):
    _cli(str(src), str(out), '--variant', 'lite')
  # A conversion that dies mid-way (here: while writing config.json) leaves the old output whole.
  real_dump = json.dump
  monkeypatch.setattr(json, 'dump', lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
  with pytest.raises(KeyboardInterrupt):
    _cli(str(src), str(out), '--variant', 'lite', '--overwrite')
  monkeypatch.setattr(json, 'dump', real_dump)
  assert sorted(p.relative_to(out) for p in out.rglob('*')) == before
  assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []
  converted.restore(out)
  assert _cli(str(src), str(out), '--variant', 'lite', '--overwrite') == 0
  converted.restore(out)


def test_cli_help_lists_the_mesh_flags():
  result = _run_cli('--help')
  assert '--smpl_dir' in result.stdout and 'mesh' in result.stdout, result.stdout
  assert official.official_kind({'module.head.init_pose': np.zeros((1, 144))}) == 'mesh'


def test_to_official_replaces_a_file_only_when_told_and_then_whole(reference_dir, tmp_path,
                                                                    monkeypatch):
  sd = _random_state_dict(_layout(reference_dir, 'MB_lite'), seed=4)
  torch_format.save({'model_pos': sd}, tmp_path / 'lite.bin')
  out = tmp_path / 'ckpt'
  assert _cli(str(tmp_path / 'lite.bin'), str(out), '--variant', 'lite') == 0
  back = tmp_path / 'notes.txt'
  back.write_text('mine')
  with pytest.raises(FileExistsError, match='notes.txt exists; pass --overwrite to replace it'):
    _cli('--to-official', str(out), str(back))
  # A write that dies mid-way (here: after the first member of the zip) leaves the old file.
  real = torch_format._write_archive

  def dies(path, *args):
    with open(path, 'wb') as f:
      f.write(b'PK\x03\x04 half an archive')
    raise KeyboardInterrupt

  monkeypatch.setattr(torch_format, '_write_archive', dies)
  with pytest.raises(KeyboardInterrupt):
    _cli('--to-official', str(out), str(back), '--overwrite')
  monkeypatch.setattr(torch_format, '_write_archive', real)
  assert back.read_text() == 'mine'
  assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []
  assert _cli('--to-official', str(out), str(back), '--overwrite') == 0
  _assert_same_state_dict(official.load_official(back), sd)


def _leftover(out: pathlib.Path, tag: str, pid: int) -> pathlib.Path:
  """The name of a hidden sibling of `out` as a convert process `pid` names it."""
  from mbjax.files import atomic
  return pathlib.Path(atomic.temporary_name(out, tag).replace(f'-{os.getpid()}-', f'-{pid}-'))


def test_leftovers_of_killed_converts_are_removed_and_said(reference_dir, tmp_path, capsys):
  sd = _random_state_dict(_layout(reference_dir, 'MB_lite'), seed=5)
  torch_format.save({'model_pos': sd}, tmp_path / 'lite.bin')
  out = tmp_path / 'ckpt'
  dead = int(subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                            capture_output=True, text=True, check=True).stdout)
  stale = _leftover(out, converted.CONVERTING, dead)
  running = _leftover(out, converted.CONVERTING, os.getpid())  # a live convert's: kept
  for path in (stale, running):
    path.mkdir()
    (path / 'config.json').write_text('{}')
  assert _cli(str(tmp_path / 'lite.bin'), str(out), '--variant', 'lite') == 0
  said = capsys.readouterr().out
  assert f'removed {stale}, left by an interrupted convert\n' in said
  assert not stale.exists() and running.exists()
  # Killed between setting the old output aside and putting the new one in place (systems
  # without renameat2): the old output goes back first.
  aside = _leftover(out, converted.REPLACED, dead)
  out.rename(aside)
  notes = converted.remove_leftovers(str(out))
  assert notes == [f'restored {out} from {aside.name}, set aside by an interrupted convert']
  converted.restore(out)
