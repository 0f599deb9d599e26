"""TFDS builders for the `data_prep` dataset modules: raw published files -> ArrayRecord, no TF.

A dataset module `data_prep/<name>.py` defines

  NAME = 'h36m'                       # the TFDS dataset name
  SPLITS = ('train', 'test')
  FEATURES = {'joint_2d': ((243, 17, 3), 'float32'), 'source': ((), 'str'), ...}
  def generate(source, split, report, **options) -> Iterator[(key, example)]

and optionally VERSION = '1.0.0'. FEATURES maps a name to (shape, numpy dtype name); 'str' is a
text feature and None in a shape is a variable length. `generate` yields (unique key, dict with
exactly the FEATURES keys) and calls `report.written(split)` per record yielded and
`report.skipped(split, reason)` per record it leaves out. A module that builds several datasets
is listed in ALIASES (ntu60 / ntu120 -> ntu with option version) and may define
`module_for(**options)` returning the NAME / SPLITS / FEATURES / generate of one of them.

tfds 4.9.10 prepares `file_format='array_record'` without TensorFlow: `download_and_prepare`
encodes with its numpy example serializer and writes ArrayRecord shards, and
`builder_from_directory(...).as_data_source(split)` decodes with numpy. Records keep the order in
which `generate` yields them (`disable_shuffling`), so record i of a split is the i-th clip of the
official reader; training pipelines shuffle with grain.

The layout is the usual TFDS one: `DATA_DIR/NAME/VERSION/{dataset_info.json, features.json,
NAME-SPLIT.array_record-XXXXX-of-YYYYY}`, plus `build_report.json` (what the build wrote and
skipped) and `metadata.json` (source path and options of the build).
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import pkgutil
import shutil
import tempfile
import time
import types
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import tensorflow_datasets as tfds

tfds.disable_progress_bar()  # builds print their own progress and report

import data_prep
from data_prep.report import BuildReport

# Datasets built from one module with different options: name -> (module, options).
ALIASES = {
    'ntu60': ('ntu', {'version': 60}),
    'ntu120': ('ntu', {'version': 120}),
}
_NOT_DATASETS = frozenset({'build', 'builder', 'report'})
DEFAULT_VERSION = '1.0.0'
# Arrays stored as raw bytes: ~40x faster to serialize than tf.train.Example float lists, same size.
_ARRAY_ENCODING = tfds.features.Encoding.BYTES

ProgressFn = Callable[[str, int, float, bool], None]  # (split, records so far, seconds, split done)


# ----------------------------------------------------------------------------------------------
# Features.


def feature_connector(shape: tuple, dtype: str) -> tfds.features.FeatureConnector:
  """The TFDS feature for one FEATURES entry: Text for 'str', Scalar for (), else Tensor."""
  if dtype == 'str':
    if tuple(shape) != ():
      raise ValueError(f"text features must be scalars, got shape {shape} with dtype 'str'")
    return tfds.features.Text()
  np_dtype = np.dtype(dtype)
  if tuple(shape) == ():
    return tfds.features.Scalar(dtype=np_dtype)
  return tfds.features.Tensor(shape=tuple(shape), dtype=np_dtype, encoding=_ARRAY_ENCODING)


def features_dict(features: Mapping[str, tuple[tuple, str]]) -> tfds.features.FeaturesDict:
  """FEATURES of a dataset module -> `tfds.features.FeaturesDict`."""
  return tfds.features.FeaturesDict(
      {name: feature_connector(shape, dtype) for name, (shape, dtype) in features.items()})


def _conform(dataset: str, split: str, key: str, example: Mapping[str, Any],
             features: Mapping[str, tuple[tuple, str]]) -> dict:
  """Checks an example against FEATURES; casts arrays to the declared dtype (same kind only)."""
  if set(example) != set(features):
    missing = sorted(set(features) - set(example))
    extra = sorted(set(example) - set(features))
    raise ValueError(f'{dataset} {split} record {key!r}: features do not match FEATURES '
                     f'(missing {missing}, unexpected {extra})')
  out = {}
  for name, (shape, dtype) in features.items():
    value = example[name]
    if dtype == 'str':
      if not isinstance(value, (str, bytes, np.str_, np.bytes_)):
        raise ValueError(f'{dataset} {split} record {key!r}: feature {name!r} must be a string, '
                         f'got {type(value).__name__}')
      out[name] = value
      continue
    array = np.asarray(value)
    if array.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(array.shape, shape)):
      raise ValueError(f'{dataset} {split} record {key!r}: feature {name!r} has shape '
                       f'{array.shape}, expected {tuple(shape)}')
    if not np.can_cast(array.dtype, dtype, casting='same_kind'):
      raise ValueError(f'{dataset} {split} record {key!r}: feature {name!r} has dtype '
                       f'{array.dtype}, expected {dtype}')
    out[name] = array.astype(dtype, copy=False)
  return out


# ----------------------------------------------------------------------------------------------
# Builder.


class _LocalDatasetInfo(tfds.core.DatasetInfo):
  """DatasetInfo of a locally built dataset: there is no pre-computed info on TFDS's bucket."""

  def initialize_from_bucket(self) -> None:
    # tfds would make (and leave behind) an empty temp dir before finding GCS disabled.
    return


def _module_name(module) -> str:
  return getattr(module, '__name__', None) or f'data_prep dataset {getattr(module, "NAME", "?")}'


def _check_module(module) -> None:
  missing = [attr for attr in ('NAME', 'SPLITS', 'FEATURES', 'generate')
             if not hasattr(module, attr)]
  if missing:
    raise ValueError(f'{_module_name(module)} is not a dataset module: it lacks '
                     f'{", ".join(missing)} (see data_prep/builder.py for the API)')


def make_builder(module, *, data_dir: str | pathlib.Path,
                 source: str | pathlib.Path, options: Mapping[str, Any] | None = None,
                 version: str = DEFAULT_VERSION, name: str | None = None,
                 report: BuildReport | None = None,
                 progress: ProgressFn | None = None) -> tfds.core.GeneratorBasedBuilder:
  """A `GeneratorBasedBuilder` for a dataset module, writing ArrayRecord under `data_dir`.

  Args:
    module: a dataset module (NAME, SPLITS, FEATURES, generate), or any object with those.
    data_dir: the TFDS data directory (the dataset goes to `data_dir/name/version`).
    source: the raw published file or folder, passed to `module.generate`.
    options: keyword options for `module.generate`.
    version: the dataset version.
    name: the dataset name; defaults to `module.NAME` (aliases such as ntu60 pass their own).
    report: where `generate` counts written / skipped records; a fresh one if None. It is
      `builder.report` either way.
    progress: called as progress(split, records, seconds, done) about every 2 s and when a
      split is done.

  Returns:
    The builder; call `download_and_prepare(file_format='array_record')` (or use `build`).
    Splits for which `generate` yields nothing are left out of the dataset (TFDS cannot write an
    empty split); the build report still lists their skipped records.
  """
  _check_module(module)
  name = name or module.NAME
  options = dict(options or {})
  source = pathlib.Path(source)
  features = dict(module.FEATURES)
  report = report if report is not None else BuildReport(name)
  module_doc = module.__doc__ if isinstance(module, types.ModuleType) else None
  description = (module_doc or name).strip().splitlines()[0]

  def _info(self) -> tfds.core.DatasetInfo:
    return _LocalDatasetInfo(
        builder=self,
        description=description,
        features=features_dict(features),
        disable_shuffling=True,  # keep the official clip order; shuffling is grain's job
        metadata=tfds.core.MetadataDict(
            module=_module_name(module), source=str(source),
            options={k: repr(v) for k, v in sorted(options.items())}),
    )

  def _split_generators(self, dl_manager) -> dict:
    del dl_manager  # sources are local files, nothing to download
    generators = {}
    for split in module.SPLITS:
      records = self._generate_examples(split)
      first = next(records, None)  # TFDS cannot write an empty split: peek, then leave it out
      if first is not None:
        generators[split] = _with_progress(split, first, records, progress)
    if not generators:
      raise ValueError(f'{name}: {source} gave no records for any split {tuple(module.SPLITS)}\n'
                       f'{report}')
    return generators

  def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
    before = report.written_counts[split]
    count = 0
    for key, example in module.generate(source, split, report, **options):
      yield key, _conform(name, split, key, example, features)
      count += 1
    reported = report.written_counts[split] - before
    if reported != count:
      raise RuntimeError(f'{_module_name(module)}.generate yielded {count} {split} records but '
                         f'reported {reported} to report.written()')

  def _body(namespace: dict) -> None:
    namespace.update(
        __module__=getattr(module, '__name__', __name__),
        __doc__=module_doc,
        name=name,
        # tfds looks for checksums next to the builder's code; finding that path for a dotted
        # module needs importlib_resources (not installed), and we download nothing anyway.
        code_path=tfds.core.utils.classproperty(classmethod(lambda cls: None)),
        VERSION=tfds.core.Version(version),
        _info=_info,
        _split_generators=_split_generators,
        _generate_examples=_generate_examples,
    )

  # skip_registration: builders are made per build and read back from their directory.
  cls = types.new_class(f'{name}_builder', (tfds.core.GeneratorBasedBuilder,),
                        {'skip_registration': True}, _body)
  builder = cls(data_dir=str(data_dir), file_format='array_record')
  builder.report = report
  return builder


def _with_progress(split: str, first, rest: Iterator, progress: ProgressFn | None) -> Iterator:
  """Yields `first` then `rest`, timing from when TFDS starts writing the split."""
  start = last = time.perf_counter()
  yield first
  count = 1
  for item in rest:
    yield item
    count += 1
    now = time.perf_counter()
    if progress is not None and now - last >= 2.0:
      progress(split, count, now - start, False)
      last = now
  if progress is not None:
    progress(split, count, time.perf_counter() - start, True)


# ----------------------------------------------------------------------------------------------
# Dataset names.


def _is_dataset(module) -> bool:
  return all(hasattr(module, a) for a in ('NAME', 'SPLITS', 'FEATURES', 'generate'))


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
    if module is None or not _is_dataset(module):
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
  if module is None or not _is_dataset(module) or (name not in ALIASES and module.NAME != name):
    found = _dataset_modules().get(name)  # a module whose NAME differs from its file name
    if found is None:
      raise ValueError(f'unknown dataset {name!r}; available datasets: '
                       f'{", ".join(available_datasets())}')
    module_name, options = found
    module = _import(module_name)
  if name in ALIASES and hasattr(module, 'module_for'):
    module = module.module_for(**options)
    _check_module(module)
  return module, (name if name in ALIASES else module.NAME), dict(options)


# ----------------------------------------------------------------------------------------------
# Build and load.


def build(name: str, *, source: str | pathlib.Path, data_dir: str | pathlib.Path,
          options: Mapping[str, Any] | None = None,
          progress: ProgressFn | None = None) -> BuildReport:
  """Builds dataset `name` from `source` into `data_dir` and returns the build report.

  An existing build of the same name and version in `data_dir` is replaced once the new one is
  complete. The version is the module's VERSION (default 1.0.0). The report is also saved as
  `build_report.json` next to the records.
  """
  module, builder_name, implied = resolve(name)
  source = pathlib.Path(source)
  if not source.exists():
    raise FileNotFoundError(f'{builder_name}: source {source} does not exist')
  options = {**implied, **(options or {})}
  if name not in ALIASES and getattr(module, 'OPTION_DEPENDENT_FEATURES', False):
    module = module.module_for(**options)  # FEATURES depend on options (e.g. clip_len)
    _check_module(module)
  _check_options(module, builder_name, options)
  version = getattr(module, 'VERSION', DEFAULT_VERSION)
  data_dir = pathlib.Path(data_dir)
  target = data_dir / builder_name / version
  if target.exists() and any(target.iterdir()) and not (target / 'dataset_info.json').is_file():
    raise FileExistsError(f'{target} exists and is not a built dataset; not replacing it')
  data_dir.mkdir(parents=True, exist_ok=True)
  # Build next to the target and swap it in at the end: a failed build leaves the old one intact.
  with tempfile.TemporaryDirectory(dir=data_dir, prefix=f'.{builder_name}-building-') as tmp:
    builder = make_builder(module, data_dir=tmp, source=source.resolve(), options=options,
                           version=version, name=builder_name, progress=progress)
    builder.download_and_prepare(
        download_dir=pathlib.Path(tmp) / 'downloads',  # nothing is downloaded
        download_config=tfds.download.DownloadConfig(try_download_gcs=False),
        file_format='array_record')
    built = pathlib.Path(builder.data_dir)
    (built / 'build_report.json').write_text(builder.report.to_json())
    if target.exists():
      shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    built.rename(target)
  return builder.report


def _check_options(module, name: str, options: Mapping[str, Any]) -> None:
  """Unknown options fail before the build starts, naming those `generate` accepts."""
  signature = inspect.signature(module.generate)
  try:
    signature.bind(None, None, None, **options)
  except TypeError as e:
    accepted = [p.name for p in list(signature.parameters.values())[3:]
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    raise ValueError(f'{name}: bad options {sorted(options)} ({e}); {_module_name(module)}'
                     f'.generate accepts: {", ".join(accepted) or "none"}') from e


def dataset_dir(name: str, *, data_dir: str | pathlib.Path, version: str | None = None
                ) -> pathlib.Path:
  """`data_dir/name/version` of a built dataset; the highest built version if None."""
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


def load(name: str, split: str, *, data_dir: str | pathlib.Path,
         version: str | None = None) -> RecordSource:
  """Random-access records of one split of a built dataset (see RecordSource)."""
  path = dataset_dir(name, data_dir=data_dir, version=version)
  builder = tfds.builder_from_directory(str(path))
  if split not in builder.info.splits:
    raise ValueError(f'{path} has no split {split!r} (splits: {", ".join(builder.info.splits)}); '
                     f'see {path / "build_report.json"}')
  return RecordSource(builder.as_data_source(split), builder.info.features, split, str(path))


# ----------------------------------------------------------------------------------------------
# Clips (official `split_clips` / `resample` of lib/utils/utils_data.py), shared by the modules.


def resample_indices(length: int, target: int, rng: np.random.Generator) -> np.ndarray:
  """Official `resample(length, target, randomness=True)`: `target` frame indices into `length`.

  Shorter sequences repeat frames: each of `target` evenly spaced positions is floored or ceiled
  at random, then sorted. Longer ones take one random frame in each of `target` equal intervals.

  Returns:
    (target,) int64 indices in [0, length - 1].
  """
  even = np.linspace(0, length, num=target, endpoint=False)
  if length < target:
    floor = rng.integers(2, size=target).astype(bool)
    result = np.sort(np.where(floor, np.floor(even), np.ceil(even)))
  else:
    result = even + rng.random(target) * (length / target)
  # Seeded generator where the official code uses the global numpy RNG: builds are reproducible.
  return np.clip(result, 0, length - 1).astype(np.int64)


def split_clips(sources: np.ndarray, clip_len: int, stride: int,
                rng: np.random.Generator) -> list[np.ndarray]:
  """Official `split_clips`: clips of `clip_len` frames over per-frame sequence ids.

  Each run of equal ids gets windows starting at its first frame, every `stride` frames, as long as
  the window fits (a tail that does not fill one is dropped). A run with no window whose id has no
  clip yet is resampled to `clip_len` frames, except the last run of the file: the official loop
  stops before that check, so a short last sequence gives no clip.

  Args:
    sources: (N,) sequence id of each frame (strings or ints).
    clip_len: frames per clip.
    stride: frames between window starts.
    rng: draws the resampling of short sequences.

  Returns:
    One (clip_len,) int64 array of frame indices into `sources` per clip, in official order.
  """
  sources = np.asarray(sources)
  if len(sources) == 0:
    return []
  starts = np.concatenate([[0], np.flatnonzero(sources[1:] != sources[:-1]) + 1])
  ends = np.append(starts[1:], len(sources))
  clips, saved = [], set()
  for run, (begin, end) in enumerate(zip(starts.tolist(), ends.tolist())):
    windows = range(begin, end - clip_len + 1, stride)
    clips.extend(np.arange(st, st + clip_len, dtype=np.int64) for st in windows)
    sequence = np.asarray(sources[begin]).item()
    if windows:
      saved.add(sequence)
    elif run < len(starts) - 1 and sequence not in saved:
      clips.append(begin + resample_indices(end - begin, clip_len, rng))
      saved.add(sequence)
  return clips
