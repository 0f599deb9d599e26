"""One-shot action recognition evaluation on NTU RGB+D 120 (official `train_action_1shot.py`).

  python -m mbjax.evaluate --config=configs/action_ntu120_oneshot.py --checkpoint=RUN/best

As the official `validate`: the exemplars (`oneshot_exemplar`, one per novel class) and every clip
to classify (`oneshot_eval`) go through the test transform (evenly spaced resampling to
`clip_len`, crop-scale [2, 2]); each clip takes the label of the exemplar of highest cosine
similarity (the embeddings are L2-normalised). Accuracy in %. With more than one exemplar per
class (k-shot) it is still the nearest exemplar, and also `prototype_accuracy`: the class of the
nearest normalised mean of a class's exemplars.

The model runs in eval mode (no dropout), so a checkpoint has one accuracy. Official
train_action_1shot.py never calls `model.eval()`: its exemplars and clips are embedded in train
mode, with the head's dropout (0.1) on, so its reported accuracy changes from run to run.
`official_train_mode=True` in the evaluator's spec does the same: dropout on, from a generator
seeded by `seed` (default 0) and the number of the evaluation call, so each evaluation of a run
draws other masks and a rerun draws the same ones.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from mbjax.evaluate import action as action_eval


def embed_split(embed_fn: Callable[[np.ndarray], Any], source, *, n_frames: int,
                scale_range=(2, 2), batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
  """(L2-normalised embeddings (N, D) float64, labels (N,) int64) of every record of `source`."""
  rows, labels = [], np.zeros(len(source), np.int64)
  for batch in action_eval.clip_batches(source, n_frames=n_frames, scale_range=scale_range,
                                        batch_size=batch_size):
    valid = batch['valid']
    rows.append(np.asarray(embed_fn(batch['input']), np.float64)[valid])
    labels[batch['index'][valid]] = batch['label'][valid]
  return _normalise(np.concatenate(rows)), labels


def _normalise(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def nearest_exemplar_metrics(queries: np.ndarray, query_labels: np.ndarray,
                             exemplars: np.ndarray, exemplar_labels: np.ndarray
                             ) -> dict[str, Any]:
  """Cosine 1-NN accuracy (%) of queries (N, D) against exemplars (E, D) and their labels.

  Returns accuracy, the number of clips, classes and exemplars per class (`shots`, the fewest),
  and with shots > 1 `prototype_accuracy`.
  """
  queries, exemplars = _normalise(queries), _normalise(exemplars)
  query_labels = np.asarray(query_labels, np.int64)
  exemplar_labels = np.asarray(exemplar_labels, np.int64)
  if len(queries) == 0 or len(exemplars) == 0:
    raise ValueError(f'oneshot: {len(queries)} clips and {len(exemplars)} exemplars; expected '
                     'at least one of each')
  unknown = sorted(set(query_labels.tolist()) - set(exemplar_labels.tolist()))
  if unknown:
    raise ValueError(f'oneshot: clips of classes {unknown} have no exemplar')
  predicted = exemplar_labels[np.argmax(queries @ exemplars.T, axis=1)]
  classes, counts = np.unique(exemplar_labels, return_counts=True)
  shots = int(counts.min())
  result = {'accuracy': 100 * float(np.mean(predicted == query_labels)),
            'clips': int(len(queries)), 'classes': int(len(classes)), 'shots': shots}
  result['error'] = 100 - result['accuracy']
  if shots > 1:
    means = _normalise(np.stack([exemplars[exemplar_labels == c].mean(0) for c in classes]))
    result['prototype_accuracy'] = 100 * float(np.mean(
        classes[np.argmax(queries @ means.T, axis=1)] == query_labels))
  return result


def embedder(model, *, train_mode: bool = False, seed: int = 0
             ) -> Callable[[Any, int], Callable[[np.ndarray], Any]]:
  """fn(variables, call) -> embed fn (B, 2, T, 17, 3) -> (B, D): eval mode, or with
  `train_mode` the official train mode, dropout from fold_in(key(seed), call) and one more fold
  per batch (no state is updated: the embedding head has none)."""
  if not train_mode:
    apply = jax.jit(model.apply)
    return lambda variables, call: (lambda x: apply(variables, x))

  @jax.jit
  def apply_train(variables, x, rng):
    mutable = [c for c in variables if c != 'params'] or False
    out = model.apply(variables, x, train=True, rngs={'dropout': rng}, mutable=mutable)
    return out[0] if mutable else out

  def for_call(variables, call: int):
    key = jax.random.fold_in(jax.random.key(seed), call)
    batches = iter(range(1 << 30))
    return lambda x: apply_train(variables, x, jax.random.fold_in(key, next(batches)))

  return for_call


def make_evaluator(config, model, spec, inputs):
  """fn(variables) -> `nearest_exemplar_metrics` of `spec.split` (default 'oneshot_eval') against
  `spec.exemplar_split` (default 'oneshot_exemplar'); `spec.batch_size` (32);
  `spec.official_train_mode` (False) and `spec.seed` (0): see the module docstring."""
  split_source = inputs.need('split_source', 'oneshot')
  queries = split_source(spec.get('split') or 'oneshot_eval', 'all')
  exemplars = split_source(spec.get('exemplar_split') or 'oneshot_exemplar', 'all')
  for source in (queries, exemplars):
    if len(source) == 0:
      raise ValueError(f'oneshot evaluator: {source!r} has no records')
  options = dict(n_frames=inputs.need('clip_len', 'oneshot'), batch_size=int(spec.get('batch_size', 32)),
                 scale_range=tuple(config.augment.scale_range_test))
  make_embed = embedder(model, train_mode=bool(spec.get('official_train_mode', False)),
                        seed=int(spec.get('seed', 0)))
  calls = iter(range(1 << 30))

  def run(variables):
    embed = make_embed(variables, next(calls))
    e, e_labels = embed_split(embed, exemplars, **options)  # official: the exemplars first
    q, q_labels = embed_split(embed, queries, **options)
    return nearest_exemplar_metrics(q, q_labels, e, e_labels)

  return run
