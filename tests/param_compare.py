"""Comparing parameters of runs that differ only in how the work was split (devices, processes)."""

import jax
import numpy as np


def comparable(path, x) -> np.ndarray:
  """`x` without the key third of an attention's qkv bias. Its gradient is zero up to rounding
  (softmax ignores a shift shared by all keys), and Adam scales that noise into updates that
  differ with the order of the reductions, so those elements are not compared."""
  x = np.asarray(x)
  if jax.tree_util.keystr(path).endswith("['qkv']['bias']"):
    q, _, v = np.split(x, 3, axis=-1)
    return np.concatenate([q, v], axis=-1)
  return x


def assert_close(got, want, atol: float) -> None:
  """Every comparable element of `got` within `atol` of `want` (same tree structure)."""
  flat_got = jax.tree_util.tree_flatten_with_path(got)[0]
  flat_want = jax.tree_util.tree_leaves(want)
  assert len(flat_got) == len(flat_want)
  for (path, a), b in zip(flat_got, flat_want):
    np.testing.assert_allclose(comparable(path, a), comparable(path, b), rtol=0, atol=atol,
                               err_msg=jax.tree_util.keystr(path))
