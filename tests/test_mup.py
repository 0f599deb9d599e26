"""muP (model.parameterization='mup'): a coordinate check across widths, and the switch itself."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax.core import meta

from mbjax.train import optim
from mbjax.models import DSTformer, from_config, mup

WIDTHS = (32, 64, 128, 256)
BASE = 64


def _model_config(width, parameterization, **overrides):
  return dict(dict(dim_feat=width, dim_rep=width, depth=1, num_heads=4, mlp_ratio=2,
                   num_joints=5, maxlen=4, parameterization=parameterization,
                   mup_base_width=BASE), **overrides)


# Compile time is most of this file's time; the programs are tiny, so skip XLA's costly passes.
FAST_COMPILE = {'xla_backend_optimization_level': 0, 'xla_llvm_disable_expensive_passes': True,
                'xla_cpu_use_fusion_emitters': False}


def _jit(fn, *args):
  return jax.jit(fn).lower(*args).compile(FAST_COMPILE)(*args)


def _init(model_config, x):
  init = lambda x: meta.unbox(from_config(model_config).init(jax.random.key(0), x))['params']
  return _jit(init, x)


def _coordinates(width, parameterization, lr=1e-2, steps=4):
  """Mean |coordinate| of the first block's output and of the model output after `steps` Adam
  steps (through `optim.make_optimizer`) regressing a fixed random target (B=4, T=4, J=5)."""
  model_config = _model_config(width, parameterization)
  model = from_config(model_config)
  x = jax.random.normal(jax.random.key(1), (4, 4, 5, 3))
  y = jax.random.normal(jax.random.key(2), (4, 4, 5, 3))
  abstract = jax.eval_shape(lambda: meta.unbox(model.init(jax.random.key(0), x))['params'])
  config = ml_collections.ConfigDict(dict(lr=lr, weight_decay=0.0, model=model_config))
  tx = optim.make_optimizer(config, params=abstract, steps_per_epoch=100)

  def step(carry, _):
    p, s = carry
    g = jax.grad(lambda p: jnp.mean((model.apply({'params': p}, x) - y) ** 2))(p)
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), None

  def train(key):
    params = meta.unbox(model.init(key, x))['params']
    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    out, state = model.apply({'params': params}, x, mutable=['intermediates'],
                             capture_intermediates=lambda m, _: m.name == 'blocks_st_0')
    block = state['intermediates']['blocks_st_0']['__call__'][0]
    return jnp.stack([jnp.mean(jnp.abs(block)), jnp.mean(jnp.abs(out))])

  return np.asarray(_jit(train, jax.random.key(0)))


def _spread(values):
  return float(np.max(values) / np.min(values))


@pytest.mark.slow  # compiles 8 programs: ~25 s alone, ~35 s beside the other worker
def test_coordinate_check():
  """After 4 steps at one lr, muP coordinates stay flat from width 32 to 256; standard ones grow
  with width (measured: muP block 1.14x, output 1.19x; standard block 23x, output 5.1x)."""
  sizes = {p: np.stack([_coordinates(w, p) for w in WIDTHS]) for p in mup.PARAMETERIZATIONS}
  mup_block, mup_out = _spread(sizes['mup'][:, 0]), _spread(sizes['mup'][:, 1])
  std_block, std_out = _spread(sizes['standard'][:, 0]), _spread(sizes['standard'][:, 1])
  assert mup_block < 1.5 and mup_out < 1.5, sizes['mup']
  assert std_block > 10 and std_out > 3, sizes['standard']
  assert std_block > 4 * mup_block and std_out > 2 * mup_out
  # Growing, not just noisy: each doubling of the standard width enlarges the block output.
  assert np.all(np.diff(sizes['standard'][:, 0]) > 0), sizes['standard']
  # At the base width the two parameterisations train identically.
  np.testing.assert_array_equal(sizes['mup'][1], sizes['standard'][1])


def test_mup_equals_standard_at_base_width():
  x = jax.random.normal(jax.random.key(1), (2, 4, 5, 3))
  standard, mu = (_init(_model_config(BASE, p), x) for p in ('standard', 'mup'))
  jax.tree.map(np.testing.assert_array_equal, standard, mu)
  outs = [_jit(from_config(_model_config(BASE, p)).apply, {'params': standard}, x)
          for p in ('standard', 'mup')]
  np.testing.assert_array_equal(*outs)
  assert set(jax.tree.leaves(mup.lr_multipliers(mu, mup.width_mult(BASE, BASE)))) == {1.0}


@pytest.mark.parametrize('scheme', ['official', 'fan_in'])
def test_init_scales_with_width(scheme):
  """At m=4: hidden kernels std(B)/sqrt(m), readout std(B), input-like weights as standard."""
  x = jnp.zeros((1, 4, 5, 3))
  std = lambda p, *path: float(np.std(_leaf(p, path)))
  base = _init(_model_config(BASE, 'mup', init_scheme=scheme), x)
  wide, wide_std = (_init(_model_config(4 * BASE, p, init_scheme=scheme), x)
                    for p in ('mup', 'standard'))
  assert jax.tree.map(np.shape, wide) == jax.tree.map(np.shape, wide_std)
  qkv = ('blocks_st_0', 'attn_s', 'qkv', 'kernel')
  assert std(wide, *qkv) == pytest.approx(std(base, *qkv) / 2, rel=0.05)
  assert std(wide, 'head', 'kernel') == pytest.approx(std(base, 'head', 'kernel'), rel=0.15)
  for path in (('joints_embed', 'kernel'), ('pos_embed',)):
    np.testing.assert_array_equal(_leaf(wide, path), _leaf(wide_std, path))
  multipliers = mup.lr_multipliers(wide, 4.0)
  assert _leaf(multipliers, qkv) == 0.25 and _leaf(multipliers, ('ts_attn_0', 'kernel')) == 0.25
  assert _leaf(multipliers, ('head', 'kernel')) == 1.0
  assert _leaf(multipliers, ('blocks_st_0', 'attn_s', 'qkv', 'bias')) == 1.0


def _leaf(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def test_mup_attention_same_in_fused_path():
  model_config = _model_config(128, 'mup')
  x = jax.random.normal(jax.random.key(1), (2, 4, 5, 3))
  params = _init(model_config, x)
  outs = [_jit(from_config(dict(model_config, attention_impl=impl)).apply, {'params': params}, x)
          for impl in ('einsum', 'xla')]
  np.testing.assert_allclose(*outs, atol=1e-5)


def test_wrapped_backbone_multipliers():
  """ActionNet / MeshNet: muP covers the DSTformer under backbone/, not the task head."""
  tree = {'backbone': {'blocks_st_0': {'mlp_s': {'fc1': {'kernel': 0.0}}},
                       'pre_logits': {'kernel': 0.0}, 'head': {'kernel': 0.0}},
          'head': {'fc1': {'kernel': 0.0}}}
  multipliers = mup.lr_multipliers(tree, 2.0)
  assert multipliers['backbone']['blocks_st_0']['mlp_s']['fc1']['kernel'] == 0.5
  assert multipliers['backbone']['pre_logits']['kernel'] == 0.5
  assert multipliers['backbone']['head']['kernel'] == 1.0
  assert multipliers['head']['fc1']['kernel'] == 1.0


def test_standard_is_the_default():
  assert DSTformer().parameterization == 'standard'
  model_config = _model_config(128, 'standard')
  del model_config['parameterization']
  assert from_config(model_config).parameterization == 'standard'
  params = {'blocks_st_0': {'attn_s': {'qkv': {'kernel': jnp.ones((2, 2))}}}}
  # First Adam step: -lr * g / |g|, times muP's 1/m on a hidden kernel (m = 2 at width 128).
  for model, lr in ((None, 1e-3), (model_config, 1e-3), (_model_config(128, 'mup'), 5e-4)):
    config = ml_collections.ConfigDict(dict(lr=1e-3, weight_decay=0.0))
    if model is not None:
      config.model = model
    tx = optim.make_optimizer(config, params=params, steps_per_epoch=1)
    updates, _ = tx.update(params, tx.init(params), params)
    np.testing.assert_allclose(updates['blocks_st_0']['attn_s']['qkv']['kernel'], -lr, rtol=1e-5)


def test_unknown_parameterization_fails_clearly():
  bad = _model_config(64, 'mu-p')
  match = r"config\.model\.parameterization='mu-p'.*\('standard', 'mup'\)"
  with pytest.raises(ValueError, match=match):
    from_config(bad)
  with pytest.raises(ValueError, match=match):
    optim.make_optimizer(ml_collections.ConfigDict(dict(lr=1e-3, model=bad)), params={},
                         steps_per_epoch=1)
  with pytest.raises(ValueError, match='DSTformer.parameterization'):
    DSTformer(dim_feat=32, dim_rep=16, depth=1, num_heads=4, maxlen=4,
              parameterization='mu-p').init(jax.random.key(0), jnp.zeros((1, 4, 17, 3)))
  with pytest.raises(ValueError, match='mup_base_width'):
    from_config(_model_config(64, 'mup', mup_base_width=0))
