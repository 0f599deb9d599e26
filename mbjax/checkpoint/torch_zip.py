"""Read and write `torch.save` files (the zip format of torch >= 1.6) without PyTorch.

A `torch.save` file is a zip archive `<name>/data.pkl` + `<name>/data/<key>` (one raw little-endian
buffer per storage) + `<name>/version`. The pickle rebuilds tensors through
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`, where `storage` is a
persistent id `('storage', torch.FloatStorage, key, location, numel)`. We map those to numpy.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
import zlib
from typing import Any

import numpy as np

from mbjax.files import atomic

# torch storage class name <-> numpy dtype.
_STORAGE_DTYPES = {
    'FloatStorage': np.float32,
    'DoubleStorage': np.float64,
    'HalfStorage': np.float16,
    'LongStorage': np.int64,
    'IntStorage': np.int32,
    'ShortStorage': np.int16,
    'CharStorage': np.int8,
    'ByteStorage': np.uint8,
    'BoolStorage': np.bool_,
}
_DTYPE_STORAGES = {np.dtype(v): k for k, v in _STORAGE_DTYPES.items()}


class TorchFormatError(ValueError):
  pass


class _StorageType:

  def __init__(self, name: str):
    self.name = name
    if name == 'BFloat16Storage':
      import ml_dtypes  # a jax dependency
      self.dtype = np.dtype(ml_dtypes.bfloat16)
    elif name in _STORAGE_DTYPES:
      self.dtype = np.dtype(_STORAGE_DTYPES[name])
    else:
      raise TorchFormatError(f'unsupported torch storage type torch.{name}')


def _rebuild_tensor(storage, offset, size, stride, *unused):
  if not size:
    return storage[offset:offset + 1].reshape(()).copy()
  itemsize = storage.dtype.itemsize
  return np.lib.stride_tricks.as_strided(
      storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)).copy()


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
  return data


class _Unpickler(pickle.Unpickler):

  def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path: str):
    super().__init__(file)
    self._archive, self._prefix, self._path = archive, prefix, path
    self._storages: dict[str, np.ndarray] = {}
    self.reading: str | None = None  # the archive member being read, for error messages

  def find_class(self, module, name):
    if module == 'torch._utils' and name == '_rebuild_tensor_v2':
      return _rebuild_tensor
    if module == 'torch._utils' and name == '_rebuild_parameter':
      return _rebuild_parameter
    if module == 'torch' and name.endswith('Storage'):
      return _StorageType(name)
    if module == 'collections' and name == 'OrderedDict':
      return collections.OrderedDict
    if module in ('builtins', '__builtin__') and name in ('set', 'frozenset', 'slice'):
      return getattr(__import__('builtins'), name)
    if module == 'numpy.core.multiarray' or module.startswith('numpy'):
      return super().find_class(module, name)
    raise TorchFormatError(f'{self._path}: the checkpoint pickles {module}.{name}, which a plain '
                           'state-dict loader does not rebuild')

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
      raise TorchFormatError(f'{self._path}: unexpected persistent id {pid!r}')
    _, storage_type, key, _location, numel = pid
    if key not in self._storages:
      name = f'{self._prefix}data/{key}'
      self.reading = name
      try:
        raw = self._archive.read(name)
      except KeyError:
        raise TorchFormatError(f'{self._path}: storage {name} is missing from the archive') from None
      self._storages[key] = np.frombuffer(raw, dtype=storage_type.dtype.newbyteorder('<'))
      if self._storages[key].size != numel:
        raise TorchFormatError(f'{self._path}: storage {key} holds {self._storages[key].size} '
                               f'elements, expected {numel}')
    return self._storages[key]


_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTOCOLS = (b'\x80\x02', b'\x80\x03', b'\x80\x04', b'\x80\x05')


def _check_readable(path: str) -> None:
  """Raises TorchFormatError saying why `path` is not a readable torch.save zip file."""
  if not os.path.exists(path):
    raise TorchFormatError(f'{path}: no such file')
  if os.path.isdir(path):
    raise TorchFormatError(f'{path}: is a folder, expected a torch.save file (.bin / .pth)')
  size = os.path.getsize(path)
  if size == 0:
    raise TorchFormatError(f'{path}: the file is empty (0 bytes)')
  if zipfile.is_zipfile(path):
    return
  with open(path, 'rb') as f:
    head = f.read(4)
  if head == _ZIP_MAGIC:
    raise TorchFormatError(f'{path}: truncated: a zip archive without its end ({size:,} bytes); '
                           'the download or copy was cut short, fetch it again')
  if head[:2] in _PICKLE_PROTOCOLS:
    raise TorchFormatError(f'{path}: a legacy (pre-1.6) torch.save file, which is not supported; '
                           're-save it with torch>=1.6 (torch.save(torch.load(f), f))')
  raise TorchFormatError(f'{path}: not a torch.save file (starts with bytes {head!r}; a torch.save '
                         'file is a zip archive)')


def load(path: str | os.PathLike) -> Any:
  """The object a `torch.save` file holds, with every tensor as a numpy array.

  Raises TorchFormatError naming the path and what is wrong: no such file, a folder, empty,
  truncated, legacy format, not a torch file, or a damaged member (bad CRC) of the archive.
  """
  path = os.fspath(path)
  _check_readable(path)
  member = unpickler = None
  try:
    with zipfile.ZipFile(path) as archive:
      pkl = [n for n in archive.namelist() if n.endswith('data.pkl')]
      if len(pkl) != 1:
        raise TorchFormatError(f'{path}: expected one data.pkl in the archive, found {pkl}')
      prefix = pkl[0][:-len('data.pkl')]
      byteorder = f'{prefix}byteorder'
      if byteorder in archive.namelist() and archive.read(byteorder).strip() != b'little':
        raise TorchFormatError(f'{path}: big-endian checkpoints are not supported')
      member = pkl[0]
      data = archive.read(member)
      unpickler = _Unpickler(io.BytesIO(data), archive, prefix, path)
      try:
        return unpickler.load()
      except (pickle.UnpicklingError, EOFError) as e:
        raise TorchFormatError(f'{path}: member {member} is not a readable pickle ({e})') from e
  except (zipfile.BadZipFile, zlib.error, EOFError) as e:  # e.g. "Bad CRC-32 for file ..."
    reading = (unpickler and unpickler.reading) or member
    where = f' (reading member {reading})' if reading else ''
    raise TorchFormatError(f'{path}: damaged archive{where}: {e}') from e


class _Global:
  """A stand-in that pickles as a reference to a torch global, without importing torch."""

  def __init__(self, module: str, name: str):
    self.module, self.name = module, name

  def __call__(self, *args):  # pickle's save_reduce requires a callable
    raise TypeError(f'{self.module}.{self.name} is a pickling stand-in')


_REBUILD_TENSOR = _Global('torch._utils', '_rebuild_tensor_v2')


class _Pickler(pickle._Pickler):  # the pure-Python pickler lets us emit globals by hand

  def __init__(self, file):
    super().__init__(file, protocol=2)
    self.storages: list[np.ndarray] = []

  def save(self, obj, save_persistent_id=True):
    if isinstance(obj, _Global):  # emit a GLOBAL opcode for a torch name without importing torch
      memo = self.memo.get(id(obj))
      if memo is not None:
        self.write(self.get(memo[0]))
        return
      self.write(pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode())
      self.memoize(obj)
      return
    super().save(obj, save_persistent_id)

  def reducer_override(self, obj):
    if isinstance(obj, np.generic):
      obj = np.asarray(obj)
    if isinstance(obj, np.ndarray):
      arr = np.asarray(obj, order="C")  # ascontiguousarray would make 0-d arrays 1-d
      if arr.dtype not in _DTYPE_STORAGES:
        raise TorchFormatError(f'cannot save dtype {arr.dtype} as a torch tensor')
      key = str(len(self.storages))
      self.storages.append(arr)
      storage = ('storage', _Global('torch', _DTYPE_STORAGES[arr.dtype]), key, 'cpu', arr.size)
      stride = tuple(int(np.prod(arr.shape[i + 1:])) for i in range(arr.ndim))
      return _REBUILD_TENSOR, (_PersistentStorage(storage), 0, tuple(arr.shape), stride, False,
                               collections.OrderedDict())
    return NotImplemented

  def persistent_id(self, obj):
    return obj.pid if isinstance(obj, _PersistentStorage) else None


class _PersistentStorage:

  def __init__(self, pid):
    self.pid = pid


def save(obj: Any, path: str | os.PathLike) -> None:
  """Write `obj` (dicts, lists, scalars, numpy arrays as tensors) as a `torch.save` zip file
  that `torch.load(path, weights_only=True)` reads; under a temporary name renamed into place,
  so that a kill leaves the old file or the new one (mbjax.files.atomic)."""
  path = os.fspath(path)
  buf = io.BytesIO()
  pickler = _Pickler(buf)
  pickler.dump(obj)
  name = os.path.splitext(os.path.basename(path))[0] or 'archive'
  with atomic.replacing(path) as tmp:
    _write_archive(tmp, name, buf.getvalue(), pickler.storages)


def _write_archive(path: str, name: str, pickled: bytes, storages: list) -> None:
  with zipfile.ZipFile(path, 'w', compression=zipfile.ZIP_STORED) as archive:
    archive.writestr(f'{name}/data.pkl', pickled)
    archive.writestr(f'{name}/byteorder', 'little')
    for key, arr in enumerate(storages):
      archive.writestr(f'{name}/data/{key}', arr.astype(arr.dtype.newbyteorder('<')).tobytes())
    archive.writestr(f'{name}/version', '3\n')
