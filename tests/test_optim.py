"""AdamW against a hand-written torch-semantics AdamW, schedules, groups, freezing and clipping."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from mbjax.train import optim

B1, B2, EPS = 0.9, 0.999, 1e-8


def _config(**overrides):
  fields = dict(lr=2e-3, lr_head=None, weight_decay=0.01, lr_decay=0.9, warmup_steps=0,
                grad_clip=0.0, head_patterns=('^head/',), partial_train=None, freeze_patterns=())
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


def _params():
  rng = np.random.default_rng(0)
  return {
      'joints_embed': {'kernel': jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
                       'bias': jnp.asarray(rng.normal(size=(4,)), jnp.float32)},
      'norm': {'scale': jnp.ones((4,), jnp.float32)},
      'head': {'fc1': {'kernel': jnp.asarray(rng.normal(size=(4, 2)), jnp.float32)}},
  }


def _grads(params, step):
  rng = np.random.default_rng(100 + step)
  return jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)


def _torch_adamw(params, grads_per_step, lr_of):
  """torch.optim.AdamW in float64: decay lr*wd*p first, then bias-corrected Adam."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  m = {k: np.zeros_like(v) for k, v in p.items()}
  v = {k: np.zeros_like(x) for k, x in p.items()}
  for t, grads in enumerate(grads_per_step, start=1):
    for k in p:
      lr, wd = lr_of(k, t - 1)
      g = np.asarray(grads[k], np.float64)
      p[k] = p[k] * (1 - lr * wd)
      m[k] = B1 * m[k] + (1 - B1) * g
      v[k] = B2 * v[k] + (1 - B2) * g * g
      denom = np.sqrt(v[k]) / np.sqrt(1 - B2**t) + EPS
      p[k] = p[k] - lr / (1 - B1**t) * m[k] / denom
  return p


def _flat(tree):
  return {optim.param_path_name(path): leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _run(tx, params, steps):
  state = tx.init(params)
  update = jax.jit(tx.update)
  grads_per_step = []
  for step in range(steps):
    grads = _grads(params, step)
    grads_per_step.append(_flat(grads))
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return params, state, grads_per_step


# ---------------------------------------------------------------------------------------------
# Schedule.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize('lr_decay', [0.99, 0.95, 1.0])
def test_lr_schedule_decays_once_per_epoch(lr_decay):
  spe, lr = 37, 5e-4
  schedule = optim.lr_schedule(lr, steps_per_epoch=spe, lr_decay=lr_decay)
  jitted = jax.jit(schedule)
  for step, epoch in [(0, 0), (spe - 1, 0), (spe, 1), (10 * spe + 3, 10), (200 * spe, 200)]:
    expected = lr * lr_decay**epoch
    assert float(schedule(step)) == pytest.approx(expected, rel=5e-7), step
    assert float(jitted(jnp.int32(step))) == pytest.approx(expected, rel=5e-7), step
    assert optim.current_lr(schedule, step) == pytest.approx(expected, rel=5e-7)
  assert type(optim.current_lr(schedule, 3)) is float


def test_lr_schedule_warmup_ramp():
  schedule = optim.lr_schedule(1e-3, steps_per_epoch=3, lr_decay=0.5, warmup_steps=4)
  got = [float(schedule(s)) for s in range(8)]
  # Ramp (step + 1) / 4 times the per-epoch decay, which counts from step 0.
  expected = [1e-3 * 0.25, 1e-3 * 0.5, 1e-3 * 0.75, 5e-4, 5e-4, 5e-4, 2.5e-4, 2.5e-4]
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  with pytest.raises(ValueError, match='steps_per_epoch must be >= 1'):
    optim.lr_schedule(1e-3, steps_per_epoch=0, lr_decay=0.99)
  with pytest.raises(ValueError, match='lr_decay must be > 0'):
    optim.lr_schedule(1e-3, steps_per_epoch=1, lr_decay=0.0)


def test_lr_schedule_with_uneven_epochs():
  # A curriculum's epochs of 5, 3 and 4 steps: the decay steps at 5, 8 and 12.
  schedule = optim.lr_schedule(1e-3, lr_decay=0.9, epoch_starts=[0, 5, 8, 12])
  got = [float(jax.jit(schedule)(s)) for s in (0, 4, 5, 7, 8, 11, 12, 40)]
  np.testing.assert_allclose(got, 1e-3 * 0.9**np.array([0, 0, 1, 1, 2, 2, 3, 3]), rtol=5e-7)
  with pytest.raises(ValueError, match='exactly one of steps_per_epoch and epoch_starts'):
    optim.lr_schedule(1e-3, lr_decay=0.9, steps_per_epoch=5, epoch_starts=[0, 5])
  with pytest.raises(ValueError, match='epoch_starts must rise strictly from 0'):
    optim.lr_schedule(1e-3, lr_decay=0.9, epoch_starts=[0, 5, 5])


# ---------------------------------------------------------------------------------------------
# AdamW numerics and groups.
# ---------------------------------------------------------------------------------------------


def test_matches_torch_adamw_with_epoch_decay():
  params, spe = _params(), 2
  config = _config(lr_decay=0.9, weight_decay=0.05)
  tx = optim.make_optimizer(config, steps_per_epoch=spe, params=params)
  got, _, grads = _run(tx, params, steps=5)
  expected = _torch_adamw(_flat(params), grads, lambda k, s: (2e-3 * 0.9**(s // spe), 0.05))
  for name, value in _flat(got).items():
    np.testing.assert_allclose(value, expected[name], atol=1e-6, rtol=0, err_msg=name)
  # Every parameter moved, norm scales and biases included: decay applies to all, as in torch.
  assert all(not np.allclose(v, _flat(params)[k]) for k, v in _flat(got).items())


def test_head_gets_lr_head():
  params, spe = _params(), 3
  config = _config(lr=1e-4, lr_head=1e-2, lr_decay=0.5)
  assert optim.param_labels(params, config)['head']['fc1']['kernel'] == optim.HEAD
  assert optim.label_counts(params, config) == {'backbone': 20, 'head': 8}
  tx = optim.make_optimizer(config, steps_per_epoch=spe, params=params)
  got, _, grads = _run(tx, params, steps=4)
  lrs = lambda k, s: ((1e-2 if k.startswith('head/') else 1e-4) * 0.5**(s // spe), 0.01)
  expected = _torch_adamw(_flat(params), grads, lrs)
  for name, value in _flat(got).items():
    np.testing.assert_allclose(value, expected[name], atol=1e-6, rtol=0, err_msg=name)
  assert set(optim.schedules(config, steps_per_epoch=spe)) == {'lr', 'lr_head'}
  # The same steps with the epochs given by their first steps.
  tx = optim.make_optimizer(config, epoch_starts=[0, 3, 6], params=params)
  got_starts, _, _ = _run(tx, params, steps=4)
  jax.tree.map(np.testing.assert_array_equal, got_starts, got)
  # Without lr_head the head patterns do not matter: one group at lr.
  assert optim.label_counts(params, _config()) == {'backbone': 28}


@pytest.mark.parametrize('overrides', [
    dict(freeze_patterns=('^joints_embed/', 'norm')),
    dict(partial_train=('^head/',)),
])
def test_frozen_params_do_not_move_and_hold_no_moments(overrides):
  params = _params()
  config = _config(**overrides)
  tx = optim.make_optimizer(config, steps_per_epoch=2, params=params)
  got, state, grads = _run(tx, params, steps=3)
  flat_params, flat_got = _flat(params), _flat(got)
  for name in ('joints_embed/kernel', 'joints_embed/bias', 'norm/scale'):
    np.testing.assert_array_equal(flat_got[name], flat_params[name], err_msg=name)
  expected = _torch_adamw({'head/fc1/kernel': flat_params['head/fc1/kernel']},
                          [{'head/fc1/kernel': g['head/fc1/kernel']} for g in grads],
                          lambda k, s: (2e-3 * 0.9**(s // 2), 0.01))
  np.testing.assert_allclose(flat_got['head/fc1/kernel'], expected['head/fc1/kernel'], atol=1e-6)
  # Moments exist for the 8 head weights only (mu and nu); the rest are step counters.
  moment_sizes = [x.size for x in jax.tree.leaves(state) if x.ndim > 0]
  assert sorted(moment_sizes) == [8, 8]
  assert optim.label_counts(params, config) == {'frozen': 20, 'backbone': 8}


def test_grad_clip_scales_by_global_norm_of_trained_params():
  params = {'a': jnp.zeros((2,)), 'b': jnp.zeros((1,)), 'frozen': jnp.zeros((1,))}
  grads = {'a': jnp.array([3.0, 4.0]), 'b': jnp.array([12.0]), 'frozen': jnp.array([1000.0])}
  config = _config(grad_clip=1.3, freeze_patterns=('frozen',), head_patterns=())

  def first_moment(tx):
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    mus = [s.mu for s in jax.tree.leaves(state, is_leaf=lambda s: hasattr(s, 'mu'))
           if hasattr(s, 'mu')]
    assert len(mus) == 1
    assert float(updates['frozen'][0]) == 0.0
    return mus[0]

  # ||(3, 4, 12)|| = 13 (the frozen gradient is left out), so gradients are scaled by 1.3 / 13.
  mu = first_moment(optim.make_optimizer(config, steps_per_epoch=1, params=params))
  np.testing.assert_allclose(mu['a'], (1 - B1) * np.array([0.3, 0.4]), rtol=1e-6)
  np.testing.assert_allclose(mu['b'], (1 - B1) * np.array([1.2]), rtol=1e-6)
  # Off (0) or above the norm: untouched.
  for clip in (0.0, 20.0):
    mu = first_moment(optim.make_optimizer(_config(grad_clip=clip, freeze_patterns=('frozen',)),
                                           steps_per_epoch=1, params=params))
    np.testing.assert_allclose(mu['a'], (1 - B1) * np.array([3.0, 4.0]), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Boxed (LogicallyPartitioned) parameter trees.
# ---------------------------------------------------------------------------------------------


class _Tiny(nn.Module):

  @nn.compact
  def __call__(self, x):
    init = nn.with_logical_partitioning(nn.initializers.normal(1.0), ('embed', 'mlp'))
    x = nn.Dense(4, kernel_init=init, name='backbone_fc')(x)
    return nn.Dense(2, kernel_init=init, name='head')(x)


def test_boxed_and_unboxed_trees_give_the_same_steps():
  boxed = _Tiny().init(jax.random.key(0), jnp.ones((1, 3)))['params']
  unboxed = nn.unbox(boxed)
  config = _config(lr_head=1e-2, freeze_patterns=('backbone_fc/bias',))
  labels = optim.param_labels(boxed, config)
  assert jax.tree.structure(labels) == jax.tree.structure(
      jax.tree.map(lambda _: 'x', boxed))
  assert isinstance(labels['head']['kernel'], nn.LogicallyPartitioned)
  assert labels['head']['kernel'].names == ('embed', 'mlp')
  assert nn.unbox(labels) == {'backbone_fc': {'kernel': 'backbone', 'bias': 'frozen'},
                              'head': {'kernel': 'head', 'bias': 'head'}}

  # Built from the boxed tree (as train.py does from eval_shape), used on either tree.
  tx = optim.make_optimizer(config, steps_per_epoch=2, params=boxed)
  boxed_state = tx.init(boxed)
  mu_boxes = [x for x in jax.tree.leaves(boxed_state, is_leaf=lambda x: isinstance(
      x, nn.LogicallyPartitioned)) if isinstance(x, nn.LogicallyPartitioned)]
  assert mu_boxes and all(b.names == ('embed', 'mlp') for b in mu_boxes)  # shardable moments
  got_boxed, _, _ = _run(tx, boxed, steps=2)
  got_unboxed, _, _ = _run(tx, unboxed, steps=2)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-7), nn.unbox(got_boxed),
               got_unboxed)
  np.testing.assert_array_equal(got_unboxed['backbone_fc']['bias'], unboxed['backbone_fc']['bias'])


def test_bad_configs_are_reported():
  params = _params()
  with pytest.raises(ValueError, match="freeze_patterns pattern '\\^blocks/' matches no parameter"):
    optim.make_optimizer(_config(freeze_patterns=('^blocks/',)), steps_per_epoch=1, params=params)
  with pytest.raises(ValueError, match='freeze every parameter'):
    optim.make_optimizer(_config(partial_train=('^head/',), freeze_patterns=('head',)),
                         steps_per_epoch=1, params=params)
  with pytest.raises(ValueError, match="head_patterns pattern 'tail' matches no parameter"):
    optim.make_optimizer(_config(lr_head=1e-2, head_patterns=('tail',)), steps_per_epoch=1,
                         params=params)
  optim.make_optimizer(_config(head_patterns=('tail',)), steps_per_epoch=1, params=params)  # unused
  with pytest.raises(ValueError, match='bad regex in head_patterns'):
    optim.make_optimizer(_config(lr_head=1e-2, head_patterns=('(',)), steps_per_epoch=1,
                         params=params)
  with pytest.raises(ValueError, match='`lr` is required'):
    optim.make_optimizer(_config(lr=None), steps_per_epoch=1, params=params)


def test_cosine_schedule_ends_at_the_final_ratio_at_total_steps():
  schedule = optim.schedules(_config(lr=1e-3, lr_schedule='cosine', total_steps=100,
                                     lr_decay=0.5, warmup_steps=10), steps_per_epoch=7)['lr']
  lrs = np.array([float(schedule(s)) for s in range(0, 121)])
  assert lrs[9] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.09)) * 0.9 + 1e-4, rel=1e-5)
  assert lrs[50] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5), rel=1e-5)  # the epoch decay is off
  assert lrs[100] == pytest.approx(1e-4, rel=1e-5) and lrs[120] == pytest.approx(1e-4, rel=1e-5)
  assert np.all(np.diff(lrs[10:101]) <= 0)
  with pytest.raises(ValueError, match='runs over config.total_steps, which is -1'):
    optim.schedules(_config(lr_schedule='cosine', total_steps=-1), steps_per_epoch=7)
  with pytest.raises(ValueError, match="lr_schedule='linear': expected"):
    optim.schedules(_config(lr_schedule='linear', total_steps=5), steps_per_epoch=7)
