"""Short windows padded to a few lengths (mbjax/infer/lift.py `pad`, mbjax/infer/model.py
`masked_apply`): padding frames masked out of temporal attention leave the real frames' output
as it is without them, so tracks of many lengths compile a few shapes and lift the same."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbjax import models
from mbjax.infer import lift
from mbjax.infer import model as model_lib
from mbjax.models.dstformer import TINY


def _model(**kw):
  model = models.from_config(dict(TINY, maxlen=32, **kw))
  x = jnp.zeros((1, 32, 17, 3))
  return model, nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), x))


@pytest.mark.parametrize('kw', [dict(), dict(attention_impl='matmul'), dict(attention_impl='xla'),
                                dict(scan_layers=True)],
                         ids=['einsum', 'matmul', 'xla', 'scan'])
def test_masked_padding_leaves_the_real_frames_as_without_it(kw):
  model, variables = _model(**kw)
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (2, 11, 17, 3)).astype(np.float32)
  alone = model.apply(variables, x)
  padded = np.concatenate([x, np.full((2, 21, 17, 3), np.nan, np.float32)], axis=1)
  out = np.asarray(model_lib.masked_apply(model)(variables, padded))
  np.testing.assert_allclose(out[:, :11], alone, atol=2e-5)
  unmasked = model.apply(variables, np.nan_to_num(padded))  # what the mask is needed for
  assert np.abs(np.asarray(unmasked)[:, :11] - alone).max() > 1e-3


def test_lengths_are_padded_within_a_ratio_to_lengths_that_run_as_they_are():
  assert lift.padded_lengths([150]) == {150: 150}  # one track: never padded
  assert lift.padded_lengths([243, 243, 200, 162, 161, 100, 70, 40]) == {
      243: 243, 200: 243, 162: 243, 161: 161, 100: 100, 70: 100, 40: 40}


def test_tracks_of_many_lengths_lift_the_same_in_a_few_shapes():
  model, variables = _model()
  apply = model_lib.masked_apply(model)
  shapes = []

  def predict(x):
    shapes.append(x.shape[1])
    return apply(variables, x)

  rng = np.random.default_rng(1)
  inputs = {k: rng.uniform(-1, 1, (n, 17, 3)).astype(np.float32)
            for k, n in enumerate((3, 9, 12, 17, 20, 25, 31, 70))}
  options = lift.Options(clip_len=32, stride=10, flip=True)
  exact = lift.lift(predict, inputs, options)
  exact_shapes, shapes[:] = set(shapes), []
  padded = lift.lift(predict, inputs, lift.Options(clip_len=32, stride=10, flip=True, pad=True))
  assert exact_shapes == {3, 9, 12, 17, 20, 25, 31, 32} and set(shapes) == {3, 12, 20, 32}
  for k, x in inputs.items():
    assert padded[k].shape == (len(x), 17, 3)
    np.testing.assert_allclose(padded[k], exact[k], atol=2e-5)
