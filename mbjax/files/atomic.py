"""Atomic replacement of output files.

  with atomic.replacing('model.hlo', overwrite=flag) as tmp:   # tmp: a path beside model.hlo
    write_everything_to(tmp)
  # model.hlo is now the new file, or (after any error) still the old one

`check_new(path, overwrite)` refuses an existing output up front, before any work is done.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from typing import Iterator


def check_new(path: str | os.PathLike, overwrite: bool, *, flag: str = '--overwrite') -> None:
  """FileExistsError naming `path` when it exists and `overwrite` is off."""
  path = os.fspath(path)
  if os.path.lexists(path) and not overwrite:
    raise FileExistsError(f'{path} exists; pass {flag} to replace it')


def temporary_name(path: str | os.PathLike) -> str:
  """A fresh hidden name in the folder of `path` (same file system: the rename is atomic)."""
  directory, name = os.path.split(os.path.abspath(os.fspath(path)))
  return os.path.join(directory, f'.{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}')


def _fsync(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  except OSError:  # some file systems refuse fsync of a folder
    pass
  finally:
    os.close(fd)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, *, overwrite: bool = True,
              flag: str = '--overwrite') -> Iterator[str]:
  """Yields a temporary path beside `path`; on a clean exit the file written there is synced and
  renamed onto `path`, on an error it is removed and `path` is left as it was. With
  `overwrite=False` an existing `path` is refused (FileExistsError) before anything is written."""
  path = os.path.abspath(os.fspath(path))
  check_new(path, overwrite, flag=flag)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = temporary_name(path)
  try:
    yield tmp
    if os.path.isfile(tmp):
      _fsync(tmp)
    if not overwrite and os.path.lexists(path):  # another process wrote it meanwhile
      raise FileExistsError(f'{path} appeared while it was being written; pass {flag} to '
                            'replace it')
    os.replace(tmp, path)
    _fsync(os.path.dirname(path))
  finally:
    if os.path.lexists(tmp):
      os.remove(tmp)


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


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
  """The hex SHA-256 of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    while block := f.read(chunk):
      digest.update(block)
  return digest.hexdigest()
