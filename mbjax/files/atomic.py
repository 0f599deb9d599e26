"""Atomic replacement of output files.

  with atomic.replacing('model.hlo', overwrite=flag) as tmp:   # tmp: a path beside model.hlo
    write_everything_to(tmp)
  # model.hlo is now the new file, or (after any error) still the old one

`check_new(path, overwrite)` refuses an existing output up front, before any work is done.
Temporary names carry the host and process id of their writer (`temporary_name`), so that the
leftovers of a killed writer are recognised and removed by the next write to the same target
(`remove_stale`). A device (`/dev/null`, `/dev/full`, a pipe) is written in place: it holds no
file of the user's to lose, and renaming onto it would replace the device itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
from typing import Iterator


def is_device(path: str | os.PathLike) -> bool:
  """Whether `path` (links followed) is a character or block device, a FIFO or a socket."""
  try:
    mode = os.stat(path).st_mode
  except OSError:
    return False
  return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def check_new(path: str | os.PathLike, overwrite: bool, *, flag: str = '--overwrite') -> None:
  """FileExistsError naming `path` when it exists and `overwrite` is off (a device is never
  refused: writing to it replaces nothing)."""
  path = os.fspath(path)
  if os.path.lexists(path) and not overwrite and not is_device(path):
    raise FileExistsError(f'{path} exists; pass {flag} to replace it')


def _host() -> str:
  return re.sub(r'[^A-Za-z0-9]', '', socket.gethostname().split('.')[0])[:24] or 'host'


def temporary_name(path: str | os.PathLike, tag: str = 'tmp') -> str:
  """A fresh hidden name in the folder of `path` (same file system: the rename is atomic),
  `.NAME.TAG-HOST-PID-RANDOM.EXT`: it ends in the extension of `path` for writers that choose
  the format by it (ffmpeg, Pillow)."""
  directory, name = os.path.split(os.path.abspath(os.fspath(path)))
  ext = os.path.splitext(name)[1]
  return os.path.join(directory, f'.{name}.{tag}-{_host()}-{os.getpid()}-{secrets.token_hex(4)}'
                                 f'{ext}')


def _process_gone(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  except PermissionError:  # alive, another user's
    return False
  return False


def stale_temporaries(path: str | os.PathLike, tag: str = 'tmp') -> list[str]:
  """The temporary names (`temporary_name(path, tag)`) beside `path` whose writer, a process of
  this host, has ended: what a killed writer left behind."""
  directory, name = os.path.split(os.path.abspath(os.fspath(path)))
  pattern = re.compile(re.escape(f'.{name}.{tag}-') + r'(?P<host>\w+)-(?P<pid>\d+)-[0-9a-f]{8}')
  try:
    entries = os.listdir(directory)
  except OSError:
    return []
  found = []
  for entry in sorted(entries):
    match = pattern.match(entry)
    if match and match['host'] == _host() and _process_gone(int(match['pid'])):
      found.append(os.path.join(directory, entry))
  return found


def remove(path: str) -> None:
  """Removes a file or a folder tree, whichever `path` is."""
  if os.path.isdir(path) and not os.path.islink(path):
    shutil.rmtree(path, ignore_errors=True)
  elif os.path.lexists(path):
    os.remove(path)


def remove_stale(path: str | os.PathLike, tag: str = 'tmp') -> list[str]:
  """Removes `stale_temporaries(path, tag)`; returns their paths."""
  found = stale_temporaries(path, tag)
  for leftover in found:
    remove(leftover)
  return found


def _fsync(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  except OSError:  # some file systems refuse fsync of a folder
    pass
  finally:
    os.close(fd)


def _naming(e: OSError, path: str, tmp: str) -> OSError:
  """`e` naming `path`, the file the user asked for, where it names the temporary or nothing
  (a full disk surfaces in write() or close(), whose errors carry no file name)."""
  if e.errno is None or e.filename not in (None, tmp):
    return e
  return OSError(e.errno, e.strerror or os.strerror(e.errno), path)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, *, overwrite: bool = True,
              flag: str = '--overwrite') -> Iterator[str]:
  """Yields a temporary path beside `path`; on a clean exit the file written there is synced and
  renamed onto `path`, on an error it is removed and `path` is left as it was. With
  `overwrite=False` an existing `path` is refused (FileExistsError) before anything is written.
  A device `path` is yielded itself; a folder is refused (IsADirectoryError). An OSError names
  `path` (not the temporary)."""
  path = os.path.abspath(os.fspath(path))
  if os.path.isdir(path):
    raise IsADirectoryError(f'{path} is a folder; expected the name of a file to write')
  check_new(path, overwrite, flag=flag)
  device = is_device(path)
  tmp = path if device else temporary_name(path)
  try:
    if not device:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      remove_stale(path)
    yield tmp
    if not device:
      _move_into_place(tmp, path, overwrite, flag)
  except OSError as e:
    named = _naming(e, path, tmp)
    if named is e:
      raise
    raise named from e
  finally:
    if not device and os.path.lexists(tmp):
      remove(tmp)


def _move_into_place(tmp: str, path: str, overwrite: bool, flag: str) -> None:
  if os.path.isfile(tmp):
    _fsync(tmp)
  if not overwrite and os.path.lexists(path):  # another process wrote it meanwhile
    raise FileExistsError(f'{path} appeared while it was being written; pass {flag} to '
                          'replace it')
  os.replace(tmp, path)
  _fsync(os.path.dirname(path))


def write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True,
                flag: str = '--overwrite') -> None:
  """`data` into `path` through `replacing`."""
  with replacing(path, overwrite=overwrite, flag=flag) as tmp:
    with open(tmp, 'wb') as f:
      f.write(data)


def write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True,
               flag: str = '--overwrite') -> None:
  """`text` (UTF-8) into `path` through `replacing`."""
  write_bytes(path, text.encode(), overwrite=overwrite, flag=flag)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
  """Swaps `a` and `b` (files or folders) in one step (Linux renameat2 RENAME_EXCHANGE): a folder
  replaced this way is never missing, not even for an instant. False where the system or the
  file system cannot (then nothing was moved)."""
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = libc.renameat2
  except (OSError, AttributeError):
    return False
  renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                        ctypes.c_uint]
  if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
    return True
  code = ctypes.get_errno()
  if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
    return False
  raise OSError(code, os.strerror(code), os.fspath(b))


def sha256_bytes(data: bytes) -> str:
  """The hex SHA-256 of `data`."""
  return hashlib.sha256(data).hexdigest()


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
  """The hex SHA-256 of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    while block := f.read(chunk):
      digest.update(block)
  return digest.hexdigest()
