"""Action recognition evaluation: top-1 / top-5 and mean class accuracy on NTU RGB+D.

  python -m mbjax.evaluate --config=configs/action_ntu60.py:xsub --checkpoint=best_epoch.bin

As the official `validate` of train_action.py: every clip of the split through the official test
transform (evenly spaced resampling to `clip_len`, no random_move, crop-scale [2, 2]), the model
in eval mode (BatchNorm running statistics, no dropout), accuracy over all clips in %. Options:
- `num_clips` N > 1: multi-clip testing as pyskl does it (the softmax probabilities of N clips
  averaged); clip k resamples at the evenly spaced positions moved by k / N of their spacing, so
  clip 0 is the official one (pyskl draws the offsets at random with a fixed seed; ours are
  evenly spread, and need no seed);
- `part='val'`: only the seeded validation slice of a training split (`config.data.val_fraction`),
  the records the trainer leaves out; the best checkpoint is selected on it (`val/top1_error`).
Results also hold the confusion matrix (rows: true class, columns: predicted);
`save_confusion_png` draws it (the evaluate CLI writes `confusion_<name>.png` beside eval.json).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Sequence

import jax
import numpy as np
from scipy.special import log_softmax

from mbjax.data import finetune


def clip_batches(source, *, n_frames: int, scale_range: Sequence[float], batch_size: int,
                 clip: int = 0, num_clips: int = 1) -> finetune.EvalBatches:
  """Clip `clip` of `num_clips` of every record, in fixed-size batches (`finetune.eval_batches`)."""
  if not 0 <= clip < num_clips:
    raise ValueError(f'clip_batches: clip {clip} outside the {num_clips} clips')
  make = functools.partial(finetune.action_example, n_frames=n_frames, train=False,
                           random_move=False, scale_range=tuple(scale_range),
                           resample_offset=clip / num_clips)
  return finetune.eval_batches(source, make, batch_size)


def predict_log_probs(logits_fn: Callable[[np.ndarray], Any], source, *, n_frames: int,
                      scale_range: Sequence[float] = (2, 2), batch_size: int = 32,
                      num_clips: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """(log of the clip-averaged class probabilities (N, K) float64, labels (N,)) of a split.

  `logits_fn`: (B, 2, T, 17, 3) -> (B, K); every call gets `batch_size` rows (padding included),
  so a jitted model compiles once. With one clip these are the log-softmax of the logits.
  """
  if num_clips < 1:
    raise ValueError(f'num_clips must be >= 1, got {num_clips}')
  total, labels = None, np.zeros(len(source), np.int64)
  for clip in range(num_clips):
    rows = []
    for batch in clip_batches(source, n_frames=n_frames, scale_range=scale_range,
                              batch_size=batch_size, clip=clip, num_clips=num_clips):
      logits = np.asarray(logits_fn(batch['input']), np.float64)[batch['valid']]
      rows.append(log_softmax(logits, axis=-1))
      labels[batch['index'][batch['valid']]] = batch['label'][batch['valid']]
    log_p = np.concatenate(rows)
    total = log_p if total is None else np.logaddexp(total, log_p)  # log of summed probabilities
  return total - np.log(num_clips), labels


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
  """(K, K) int64 counts: row = true class, column = predicted class."""
  matrix = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(matrix, (labels, predicted), 1)
  return matrix


def classification_metrics(log_probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
  """Accuracies in % of (N, K) scores (any monotone of the probabilities) and (N,) labels.

  top1, top5: a label counts when fewer than k classes score strictly higher; top1_error =
  100 - top1 (lower is better, the best-checkpoint metric); mean_class_accuracy: the mean over
  the classes present in `labels` of their top-1 recall (pyskl averages over every class seen in
  labels or predictions); loss: mean negative log-probability of the label (the official test
  loss with one clip); confusion: `confusion_matrix` of the arg-max, as nested lists.
  """
  labels = np.asarray(labels, np.int64)
  n, num_classes = log_probs.shape
  if labels.shape != (n,) or n == 0 or labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(f'classification_metrics: expected {n} > 0 labels in [0, {num_classes}), '
                     f'got shape {labels.shape}, range [{labels.min(initial=0)}, '
                     f'{labels.max(initial=0)}]')
  own = log_probs[np.arange(n), labels]
  rank = np.sum(log_probs > own[:, None], axis=1)
  confusion = confusion_matrix(np.argmax(log_probs, axis=1), labels, num_classes)
  counts = confusion.sum(axis=1)
  present = counts > 0
  recall = np.diag(confusion)[present] / counts[present]
  top1 = 100 * float(np.mean(rank < 1))
  return {'top1': top1, 'top5': 100 * float(np.mean(rank < 5)), 'top1_error': 100 - top1,
          'mean_class_accuracy': 100 * float(np.mean(recall)), 'loss': float(-np.mean(own)),
          'clips': int(n), 'classes': int(present.sum()), 'confusion': confusion.tolist()}


LABELLED_TICKS = 30  # up to this many classes the axes name them


def save_confusion_png(confusion, path: str, *, title: str = '',
                       labels: tuple[str, ...] = ()) -> str:
  """Draws a confusion matrix (rows normalised to recall) into the PNG `path`; returns it.

  `labels`: class names for the axes (used when there are at most LABELLED_TICKS classes)."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  matrix = np.asarray(confusion, np.float64)
  recall = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
  k = len(matrix)
  fig, ax = plt.subplots(figsize=(8, 7), dpi=100)
  image = ax.imshow(recall, cmap='viridis', vmin=0, vmax=1, interpolation='nearest')
  fig.colorbar(image, ax=ax, fraction=0.046, label='fraction of the true class')
  if labels and len(labels) == k and k <= LABELLED_TICKS:
    ax.set_xticks(range(k), labels, rotation=45, ha='right')
    ax.set_yticks(range(k), labels)
  else:
    step = max(1, k // 12)
    ax.set_xticks(range(0, k, step))
    ax.set_yticks(range(0, k, step))
  ax.set_xlabel('predicted class')
  ax.set_ylabel('true class')
  ax.set_title(title or f'confusion matrix ({int(matrix.sum())} clips)')
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
  plt.close(fig)
  return path


def save_artifacts(result: dict, directory: str, name: str, step: int | None = None
                   ) -> list[str]:
  """Files of an evaluator result worth keeping beside it: `confusion_<name>[_<step>].png`."""
  if 'confusion' not in result:
    return []
  suffix = '' if step is None else f'_{step}'
  title = f'{name}: top-1 {result["top1"]:.2f}% over {result["clips"]} clips'
  return [save_confusion_png(result['confusion'], os.path.join(directory,
                                                               f'confusion_{name}{suffix}.png'),
                             title=title, labels=tuple(result.get('label_names') or ()))]


def make_evaluator(config, model, spec, inputs):
  """fn(variables) -> `classification_metrics` on `spec.split` (default `config.data.test_split`,
  e.g. NTU's official test split), `spec.part` ('all' or 'val'), `spec.num_clips` (1),
  `spec.batch_size`; with the config's `label_names` for the confusion picture."""
  split_source = inputs.need('split_source', 'action')
  split = spec.get('split') or config.data.get('test_split')
  if not split:
    raise ValueError('action evaluator: give its split (config.evals.<name>.split) or '
                     'config.data.test_split')
  source = split_source(split, spec.get('part', 'all'))
  if len(source) == 0:
    raise ValueError(f'action evaluator: {source!r} has no records')
  num_clips = int(spec.get('num_clips', 1))
  options = dict(n_frames=inputs.need('clip_len', 'action'), batch_size=int(spec.get('batch_size', 32)),
                 scale_range=tuple(config.augment.scale_range_test), num_clips=num_clips)
  apply = jax.jit(model.apply)
  names = list(config.get('label_names') or ())

  def run(variables):
    log_p, labels = predict_log_probs(lambda x: apply(variables, x), source, **options)
    return dict(classification_metrics(log_p, labels), num_clips=num_clips, label_names=names)

  return run
