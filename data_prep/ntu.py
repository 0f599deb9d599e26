"""NTU RGB+D 60 / 120 2D skeletons from PYSKL pickles, for action recognition (`ActionDataset`).

Source: a PYSKL pickle (`ntu60_hrnet.pkl` / `ntu120_hrnet.pkl`, or a folder holding it):
`{'split': {name: [frame_dir, ...]}, 'annotations': [{'frame_dir', 'label', 'img_shape': (h, w),
'total_frames', 'keypoint': (M, T, 17, 2) COCO-17 pixels, 'keypoint_score': (M, T, 17)}]}`.

Per sample we store the whole sequence, already as the official code prepares it before resampling:
`make_cam` (pixels -> [-1, 1] by the longer image side), `human_tracking` of the first two persons,
`coco2h36m` on x, y, and the detector score as the third channel; a single person gets a zero second
person. The official code also resamples to 243 frames at construction; we resample in the pipeline.

NTU-120 one-shot (official `train_action_1shot.py`): the 20 novel classes are labels 0, 6, ..., 114.
'oneshot_aux' = every sample of the other 100 classes (all of the file, not one split), relabelled
0..99 in increasing order of the original label. The exemplars ('oneshot_exemplar') and the clips to
classify ('oneshot_eval') come, as officially, from `ntu120_hrnet_oneshot.pkl` when it is given
(option `oneshot`, or found beside the main pickle in a source folder): its `oneshot_train` split
is the exemplars, its `oneshot_val` split the clips, both PYSKL annotations as above; their NTU
label is read from the frame_dir (`A061` is 60) and the stored `label` must be that label or its
novel index. Without that file: one exemplar per novel class of the main pickle (default: the
official NTU RGB+D 120 one-shot exemplars, `OFFICIAL_EXEMPLARS`) and every other sample of the
novel classes. One-shot labels are the novel class index 0..19; `orig_label` keeps the NTU label.
"""

from __future__ import annotations

import functools
import pathlib
import re
import types
from typing import Iterator, Mapping

import numpy as np

from mbjax.data import action_clips, skeletons, source_files, transforms
from mbjax.data.report import BuildReport

NTU60_SPLITS = ('xsub_train', 'xsub_val', 'xview_train', 'xview_val')
ONESHOT_SPLITS = ('oneshot_aux', 'oneshot_exemplar', 'oneshot_eval')
NTU120_SPLITS = ('xsub_train', 'xsub_val', 'xset_train', 'xset_val') + ONESHOT_SPLITS
VERSIONS = {'ntu60': (NTU60_SPLITS, 60), 'ntu120': (NTU120_SPLITS, 120)}

# The module itself is the ntu60 source; `module_for('ntu120')` gives the ntu120 one.
NAME = 'ntu60'
SPLITS = NTU60_SPLITS
MAX_PERSONS = 2
FEATURES = action_clips.FEATURES

NOVEL_CLASSES = tuple(range(0, 120, 6))  # NTU A001, A007, ..., A115 (0-based labels)
AUX_CLASSES = tuple(c for c in range(120) if c not in NOVEL_CLASSES)
# The official NTU RGB+D 120 one-shot protocol's exemplar (frame_dir) for each novel class.
OFFICIAL_EXEMPLARS = {
    c: f'S{1 if c < 60 else 18:03d}C003P008R001A{c + 1:03d}' for c in NOVEL_CLASSES}

SKIP_MISSING = 'frame_dir listed in the split has no annotation'
ONESHOT_FILE = 'ntu120_hrnet_oneshot.pkl'  # official data/action/: exemplars and clips to classify
ONESHOT_FILE_SPLITS = {'oneshot_exemplar': 'oneshot_train', 'oneshot_eval': 'oneshot_val'}
_NTU_ACTION = re.compile(r'A(\d{3})$')


def human_tracking(x: np.ndarray) -> np.ndarray:
  """Official `human_tracking`: swaps persons 0 and 1 over time so each stays one actor.

  At each step, if person 0 moved further from its own previous pose than from person 1's previous
  pose (sum of per-joint distances, in the untracked input), the identity parity flips.

  Args:
    x: (M, T, J, C) with M in {1, 2}.

  Returns:
    (M, T, J, C), unchanged for M == 1.
  """
  if x.shape[0] == 1:
    return x
  own_step = np.linalg.norm(x[0, 1:] - x[0, :-1], axis=-1).sum(axis=-1)  # (T-1,)
  cross_step = np.linalg.norm(x[0, 1:] - x[1, :-1], axis=-1).sum(axis=-1)
  swapped = np.cumsum(own_step > cross_step) % 2 == 1
  out = np.array(x, dtype=np.float64)
  out[0, 1:][swapped] = x[1, 1:][swapped]
  out[1, 1:][swapped] = x[0, 1:][swapped]
  return out


def sample_keypoint(keypoint: np.ndarray, score: np.ndarray, img_shape) -> np.ndarray:
  """One PYSKL sample -> the stored (2, T, 17, 3) float32 H36M-17 [x, y, score].

  Args:
    keypoint: (M, T, 17, 2) COCO-17 pixels, M >= 1; persons past the second are dropped (the
      official tracking only handles two).
    score: (M, T, 17) detector scores.
    img_shape: (h, w) of the video.
  """
  kp = np.asarray(keypoint)[:MAX_PERSONS]
  conf = np.asarray(score)[:MAX_PERSONS]
  xy = skeletons.coco_to_h36m(human_tracking(transforms.make_cam(kp, img_shape)))
  out = np.zeros((MAX_PERSONS,) + xy.shape[1:3] + (3,), np.float32)
  out[:len(kp), ..., :2] = xy
  # Official quirk kept for parity with the released action checkpoints: the score channel is the
  # raw PYSKL score, in COCO joint order and not swapped by human_tracking.
  out[:len(kp), ..., 2] = conf
  return out


def _load_pickle(path: pathlib.Path) -> dict:
  """The pickle's contents, read once per build: every split of a build reads the same file."""
  try:
    stat = path.stat()
  except OSError as e:
    raise ValueError(f'{path}: cannot read PYSKL pickle: {e}') from e
  return _load_pickle_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)  # the main pickle and the one-shot one
def _load_pickle_cached(name: str, mtime_ns: int, size: int) -> dict:
  del mtime_ns, size  # cache key only: a rewritten file is read again
  path = pathlib.Path(name)
  data = source_files.read_pickle(path, 'the PYSKL pickle (ntu60_hrnet.pkl / ntu120_hrnet.pkl)')
  if (not isinstance(data, dict) or not isinstance(data.get('split'), dict)
      or not isinstance(data.get('annotations'), list)):
    raise ValueError(f'{path}: expected a dict with "split" (dict) and "annotations" (list)')
  return data


def _pickle_path(source: pathlib.Path, version: str) -> pathlib.Path:
  source = pathlib.Path(source)
  if source.is_dir():
    path = source / f'{version}_hrnet.pkl'
    if not path.is_file():
      raise ValueError(f'{source}: expected the PYSKL pickle {path.name} in this folder')
    return path
  return source


def _check_sample(path: pathlib.Path, index: int, ann, num_classes: int) -> tuple[str, int]:
  """Validates the light fields of one annotation; returns (frame_dir, label)."""
  if not isinstance(ann, dict):
    raise ValueError(f'{path}: annotation {index}: expected a dict, got {type(ann).__name__}')
  missing = {'frame_dir', 'label', 'img_shape', 'total_frames', 'keypoint',
             'keypoint_score'} - set(ann)
  if missing:
    raise ValueError(f'{path}: annotation {index} ({ann.get("frame_dir")}): missing '
                     f'{sorted(missing)}')
  frame_dir, label = str(ann['frame_dir']), ann['label']
  if not isinstance(label, (int, np.integer)) or not 0 <= label < num_classes:
    raise ValueError(f'{path}: {frame_dir}: label must be an integer in [0, {num_classes}), '
                     f'got {label!r}')
  return frame_dir, int(label)


def _sample_arrays(path: pathlib.Path, ann: dict) -> tuple[np.ndarray, np.ndarray, tuple]:
  what = f'{path}: {ann["frame_dir"]}'
  kp = np.asarray(ann['keypoint'], dtype=np.float32)
  score = np.asarray(ann['keypoint_score'], dtype=np.float32)
  if kp.ndim != 4 or kp.shape[0] < 1 or kp.shape[1] < 1 or kp.shape[2:] != (17, 2):
    raise ValueError(f'{what}: keypoint must have shape (M, T, 17, 2), got {kp.shape}')
  if score.shape != kp.shape[:3]:
    raise ValueError(f'{what}: keypoint_score must have shape {kp.shape[:3]}, got {score.shape}')
  if int(ann['total_frames']) != kp.shape[1]:
    raise ValueError(f'{what}: total_frames is {ann["total_frames"]} but keypoint has '
                     f'{kp.shape[1]} frames')
  if not (np.all(np.isfinite(kp)) and np.all(np.isfinite(score))):
    raise ValueError(f'{what}: keypoint or keypoint_score contains NaN or Inf')
  img_shape = tuple(ann['img_shape'])
  if len(img_shape) != 2 or min(img_shape) <= 0:
    raise ValueError(f'{what}: img_shape must be (height, width) > 0, got {ann["img_shape"]!r}')
  return kp, score, img_shape


def _exemplar_dirs(path: pathlib.Path, annotations: list, exemplars: Mapping | None) -> dict:
  """frame_dir -> novel label of the 20 exemplars, checked against the file."""
  chosen = OFFICIAL_EXEMPLARS if exemplars is None else {int(k): str(v)
                                                         for k, v in exemplars.items()}
  if set(chosen) != set(NOVEL_CLASSES):
    raise ValueError(f'exemplars: expected one frame_dir for each novel label {NOVEL_CLASSES}, '
                     f'got labels {sorted(chosen)}')
  by_dir = {v: k for k, v in chosen.items()}
  found = {}
  for ann in annotations:
    if isinstance(ann, dict) and str(ann.get('frame_dir')) in by_dir:
      found[str(ann['frame_dir'])] = ann.get('label')
  for frame_dir, label in by_dir.items():
    if frame_dir not in found:
      raise ValueError(f'{path}: one-shot exemplar {frame_dir} (label {label}) not in annotations')
    if found[frame_dir] != label:
      raise ValueError(f'{path}: one-shot exemplar {frame_dir}: expected label {label}, '
                       f'got {found[frame_dir]}')
  return by_dir


def _oneshot_path(source: pathlib.Path, oneshot: str | None) -> pathlib.Path | None:
  """The one-shot pickle: the `oneshot` option, else ONESHOT_FILE in a source folder, else None."""
  if oneshot:
    path = pathlib.Path(oneshot)
    if not path.is_file():
      raise ValueError(f'option oneshot={oneshot!r}: no such file (expected the official '
                       f'{ONESHOT_FILE})')
    return path
  beside = pathlib.Path(source) / ONESHOT_FILE
  return beside if pathlib.Path(source).is_dir() and beside.is_file() else None


def _oneshot_labels(path: pathlib.Path, split: str, annotations: list) -> dict[str, tuple]:
  """frame_dir -> (NTU label, novel label) of the samples of `ONESHOT_FILE_SPLITS[split]`."""
  data = _load_pickle(path)
  name = ONESHOT_FILE_SPLITS[split]
  if name not in data['split']:
    raise ValueError(f'{path}: split {name!r} not in the one-shot pickle (it has '
                     f'{sorted(data["split"])}; official: oneshot_train, oneshot_val)')
  novel = {c: i for i, c in enumerate(NOVEL_CLASSES)}
  members, out = set(map(str, data['split'][name])), {}
  for index, ann in enumerate(annotations):
    frame_dir, stored = _check_sample(path, index, ann, 120)
    if frame_dir not in members:
      continue
    match = _NTU_ACTION.search(frame_dir)
    label = int(match.group(1)) - 1 if match else stored
    if label not in novel or stored not in (label, novel[label]):
      raise ValueError(f'{path}: {name} sample {frame_dir}: label {stored} is not a novel class '
                       f'(NTU labels {NOVEL_CLASSES} or their index 0..19) matching its name')
    out[frame_dir] = (label, novel[label])
  if members - set(out):
    raise ValueError(f'{path}: {len(members - set(out))} frame_dirs of split {name!r} have no '
                     f'annotation (e.g. {sorted(members - set(out))[0]})')
  return out


def _check_oneshot_classes(path: pathlib.Path) -> None:
  """Every class to classify has an exemplar in the one-shot pickle."""
  annotations = _load_pickle(path)['annotations']
  classes = {s: {v[1] for v in _oneshot_labels(path, s, annotations).values()}
             for s in ONESHOT_FILE_SPLITS}
  missing = sorted(classes['oneshot_eval'] - classes['oneshot_exemplar'])
  if missing:
    raise ValueError(f'{path}: oneshot_val has novel classes {missing} without a sample in '
                     'oneshot_train (their exemplar)')


def _version_name(version: str | int) -> str:
  """'ntu60' / 'ntu120' from the name or the class count (60, 120)."""
  name = f'ntu{version}' if isinstance(version, int) and not isinstance(version, bool) else version
  if name not in VERSIONS:
    raise ValueError(f'ntu: unknown version {version!r}; expected one of {tuple(VERSIONS)} '
                     '(or 60, 120)')
  return name


def generate(source: pathlib.Path, split: str, report: BuildReport, version: str | int = 'ntu60',
             exemplars: Mapping[int, str] | None = None,
             oneshot: str | None = None) -> Iterator[tuple[str, dict]]:
  """Yields (frame_dir, example) for the samples of `split`, in file order.

  Args:
    source: the PYSKL pickle, or a folder holding `<version>_hrnet.pkl` (and, for ntu120, maybe
      ONESHOT_FILE).
    split: one of `VERSIONS[version][0]`.
    report: build report; counts split entries without annotation.
    version: 'ntu60' or 'ntu120' (60 and 120 are accepted too).
    exemplars: novel label (0, 6, ..., 114) -> frame_dir for 'oneshot_exemplar' / 'oneshot_eval'
      from the main pickle; default `OFFICIAL_EXEMPLARS`. Not with a one-shot pickle.
    oneshot: the official one-shot pickle (ONESHOT_FILE) for 'oneshot_exemplar' / 'oneshot_eval'
      (module docstring); default: ONESHOT_FILE in a source folder, if there.
  """
  version = _version_name(version)
  splits, num_classes = VERSIONS[version]
  if split not in splits:
    raise ValueError(f'{version}: unknown split {split!r}; expected one of {splits}')
  oneshot_path = _oneshot_path(source, oneshot) if version == 'ntu120' else None
  if oneshot and version != 'ntu120':
    raise ValueError(f'{version}: option oneshot is for ntu120 (its one-shot splits)')
  if oneshot_path is not None and exemplars is not None:
    raise ValueError(f'options exemplars and oneshot: the one-shot pickle {oneshot_path} names '
                     'its exemplars (oneshot_train); give one of them')
  from_oneshot = oneshot_path is not None and split in ONESHOT_FILE_SPLITS
  path = oneshot_path if from_oneshot else _pickle_path(source, version)
  data = _load_pickle(path)
  annotations = data['annotations']

  if from_oneshot:
    _check_oneshot_classes(path)
    chosen = _oneshot_labels(path, split, annotations)

    def new_label(frame_dir, label):
      return chosen[frame_dir][1] if frame_dir in chosen else None
  elif split in ONESHOT_SPLITS:
    aux_label = {c: i for i, c in enumerate(AUX_CLASSES)}
    novel_label = {c: i for i, c in enumerate(NOVEL_CLASSES)}
    exemplar_dirs = {} if split == 'oneshot_aux' else _exemplar_dirs(path, annotations, exemplars)

    def new_label(frame_dir, label):
      if split == 'oneshot_aux':
        return aux_label.get(label)
      if label not in novel_label or (frame_dir in exemplar_dirs) != (split == 'oneshot_exemplar'):
        return None
      return novel_label[label]
  else:
    if split not in data['split']:
      raise ValueError(f'{path}: split {split!r} not in the pickle '
                       f'(it has {sorted(data["split"])})')
    members = set(map(str, data['split'][split]))
    present = {str(a.get('frame_dir')) for a in annotations if isinstance(a, dict)}
    if members - present:
      report.skipped(split, SKIP_MISSING, len(members - present))

    def new_label(frame_dir, label):
      return label if frame_dir in members else None

  seen = set()
  for index, ann in enumerate(annotations):
    frame_dir, label = _check_sample(path, index, ann, num_classes)
    target = new_label(frame_dir, label)
    if target is None:
      continue
    if from_oneshot:
      label = chosen[frame_dir][0]  # the NTU label, whichever the file stores
    if frame_dir in seen:
      raise ValueError(f'{path}: {frame_dir}: frame_dir appears twice in the annotations')
    seen.add(frame_dir)
    kp, score, img_shape = _sample_arrays(path, ann)
    report.written(split)
    yield frame_dir, {
        'keypoint': sample_keypoint(kp, score, img_shape),
        'label': np.int64(target),
        'orig_label': np.int64(label),
        'frame_dir': frame_dir,
        'total_frames': np.int64(kp.shape[1]),
    }


def module_for(version: str | int) -> types.SimpleNamespace:
  """A source module (NAME, SPLITS, FEATURES, generate) for 'ntu60' or 'ntu120'."""
  version = _version_name(version)
  return types.SimpleNamespace(NAME=version, SPLITS=VERSIONS[version][0], FEATURES=FEATURES,
                               generate=functools.partial(generate, version=version))
