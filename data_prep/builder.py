"""The dataset registry of `data_prep`: dataset names -> dataset modules, and `build(name)`.

A dataset module `data_prep/<name>.py` has the API of `mbjax.data.writer` (NAME, SPLITS,
FEATURES, generate); `mbjax.data.writer` turns it into ArrayRecord files and `mbjax.data.records`
reads them back. A module that builds several datasets is listed in ALIASES (ntu60 / ntu120 ->
ntu with option version) and may define `module_for(**options)` returning the NAME / SPLITS /
FEATURES / generate of one of them.
"""

from __future__ import annotations

import importlib
import pathlib
import pkgutil
import types
from typing import Any, Mapping

import data_prep
from mbjax.data import writer
from mbjax.data.report import BuildReport

# Datasets built from one module with different options: name -> (module, options).
ALIASES = {
    'ntu60': ('ntu', {'version': 60}),
    'ntu120': ('ntu', {'version': 120}),
    'mesh_h36m': ('mesh', {'dataset': 'h36m'}),
    'mesh_pw3d': ('mesh', {'dataset': 'pw3d'}),
    'mesh_coco': ('mesh', {'dataset': 'coco'}),
}
_NOT_DATASETS = frozenset({'build', 'builder'})


def _import(module_name: str) -> types.ModuleType | None:
  """`data_prep.<module_name>`, or None if there is no such module."""
  try:
    return importlib.import_module(f'data_prep.{module_name}')
  except ModuleNotFoundError as e:
    if e.name != f'data_prep.{module_name}':
      raise  # the module exists but one of its imports is missing: show that
    return None


def _dataset_modules() -> dict[str, tuple[str, dict]]:
  """Every buildable name -> (module of data_prep, options implied by the name)."""
  names = {}
  for info in pkgutil.iter_modules(data_prep.__path__):
    if info.name in _NOT_DATASETS or info.name.startswith('_'):
      continue
    module = _import(info.name)
    if module is None or not writer.is_dataset_module(module):
      continue
    aliases = {alias: (m, opts) for alias, (m, opts) in ALIASES.items() if m == info.name}
    names.update(aliases or {module.NAME: (info.name, {})})
  return names


def available_datasets() -> list[str]:
  """Names `build` accepts: NAME of each dataset module of `data_prep`, with ALIASES instead
  for the modules they cover."""
  return sorted(_dataset_modules())


def resolve(name: str) -> tuple[object, str, dict]:
  """Dataset name -> (dataset module, builder name, options implied by the name).

  A module that builds several datasets (ALIASES) may define `module_for(**options)` returning
  the NAME / SPLITS / FEATURES / generate of one of them (ntu: NTU60 and NTU120 splits differ).
  """
  if name in ALIASES:
    module_name, options = ALIASES[name]
  else:
    module_name, options = name, {}
  module = _import(module_name) if module_name.isidentifier() else None
  if (module is None or not writer.is_dataset_module(module)
      or (name not in ALIASES and module.NAME != name)):
    found = _dataset_modules().get(name)  # a module whose NAME differs from its file name
    if found is None:
      raise ValueError(f'unknown dataset {name!r}; available datasets: '
                       f'{", ".join(available_datasets())}')
    module_name, options = found
    module = _import(module_name)
  if name in ALIASES and hasattr(module, 'module_for'):
    module = module.module_for(**options)
    writer.check_module(module)
  return module, (name if name in ALIASES else module.NAME), dict(options)


def build(name: str, *, source: str | pathlib.Path, data_dir: str | pathlib.Path,
          options: Mapping[str, Any] | None = None,
          progress: writer.ProgressFn | None = None) -> BuildReport:
  """Builds dataset `name` from `source` into `data_dir` (see `mbjax.data.writer.build`)."""
  module, builder_name, implied = resolve(name)
  return writer.build(module, source=source, data_dir=data_dir, name=builder_name,
                      options={**implied, **(options or {})}, progress=progress)
