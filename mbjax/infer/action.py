"""A trained action model on one clip: top-k label names with probabilities, and its embedding.

  classifier = action.load('runs/my_actions')        # a workdir (its config.json), or an official
  keypoint, _ = action_clips.read_clip('clip.json')  # .bin / convert dir with an action config
  action.top_k(classifier, action.log_probs(classifier, keypoint), k=5)
  action.embedding(classifier, keypoint)             # (D,) L2-normalised, for retrieval

The clip goes through the evaluators' test transform (`mbjax.evaluate.action`: evenly spaced
resampling to clip_len, crop-scale at `augment.scale_range_test`), so a prediction equals what the
evaluators score. The embedding of a `class` model is its head's hidden layer (after BatchNorm and
ReLU, 2048-d), L2-normalised; an `embed` model (one-shot) returns its own normalised output.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import ml_collections
import numpy as np

from mbjax.infer import model as model_lib


@dataclasses.dataclass
class Classifier:
  """A loaded action model and the test-time options of its config."""

  apply: Callable  # (variables, x) -> (logits or embedding, the class head's hidden layer)
  variables: dict
  version: str  # 'class' or 'embed'
  label_names: tuple[str, ...]
  clip_len: int
  scale_range: tuple[float, float]
  source: str
  model: Any = None  # the ActionNet (a backbone shared with other heads: mbjax/infer/shared.py)


def run_config(checkpoint: str) -> dict | None:
  """config.json of the run `checkpoint` is (or is in: `RUN/best`, `RUN/snapshots/N`), if any."""
  path = os.path.abspath(model_lib.checkpoint_dir(checkpoint))
  for folder in (path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
    kind, stored = model_lib.stored_config(folder)
    if kind == 'workdir':
      return stored
  return None


def resolve_config(checkpoint: str, config: ml_collections.ConfigDict | None
                   ) -> ml_collections.ConfigDict:
  """The action config of `checkpoint`: its run's config.json, else `config` (needed for an
  official .bin or a convert directory)."""
  stored = run_config(checkpoint)
  if stored is not None:
    if stored.get('task') not in ('action', 'action_oneshot'):
      raise ValueError(f'{checkpoint}: a {stored.get("task")!r} run; expected an action run')
    return ml_collections.ConfigDict(stored)
  if config is None:
    raise ValueError(f'{checkpoint}: not a trainer workdir, so its model is unknown: pass the '
                     'config it was trained with, e.g. --config=configs/action_ntu60.py:xsub')
  return config


def load(checkpoint: str, config: ml_collections.ConfigDict | None = None) -> Classifier:
  """The action model of `checkpoint` (see `resolve_config`) with its weights."""
  import jax
  from mbjax.tasks.loading import load_model
  from mbjax.tasks import action as action_task
  config = resolve_config(checkpoint, config)
  _, model, variables = load_model(config, model_lib.checkpoint_dir(checkpoint))
  head = config.model.head
  names = tuple(config.get('label_names') or ())
  if not names and head.get('version', 'class') == 'class':
    names = tuple(f'class {i}' for i in range(int(head.num_classes)))

  version = head.get('version', 'class')

  @jax.jit
  def apply(variables, x):
    if version == 'embed':
      out = model.apply(variables, x)
      return out, out
    out, state = model.apply(variables, x, capture_intermediates=lambda m, _: m.name == 'bn')
    return out, state['intermediates']['head']['bn']['__call__'][0]

  return Classifier(apply=apply, variables=variables, version=version,
                    label_names=names, clip_len=action_task.clip_len(config),
                    scale_range=tuple(config.augment.scale_range_test), source=checkpoint,
                    model=model)


def _inputs(classifier: Classifier, keypoint: np.ndarray, num_clips: int) -> list[np.ndarray]:
  """The (1, 2, clip_len, 17, 3) test inputs of clips 0..num_clips-1 of `keypoint`."""
  from mbjax.evaluate import action as action_eval
  source = [{'keypoint': np.asarray(keypoint, np.float32), 'label': np.int64(0)}]
  return [next(iter(action_eval.clip_batches(
      source, n_frames=classifier.clip_len, scale_range=classifier.scale_range, batch_size=1,
      clip=k, num_clips=num_clips)))['input'] for k in range(num_clips)]


def log_probs(classifier: Classifier, keypoint: np.ndarray, num_clips: int = 1) -> np.ndarray:
  """(K,) log of the class probabilities of a (2, T, 17, 3) clip, averaged over `num_clips`."""
  if classifier.version != 'class':
    raise ValueError(f'{classifier.source}: an embedding model (one-shot) has no classes; use '
                     '--embed')
  return mean_log_probs([classifier.apply(classifier.variables, x)[0][0]
                         for x in _inputs(classifier, keypoint, num_clips)])


def mean_log_probs(logits) -> np.ndarray:
  """(K,) log of the class probabilities of several clips' (K,) logits, averaged."""
  from scipy.special import log_softmax, logsumexp
  rows = np.stack([log_softmax(np.asarray(row, np.float64)) for row in logits])
  return logsumexp(rows, axis=0) - np.log(len(rows))


def top_k(classifier: Classifier, log_p: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
  """The `k` most probable (label name, probability), most probable first."""
  order = np.argsort(-log_p, kind='stable')[:k]
  return [(classifier.label_names[i], float(np.exp(log_p[i]))) for i in order]


def embedding(classifier: Classifier, keypoint: np.ndarray) -> np.ndarray:
  """(D,) float32 L2-normalised embedding of a (2, T, 17, 3) clip (module docstring)."""
  out, hidden = classifier.apply(classifier.variables, _inputs(classifier, keypoint, 1)[0])
  h = np.asarray(out if classifier.version == 'embed' else np.maximum(hidden, 0), np.float64)[0]
  return (h / max(np.linalg.norm(h), 1e-12)).astype(np.float32)

