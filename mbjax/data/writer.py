"""Writing datasets: a dataset module's records -> ArrayRecord files via TFDS, without TensorFlow.

A dataset module (a Python module, or any object with these attributes) defines

  NAME = 'h36m'                       # the TFDS dataset name
  SPLITS = ('train', 'test')
  FEATURES = {'joint_2d': ((243, 17, 3), 'float32'), 'source': ((), 'str'), ...}
  def generate(source, split, report, **options) -> Iterator[(key, example)]

and optionally VERSION = '1.0.0' and `metadata(source, **options) -> dict` (JSON-ready fields
stored with the dataset, e.g. an action dataset's label names). FEATURES maps a name to (shape,
numpy dtype name); 'str' is a text feature and None in a shape is a variable length. `generate`
yields (unique key, dict with exactly the FEATURES keys) and calls `report.written(split)` per
record yielded and `report.skipped(split, reason)` per record it leaves out. A module whose
FEATURES depend on the build options sets OPTION_DEPENDENT_FEATURES = True and defines `module_for(**options)` returning
the NAME / SPLITS / FEATURES / generate for those options.

tfds 4.9.10 prepares `file_format='array_record'` without TensorFlow: `download_and_prepare`
encodes with its numpy example serializer and writes ArrayRecord shards. Records keep the order in
which `generate` yields them (`disable_shuffling`), so record i of a split is the i-th clip of the
official reader; training pipelines shuffle with grain. `mbjax.data.records` reads them back.

The layout is the usual TFDS one: `DATA_DIR/NAME/VERSION/{dataset_info.json, features.json,
NAME-SPLIT.array_record-XXXXX-of-YYYYY}`, plus `build_report.json` (what the build wrote and
skipped) and `metadata.json` (source path and options of the build).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import tempfile
import time
import types
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from mbjax.data import build_options
from mbjax.data.report import BuildReport

tfds.disable_progress_bar()  # builds print their own progress and report

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
  return getattr(module, '__name__', None) or f'dataset module {getattr(module, "NAME", "?")}'


def is_dataset_module(module) -> bool:
  """Whether `module` has the dataset module API (NAME, SPLITS, FEATURES, generate)."""
  return all(hasattr(module, a) for a in ('NAME', 'SPLITS', 'FEATURES', 'generate'))


def check_module(module) -> None:
  """Raises ValueError naming what `module` lacks of the dataset module API."""
  missing = [attr for attr in ('NAME', 'SPLITS', 'FEATURES', 'generate')
             if not hasattr(module, attr)]
  if missing:
    raise ValueError(f'{_module_name(module)} is not a dataset module: it lacks '
                     f'{", ".join(missing)} (see mbjax/data/writer.py for the API)')


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
  check_module(module)
  name = name or module.NAME
  options = dict(options or {})
  source = pathlib.Path(source)
  features = dict(module.FEATURES)
  report = report if report is not None else BuildReport(name)
  module_doc = module.__doc__ if isinstance(module, types.ModuleType) else None
  description = (module_doc or name).strip().splitlines()[0]
  extra = module.metadata(source, **options) if callable(getattr(module, 'metadata', None)) else {}

  def _info(self) -> tfds.core.DatasetInfo:
    return _LocalDatasetInfo(
        builder=self,
        description=description,
        features=features_dict(features),
        disable_shuffling=True,  # keep the official clip order; shuffling is grain's job
        metadata=tfds.core.MetadataDict(
            module=_module_name(module), source=str(source),
            options={k: repr(v) for k, v in sorted(options.items())}, **extra),
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
        # TFDS prints "Downloading and preparing dataset Unknown size ..." and "... downloaded and
        # prepared" for every build; nothing is downloaded, and `build` prints its own report.
        _log_download_bytes=lambda self: logging.debug('building %s in %s', name, self.data_dir),
        _log_download_done=lambda self: None,
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
# Build.


def build(module, *, source: str | pathlib.Path, data_dir: str | pathlib.Path,
          options: Mapping[str, Any] | None = None, name: str | None = None,
          progress: ProgressFn | None = None) -> BuildReport:
  """Builds dataset module `module` from `source` into `data_dir` and returns the build report.

  Args:
    module: a dataset module (see the module docstring); one with OPTION_DEPENDENT_FEATURES is
      first resolved with `module.module_for(**options)`.
    source: the raw published file or folder, passed to `generate`.
    data_dir: the TFDS data directory; the dataset goes to `data_dir/name/version`.
    options: keyword options for `generate`; unknown ones fail before anything is read.
    name: the dataset name; defaults to `module.NAME`.
    progress: see `make_builder`.

  An existing build of the same name and version in `data_dir` is replaced once the new one is
  complete. The version is the module's VERSION (default 1.0.0). The report is also saved as
  `build_report.json` next to the records.
  """
  options = dict(options or {})
  name = name or module.NAME
  check_options(module, name, options)  # before module_for, which reads them
  if getattr(module, 'OPTION_DEPENDENT_FEATURES', False):
    module = module.module_for(**options)  # FEATURES depend on options (e.g. clip_len)
  check_module(module)
  source = pathlib.Path(source)
  if not source.exists():
    raise FileNotFoundError(f'{name}: source {source} does not exist')
  version = getattr(module, 'VERSION', DEFAULT_VERSION)
  data_dir = pathlib.Path(data_dir)
  target = data_dir / name / version
  if target.exists() and any(target.iterdir()) and not (target / 'dataset_info.json').is_file():
    raise FileExistsError(f'{target} exists and is not a built dataset; not replacing it')
  data_dir.mkdir(parents=True, exist_ok=True)
  remove_stale_builds(data_dir, name)
  # Build next to the target and swap it in at the end: a failed build leaves the old one intact.
  with tempfile.TemporaryDirectory(dir=data_dir, prefix=f'.{name}-building-') as tmp:
    (pathlib.Path(tmp) / OWNER_FILE).write_text(f'{socket.gethostname()} {os.getpid()}')
    builder = make_builder(module, data_dir=tmp, source=source.resolve(), options=options,
                           version=version, name=name, progress=progress)
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


OWNER_FILE = 'owner'  # "<host> <pid>" of the build that made a `.NAME-building-*` directory
STALE_WITHOUT_OWNER_S = 3600


def _owner_alive(directory: pathlib.Path) -> bool:
  """Whether the process that is building into `directory` may still be running."""
  owner = directory / OWNER_FILE
  if not owner.is_file():  # made before owners were recorded: stale once it is an hour old
    return time.time() - directory.stat().st_mtime < STALE_WITHOUT_OWNER_S
  host, _, pid = owner.read_text().partition(' ')
  if host != socket.gethostname() or not pid.isdigit():
    return True  # another machine's build (shared filesystem): leave it
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def remove_stale_builds(data_dir: pathlib.Path, name: str) -> list[pathlib.Path]:
  """Deletes the `.NAME-building-*` directories of killed builds of `name` in `data_dir` (their
  process is gone); builds still running are left alone. Returns what it removed."""
  removed = []
  for directory in sorted(pathlib.Path(data_dir).glob(f'.{name}-building-*')):
    if directory.is_dir() and not _owner_alive(directory):
      size = sum(p.stat().st_size for p in directory.rglob('*') if p.is_file())
      shutil.rmtree(directory, ignore_errors=True)
      logging.warning('removed %s, left by an interrupted build of %s (%.1f MB)', directory,
                      name, size / 1e6)
      removed.append(directory)
  return removed


def check_options(module, name: str, options: Mapping[str, Any]) -> None:
  """Unknown options, values of the wrong type and values out of range (OPTION_RANGES) fail
  before the build starts (`build_options.OptionError`), naming the option and what is allowed."""
  build_options.check(module, name, options)
