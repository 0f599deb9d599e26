"""Outputs survive kills, full disks and read-only folders (issue 25).

Kill tests: a command that writes over an existing output is SIGKILLed at random moments once it
has started writing; what is left is the old output whole or the new one whole, never a mix, and
the next write removes the leftovers of the killed one. Then: a full disk or a read-only folder
is one line naming the path and what the system said, and --embed writes the file it names.
"""

import concurrent.futures
import errno
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from flax.core import meta

import mbjax.export
from mbjax import cli, models
from mbjax.checkpoint import converted, loader, official
from mbjax.models import dstformer

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = dict({k: v for k, v in os.environ.items() if k != 'MBJAX_TRACEBACK'}, JAX_PLATFORMS='cpu',
           XLA_FLAGS='')
TINY = dict(dstformer.TINY, maxlen=27)
KILLS = 5  # random kills per command
# A kill comes 0..MAX_DELAY_S after the first sign of writing: a file of the tiny model is written
# in milliseconds, a convert folder (orbax) in about a second.
MAX_DELAY_S = dict(file=0.03, folder=1.5)


def _variables(seed: int) -> dict:
  model = models.from_config(TINY)
  shapes = meta.unbox(jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 9, 17, 3))))
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(lambda a: rng.normal(0, 0.05, a.shape).astype(a.dtype), shapes)


def _convert_dir(path: pathlib.Path, seed: int) -> str:
  converted.save(path, _variables(seed), {'model': 'pose', 'backbone': dict(TINY)})
  return str(path)


def _hidden(folder: pathlib.Path) -> list[str]:
  return sorted(p.name for p in folder.iterdir() if p.name.startswith('.'))


def _snapshot(folder: pathlib.Path) -> dict:
  found = {}
  for entry in os.scandir(folder):
    try:
      s = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
      continue
    found[entry.name] = (s.st_ino, s.st_size, s.st_mtime_ns)
  return found


def _kill_once_writing(argv: list[str], folder: pathlib.Path, seed: int,
                       max_delay: float = MAX_DELAY_S['file']) -> int | None:
  """Runs `argv`; once anything in `folder` changes (a temporary appears, a file is truncated),
  SIGKILLs it after a random 0..max_delay seconds. Returns the exit status if it ended first."""
  before = _snapshot(folder)
  proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 300
  while proc.poll() is None and _snapshot(folder) == before and time.monotonic() < deadline:
    time.sleep(0.0005)
  time.sleep(random.Random(seed).uniform(0, max_delay))
  status = proc.poll()
  if status is None:
    proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert status in (None, 0), proc.stderr.read()[-2000:]
  return status


def _tries(make_try) -> list:
  """KILLS tries of `make_try(k)`, two at a time."""
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    return list(pool.map(make_try, range(KILLS)))


# --------------------------------------------------------------------------------- kill tests


def _export_state(out: pathlib.Path, old: dict) -> str:
  """'old' or 'new' for what a killed export left at `out`; fails on anything else."""
  data = out.read_bytes()
  sidecar = json.loads(pathlib.Path(f'{out}.json').read_text())
  if data == old['data']:
    assert sidecar == old['sidecar'], 'the sidecar was replaced before its file'
    return 'old'
  jax.export.deserialize(bytearray(data))  # complete: the whole file deserializes
  if sidecar == old['sidecar']:  # killed between the two renames: refused, in one line
    with pytest.raises(ValueError, match='does not match its sidecar.*export it again'):
      mbjax.export.load(str(out))
  else:
    assert mbjax.export.load(str(out))(np.zeros((1, 4, 17, 3), np.float32)).shape == (1, 4, 17, 3)
  return 'new'


@pytest.mark.slow
def test_a_killed_export_leaves_the_old_file_or_the_new_one(tmp_path):
  checkpoint = _convert_dir(tmp_path / 'ckpt', seed=0)
  first = tmp_path / 'first' / 'model.hlo'
  mbjax.export.export(checkpoint, str(first))
  old = dict(data=first.read_bytes(), sidecar=json.loads(pathlib.Path(f'{first}.json').read_text()))

  def one_try(k):
    folder = tmp_path / f'try{k}'
    folder.mkdir()
    out = folder / 'model.hlo'
    out.write_bytes(old['data'])
    pathlib.Path(f'{out}.json').write_text(json.dumps(old['sidecar']))
    _kill_once_writing([sys.executable, '-m', 'mbjax.export', f'--checkpoint={checkpoint}',
                        f'--out={out}', '--flip_test', '--overwrite'], folder, seed=k)
    return folder, _export_state(out, old)

  results = _tries(one_try)
  folder = results[-1][0]  # a complete export removes what the killed one left
  done = subprocess.run([sys.executable, '-m', 'mbjax.export', f'--checkpoint={checkpoint}',
                         f'--out={folder / "model.hlo"}', '--flip_test', '--overwrite'],
                        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert _hidden(folder) == [] and _export_state(folder / 'model.hlo', old) == 'new'


def _state_dict_state(path: pathlib.Path, old: dict, new: dict) -> str:
  got = official.load_official(path)  # a partial zip fails here
  for name, want in (('old', old), ('new', new)):
    if set(got) == set(want) and all(np.array_equal(got[k], want[k]) for k in want):
      return name
  raise AssertionError(f'{path}: neither the old nor the new state dict')


@pytest.mark.slow
def test_a_killed_convert_to_official_leaves_the_old_file_or_the_new_one(tmp_path):
  checkpoint = _convert_dir(tmp_path / 'ckpt', seed=0)
  old_bin = tmp_path / 'old.bin'
  official.save_official(_variables(seed=1), 'pose', old_bin)
  old = official.load_official(old_bin)
  new = official.variables_to_official(loader.load_variables(checkpoint), 'pose')

  def one_try(k):
    folder = tmp_path / f'try{k}'
    folder.mkdir()
    out = folder / 'back.bin'
    out.write_bytes(old_bin.read_bytes())
    _kill_once_writing([sys.executable, '-m', 'mbjax.convert', '--to-official', checkpoint,
                        str(out), '--overwrite'], folder, seed=k)
    return folder, _state_dict_state(out, old, new)

  results = _tries(one_try)
  folder = results[-1][0]
  done = subprocess.run([sys.executable, '-m', 'mbjax.convert', '--to-official', checkpoint,
                         str(folder / 'back.bin'), '--overwrite'], cwd=ROOT, env=ENV,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert _hidden(folder) == [] and _state_dict_state(folder / 'back.bin', old, new) == 'new'


# The child of the directory kill test: `converted.save` of the variables in an .npz (the convert
# command itself reads only released sizes; this is the same save, on the tiny model).
_SAVE = '''
import sys, numpy as np
from flax import traverse_util
from mbjax.checkpoint import converted
with np.load(sys.argv[2]) as z:
  variables = traverse_util.unflatten_dict({tuple(k.split('/')): z[k] for k in z.files})
converted.save(sys.argv[1], variables, {'model': 'pose', 'backbone': %r}, overwrite=True)
''' % dict(TINY)


@pytest.mark.slow
def test_a_killed_convert_leaves_the_old_folder_or_the_new_one(tmp_path):
  old_dir = _convert_dir(tmp_path / 'old', seed=0)
  new_vars = _variables(seed=1)
  flat = traverse_util.flatten_dict(new_vars, sep='/')
  np.savez(tmp_path / 'new.npz', **flat)
  old_flat = traverse_util.flatten_dict(loader.load_variables(old_dir), sep='/')

  def state(out):
    got = traverse_util.flatten_dict(loader.load_variables(str(out)), sep='/')
    for name, want in (('old', old_flat), ('new', flat)):
      if all(np.array_equal(got[k], want[k]) for k in want):
        return name
    raise AssertionError(f'{out}: neither the old nor the new weights')

  def one_try(k):
    folder = tmp_path / f'try{k}'
    folder.mkdir()
    subprocess.run(['cp', '-r', old_dir, str(folder / 'ckpt')], check=True)
    _kill_once_writing([sys.executable, '-c', _SAVE, str(folder / 'ckpt'),
                        str(tmp_path / 'new.npz')], folder, seed=k,
                       max_delay=MAX_DELAY_S['folder'])
    return folder, state(folder / 'ckpt')

  results = _tries(one_try)
  for folder, _ in results:  # the next convert to the same folder cleans up and says so
    left = _hidden(folder)
    notes = converted.save(folder / 'ckpt', new_vars, {'model': 'pose', 'backbone': dict(TINY)},
                           overwrite=True)
    assert len(notes) == len(left) and all('left by an interrupted convert' in n for n in notes)
    assert _hidden(folder) == [] and state(folder / 'ckpt') == 'new'


# ------------------------------------------------------------------- full disks, read-only folders


def _call(fn, monkeypatch, capsys, traceback=False):
  """cli.call(fn): (exit status, stderr)."""
  monkeypatch.setenv(cli.TRACEBACK_ENV, '1' if traceback else '')
  with pytest.raises(SystemExit) as e:
    cli.call('mbjax.x', fn)
  return e.value.code, capsys.readouterr().err


def test_a_full_disk_or_a_read_only_folder_is_one_line(monkeypatch, capsys):
  def raises(*args):
    def fn():
      raise OSError(*args)
    return fn

  assert _call(raises(errno.ENOSPC, 'No space left on device', '/data/out.bin'), monkeypatch,
               capsys) == (1, 'mbjax.x: error: /data/out.bin: No space left on device\n')
  assert _call(raises(errno.EROFS, 'Read-only file system', '/mnt/ro/x'), monkeypatch,
               capsys) == (1, 'mbjax.x: error: /mnt/ro/x: Read-only file system\n')
  assert _call(raises(errno.EACCES, 'Permission denied', '/root/x'), monkeypatch,
               capsys) == (1, 'mbjax.x: error: /root/x: Permission denied\n')
  assert _call(raises(errno.EDQUOT, 'Disk quota exceeded'), monkeypatch, capsys) == (
      1, 'mbjax.x: error: Disk quota exceeded (errno EDQUOT)\n')
  with pytest.raises(OSError):  # MBJAX_TRACEBACK=1: the traceback, as for every error
    _call(raises(errno.ENOSPC, 'No space left on device', '/x'), monkeypatch, capsys,
          traceback=True)
  with pytest.raises(ConnectionResetError):  # not about a path: a bug, with its traceback
    _call(raises(errno.ECONNRESET, 'Connection reset'), monkeypatch, capsys)


def test_a_full_disk_while_converting_names_the_output(tmp_path, monkeypatch):
  import orbax.checkpoint as ocp

  def full(*args, **kwargs):  # what tensorstore raises when a write fails for want of space
    raise ValueError('RESOURCE_EXHAUSTED: Error writing "params.x/0" in OCDBT database at local '
                     'file "/tmp/.ckpt.converting-h-1-0/variables/": Failed to write 90464 bytes '
                     "to file 4: No space left on device [os_error_code='28']")

  monkeypatch.setattr(ocp.StandardCheckpointer, 'save', full)
  with pytest.raises(OSError) as e:
    converted.save(tmp_path / 'ckpt', _variables(0), {'model': 'pose', 'backbone': dict(TINY)})
  assert (e.value.errno, e.value.filename) == (errno.ENOSPC, str(tmp_path / 'ckpt'))
  assert os.listdir(tmp_path) == []


def _read_only(folder: pathlib.Path):
  """Makes `folder` unwritable (chmod; as root, the immutable attribute); returns the undo."""
  folder.chmod(0o555)
  if os.access(folder, os.W_OK):  # root ignores the mode
    done = subprocess.run(['chattr', '+i', str(folder)], capture_output=True)
    if done.returncode != 0:
      folder.chmod(0o755)
      pytest.skip('cannot make a folder read-only here (root without chattr)')
    return lambda: (subprocess.run(['chattr', '-i', str(folder)]), folder.chmod(0o755))
  return lambda: folder.chmod(0o755)


def test_infer_into_a_read_only_folder_is_one_line(tmp_path):
  import test_infer_cli
  official.save_official(_variables(seed=0), 'pose', tmp_path / 'tiny.bin')
  source = test_infer_cli.write_two_persons(tmp_path / 'two.json')
  out = tmp_path / 'out'
  out.mkdir()
  undo = _read_only(out)
  try:
    done = subprocess.run([sys.executable, '-m', 'mbjax.infer', str(source),
                           f'--checkpoint={tmp_path / "tiny.bin"}', f'--out={out}',
                           '--config=configs/pose3d_h36m.py:global_lite',
                           *test_infer_cli.TINY_FLAGS], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)
  finally:
    undo()
  assert done.returncode == 1 and 'Traceback' not in done.stderr, done.stderr[-3000:]
  line = done.stderr.strip().splitlines()[-1]
  assert line.startswith(f'mbjax.infer: error: {out}/results.npz: '), line
  assert line.endswith(('Permission denied', 'Operation not permitted', 'Read-only file system'))
  assert os.listdir(out) == []


def test_predict_action_writes_the_file_it_names_and_says_so(tmp_path):
  import test_bad_inputs
  test_bad_inputs._write_output_inputs(tmp_path, {'params': _variables(0)['params']})
  argv = [a.replace('{tmp}', str(tmp_path)) for a in test_bad_inputs.ACTION]
  embed, top = tmp_path / 'x.bin', tmp_path / 'top.json'
  done = subprocess.run([sys.executable, '-m', 'mbjax.predict_action', *argv, f'--embed={embed}',
                         f'--json={top}', '--top_k=2'], cwd=ROOT, env=ENV, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert f'embedding of {tmp_path / "clip.npy"} to {embed}\n' in done.stdout
  assert f'wrote the top 2 labels to {top}\n' in done.stdout
  assert np.load(embed).shape == (2048,) and len(json.loads(top.read_text())) == 2
  assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(('x.bin', 'top'))) == [
      'top.json', 'x.bin']  # no x.bin.npy
