"""Action losses: SupCon against the official values, cross-entropy and top-k against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbjax.losses import pose as losses


@pytest.fixture(scope='module')
def supcon(reference_dir):
  return dict(np.load(reference_dir / 'supcon_tiny.npz'))


def _supcon(features, labels=None, **kw):
  return float(losses.supcon_loss(jnp.asarray(features), None if labels is None
                                  else jnp.asarray(labels), temperature=0.1, **kw))


def test_supcon_matches_official(supcon):
  np.testing.assert_allclose(_supcon(supcon['features_v1'], supcon['labels_v1']),
                             supcon['loss_v1'], rtol=0, atol=1e-5)
  np.testing.assert_allclose(_supcon(supcon['features_v2'], supcon['labels_v2']),
                             supcon['loss_v2'], rtol=0, atol=1e-5)
  np.testing.assert_allclose(_supcon(supcon['features_v2']), supcon['loss_simclr_v2'],
                             rtol=0, atol=1e-5)
  np.testing.assert_allclose(_supcon(supcon['features_v2'], supcon['labels_v2'],
                                     contrast_mode='one'), supcon['loss_v2_one'], rtol=0,
                             atol=1e-5)
  # The one-shot script's reshape: (B, D) embeddings -> (B, 1, D).
  np.testing.assert_array_equal(supcon['embed_v1'][:, None], supcon['features_v1'])


def test_supcon_gradient_matches_official(supcon):
  grad = jax.jit(jax.grad(lambda f: losses.supcon_loss(f, jnp.asarray(supcon['labels_v2']),
                                                      temperature=0.1)))(
      jnp.asarray(supcon['features_v2']))
  np.testing.assert_allclose(np.asarray(grad), supcon['grad_features_v2'], rtol=0, atol=1e-5)


def test_supcon_anchor_without_positive_is_nan_as_official(supcon):
  assert np.isnan(supcon['loss_v1_singleton'])
  assert np.isnan(_supcon(supcon['features_v1'], supcon['labels_v1_singleton']))


def test_supcon_errors():
  with pytest.raises(ValueError, match=r'features \(B, V, D\)'):
    losses.supcon_loss(jnp.zeros((4, 8)), jnp.zeros(4, jnp.int32))
  with pytest.raises(ValueError, match='contrast_mode'):
    losses.supcon_loss(jnp.zeros((4, 2, 8)), contrast_mode='any')


def _numpy_cross_entropy(logits, labels):
  logits = logits.astype(np.float64)
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_z = np.log(np.exp(shifted).sum(axis=1))
  return float(np.mean(log_z - shifted[np.arange(len(labels)), labels]))


def _numpy_top_k(scores, labels, k):
  """Sorted by hand: the label's position among the classes in descending score order, with a
  tied class counted after the label."""
  hits = []
  for row, label in zip(scores, labels):
    higher = [c for c in range(len(row)) if row[c] > row[label]]
    hits.append(len(higher) < k)
  return np.array(hits)


def test_cross_entropy_and_top_k_match_numpy():
  rng = np.random.default_rng(0)
  logits = (rng.normal(size=(64, 60)) * 4).astype(np.float32)
  labels = rng.integers(0, 60, 64)
  np.testing.assert_allclose(float(losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels))),
                             _numpy_cross_entropy(logits, labels), rtol=1e-6)
  for k in (1, 5):
    np.testing.assert_array_equal(np.asarray(losses.top_k_correct(jnp.asarray(logits),
                                                                  jnp.asarray(labels), k)),
                                  _numpy_top_k(logits, labels, k))
  # Large logits: the log-softmax stays finite.
  big = np.array([[1000.0, 0.0, -1000.0]], np.float32)
  np.testing.assert_allclose(float(losses.cross_entropy(jnp.asarray(big), jnp.asarray([1]))),
                             1000.0, rtol=1e-6)


def test_top_k_known_answers_and_ties():
  scores = jnp.asarray([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.2, 0.3, 0.5]])
  labels = jnp.asarray([2, 0, 0])
  assert losses.top_k_correct(scores, labels, 1).tolist() == [False, False, False]
  # Row 1: class 0 ties with class 1, below class 2: one class strictly higher -> top-2.
  assert losses.top_k_correct(scores, labels, 2).tolist() == [True, True, False]
  assert losses.top_k_correct(scores, labels, 3).tolist() == [True, True, True]


def test_cross_entropy_weight_drops_padding_rows():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(6, 5)).astype(np.float32)
  labels = rng.integers(0, 5, 6)
  weight = np.array([1, 1, 1, 1, 0, 0], np.float32)
  np.testing.assert_allclose(
      float(losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(weight))),
      _numpy_cross_entropy(logits[:4], labels[:4]), rtol=1e-6)
  with pytest.raises(ValueError, match=r'logits \(B, K\) and labels \(B,\)'):
    losses.cross_entropy(jnp.zeros((3, 5)), jnp.zeros((4,), jnp.int32))
