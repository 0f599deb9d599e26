"""A killed dataset build leaves a hidden `.NAME-building-*` folder; the next build of the same
dataset removes those whose process is gone, and leaves running builds and other datasets alone."""

import os
import socket
import subprocess
import sys

from data_prep import builder, wild


def _leftover(data_dir, name, owner=None, age_s=0.0):
  d = data_dir / name
  d.mkdir()
  (d / 'records.part').write_bytes(b'x' * 4096)
  if owner is not None:
    (d / 'owner').write_text(owner)
  if age_s:
    old = os.stat(d).st_mtime - age_s
    os.utime(d, (old, old))
  return d


def test_next_build_removes_leftovers_of_killed_builds_only(tmp_path):
  host = socket.gethostname()
  dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                        capture_output=True, text=True, check=True).stdout.strip()
  killed = _leftover(tmp_path, '.wild-building-killed', f'{host} {dead}')
  legacy = _leftover(tmp_path, '.wild-building-legacy', age_s=7200)  # no owner, 2 h old
  running = _leftover(tmp_path, '.wild-building-running', f'{host} {os.getpid()}')
  recent = _leftover(tmp_path, '.wild-building-recent')  # no owner, just made: maybe running
  remote = _leftover(tmp_path, '.wild-building-remote', f'another-host {dead}')
  other = _leftover(tmp_path, '.mocap-building-killed', f'{host} {dead}')
  builder.build('wild', source=wild.ASSETS, data_dir=tmp_path,
                options=dict(clip_len=9, stride=27))
  assert not killed.exists() and not legacy.exists()
  assert running.exists() and recent.exists() and remote.exists() and other.exists()
  assert (tmp_path / 'wild' / '1.0.0' / 'dataset_info.json').is_file()
  assert not [p for p in tmp_path.glob('.wild-building-*')
              if p not in (running, recent, remote)]  # the new build cleaned up after itself
