"""Opening a dataset's published files, with errors that say which file and what is wrong.

  data = read_pickle(path, 'the H36M pickle (h36m_sh_conf_cam_source_final.pkl)')
  files = find_files(folder, ('.bvh', '.amc'), 'motion capture recordings')

Every failure is a ValueError naming the path: no such file, a folder where a file is expected
(and the reverse), an empty file, a file that is not a pickle, a truncated pickle, a pickle that
needs a module that is not installed; an empty source folder names the file types looked for.
"""

from __future__ import annotations

import os
import pathlib
import pickle
from typing import Any, Sequence

import numpy as np

# First bytes of a pickle: PROTO opcode (protocol 2+), or the opcodes protocol 0/1 start with.
_PICKLE_STARTS = (b'\x80', b'(', b']', b'}', b'c', b'I', b'F', b'S', b'V', b'N', b'l', b'd')


def check_file(path: str | os.PathLike, what: str) -> pathlib.Path:
  """`path` as a Path if it is a non-empty file; ValueError saying what it is otherwise."""
  path = pathlib.Path(path)
  if not path.exists():
    raise ValueError(f'{path}: no such file (expected {what})')
  if path.is_dir():
    raise ValueError(f'{path}: is a folder; expected {what}, a file')
  if path.stat().st_size == 0:
    raise ValueError(f'{path}: the file is empty (0 bytes); expected {what}')
  return path


def read_pickle(path: str | os.PathLike, what: str) -> Any:
  """The object pickled in `path` (`what` describes the expected file for messages)."""
  path = check_file(path, what)
  with open(path, 'rb') as f:
    head = f.read(8)
    if head[:1] not in _PICKLE_STARTS:
      raise ValueError(f'{path}: not a pickle file (starts with {head!r}); expected {what}')
    f.seek(0)
    try:
      return pickle.load(f)
    except (EOFError, pickle.UnpicklingError) as e:
      if isinstance(e, EOFError) or 'truncated' in str(e):
        raise ValueError(f'{path}: truncated pickle ({path.stat().st_size:,} bytes): the file was '
                         f'cut short; copy or download it again ({e or "ran out of input"})'
                         ) from e
      raise ValueError(f'{path}: not a readable pickle ({e}); expected {what}') from e
    except (ModuleNotFoundError, AttributeError) as e:
      raise ValueError(f'{path}: the pickle needs {e}; expected {what}') from e
    except (ValueError, TypeError, MemoryError) as e:
      raise ValueError(f'{path}: damaged pickle ({type(e).__name__}: {e}); expected {what}') from e


def find_files(folder: str | os.PathLike, suffixes: Sequence[str], what: str
               ) -> list[pathlib.Path]:
  """The files under `folder` (recursively) with one of `suffixes` (case-insensitive), sorted;
  ValueError if `folder` is not a folder or holds none."""
  folder = pathlib.Path(folder)
  if not folder.exists():
    raise ValueError(f'{folder}: no such folder (expected a folder of {what})')
  if not folder.is_dir():
    raise ValueError(f'{folder}: is a file; expected a folder of {what}')
  suffixes = tuple(s.lower() for s in suffixes)
  files = sorted(p for p in folder.rglob('*') if p.is_file() and p.suffix.lower() in suffixes)
  if not files:
    raise ValueError(f'{folder}: no {what} found (looked for {", ".join(suffixes)} files, '
                     'recursively)')
  return files


def finite_rows(what: str, array: np.ndarray) -> np.ndarray:
  """`array` checked (as is when floating, else as float64; no copy of a large float array):
  ValueError naming `what` ('<file>: train/joint_2d') and the first row with NaN or Inf, or
  saying it is not numeric."""
  values = np.asarray(array)
  if not np.issubdtype(values.dtype, np.floating):
    try:
      values = values.astype(np.float64)
    except (TypeError, ValueError) as e:
      raise ValueError(f'{what} is not numeric ({values.dtype})') from e
  finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
  if not finite.all():
    raise ValueError(f'{what} row {int(np.argmin(finite))} has NaN or Inf values')
  return values
