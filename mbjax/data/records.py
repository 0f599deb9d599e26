"""Reading built datasets: random access to the ArrayRecord splits written by `mbjax.data.writer`.

The layout is the usual TFDS one: `DATA_DIR/NAME/VERSION/{dataset_info.json, features.json,
NAME-SPLIT.array_record-XXXXX-of-YYYYY}`, plus `build_report.json` and `metadata.json`. tfds reads
it with numpy (`builder_from_directory(...).as_data_source(split)`), without TensorFlow.
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from mbjax.data import subjects


def dataset_dir(name: str, *, data_dir: str | pathlib.Path, version: str | None = None
                ) -> pathlib.Path:
  """`data_dir/name/version` of a built dataset; the highest built version if None."""
  if not str(data_dir):  # pathlib would read '' as the current directory
    raise FileNotFoundError(f'dataset {name!r}: its data_dir is empty; set the config field '
                            'that names the folder holding the built datasets (e.g. '
                            '--config.data.data_dir=data/tfds)')
  root = pathlib.Path(data_dir) / name
  if version is None:
    built = [p for p in root.glob('*') if (p / 'dataset_info.json').is_file()]
    if not built:
      raise FileNotFoundError(f'no built dataset {name!r} under {data_dir} (expected '
                              f'{root}/VERSION/dataset_info.json; run python -m data_prep.build '
                              f'{name} --source ... --data_dir {data_dir})')
    return max(built, key=lambda p: tfds.core.Version(p.name))
  path = root / version
  if not (path / 'dataset_info.json').is_file():
    raise FileNotFoundError(f'no built dataset {name!r} version {version} at {path}')
  return path


class RecordSource:
  """Random access to one built split, usable as a grain data source.

  `len(source)`; `source[i]` -> dict with one numpy array per feature (scalars as 0-d arrays of
  their declared dtype, so batches keep it); text features come back as `bytes` (UTF-8), as TFDS
  decodes them. Picklable, so grain worker processes can use it.
  """

  def __init__(self, data_source, features: tfds.features.FeaturesDict, split: str, path: str):
    self._source = data_source
    self.split = split
    self.path = path
    self.features = features
    self._scalars = {name: np.dtype(f.np_dtype) for name, f in features.items()
                     if not isinstance(f, tfds.features.Text) and f.shape == ()}

  def __len__(self) -> int:
    return len(self._source)

  def _record(self, record: dict) -> dict:
    for name, dtype in self._scalars.items():
      record[name] = np.asarray(record[name], dtype)
    return record

  def __getitem__(self, index: int) -> dict:
    index = int(index)
    if not -len(self) <= index < len(self):
      raise IndexError(f'record {index} out of range for {self.path} {self.split} '
                       f'({len(self)} records)')
    return self._record(self._source[index % len(self)])

  def __getitems__(self, indices) -> list[dict]:
    return [self._record(r) for r in self._source.__getitems__([int(i) for i in indices])]

  def __repr__(self) -> str:
    return f'RecordSource({self.path}, split={self.split!r}, records={len(self)})'


def metadata(name: str, *, data_dir: str | pathlib.Path, version: str | None = None) -> dict:
  """The `metadata.json` of a built dataset: module, source, options and the module's own fields
  (e.g. `label_names` of an action dataset)."""
  path = dataset_dir(name, data_dir=data_dir, version=version) / 'metadata.json'
  if not path.is_file():
    return {}
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise ValueError(f'{path}: cannot read the dataset metadata: {e}') from e


def load(name: str, split: str, *, data_dir: str | pathlib.Path,
         version: str | None = None) -> RecordSource:
  """Random-access records of one split of a built dataset (see RecordSource)."""
  path = dataset_dir(name, data_dir=data_dir, version=version)
  builder = tfds.builder_from_directory(str(path))
  if split not in builder.info.splits:
    raise ValueError(f'{path} has no split {split!r} (splits: {", ".join(builder.info.splits)}); '
                     f'see {path / "build_report.json"}')
  return RecordSource(builder.as_data_source(split), builder.info.features, split, str(path))


def load_spec(spec, data_dir: str | pathlib.Path):
  """The records a config entry names: `dict(name=..., split='train', data_dir=None)`, its own
  `data_dir` or else the config's.

  `fraction=0.25` keeps the first quarter of the (subject-filtered) records (`first_fraction`).
  `subjects=('S8',)` keeps only the clips of those Human3.6M subjects, `exclude_subjects=('S8',)`
  drops them (records with an H36M `source` field; see `mbjax.data.subjects`).
  """
  source = load(spec['name'], spec.get('split', 'train'), data_dir=spec.get('data_dir') or data_dir)
  source = subjects.filter_subjects(source, subjects=spec.get('subjects') or (),
                                    exclude_subjects=spec.get('exclude_subjects') or ())
  return first_fraction(source, spec.get('fraction', 1.0))


def first_fraction(source, fraction: float):
  """The first ceil(fraction x n) records of `source` (all of them for 1.0): a data-scaling axis.

  Builders store the clips of one recording together, so a smaller fraction holds fewer
  recordings rather than a thinner sample of the same ones.
  """
  fraction = float(fraction)
  if not 0.0 < fraction <= 1.0:
    raise ValueError(f'{source!r}: fraction={fraction} must be in (0, 1]')
  if fraction == 1.0:
    return source
  kept = max(1, math.ceil(fraction * len(source)))
  return subjects.SubsetSource(source, np.arange(kept), f'fraction={fraction:g}')
