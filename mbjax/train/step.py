"""The train step: the task's loss, gradients (accumulated over micro-batches), the optimizer
update and the step's norms, jitted with the state layout's shardings under the mesh."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from mbjax.train import optim, sharding
from mbjax.train.state import StateLayout


def _tree_norm(tree):
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32)))
                      for x in jax.tree_util.tree_leaves(tree)))


class MeshStep:
  """A jitted step that is traced and dispatched with `mesh` set (`jax.set_mesh`), so that the
  model's `activation_*` sharding constraints reach XLA; outside a mesh Flax drops them."""

  def __init__(self, jitted, mesh):
    self.jitted, self.mesh = jitted, mesh

  def __call__(self, *args):
    with jax.set_mesh(self.mesh):
      return self.jitted(*args)

  def lower(self, *args):
    with jax.set_mesh(self.mesh):
      return self.jitted.lower(*args)


def jit_train_step(train_step, layout: StateLayout, mesh) -> MeshStep:
  """`make_train_step`'s step, jitted with the layout's shardings and the state donated."""
  return MeshStep(jax.jit(train_step, static_argnums=2, donate_argnums=0,
                          in_shardings=(layout.shardings, layout.batch_shardings),
                          out_shardings=(layout.shardings, sharding.replicated(mesh))), mesh)


def _without_frozen_grads(params, config):
  """`params` with the frozen ones (optim.FROZEN: freeze_patterns, partial_train) behind
  stop_gradient: the optimizer never updates them, so their backward pass is not computed (a
  frozen backbone under a trained head costs a forward pass only)."""
  labels = optim.param_labels(params, config)
  return jax.tree_util.tree_map(
      lambda p, label: jax.lax.stop_gradient(p) if label == optim.FROZEN else p, params, labels)


def make_train_step(task, model, tx, schedule, rules, config):
  """The pure step `train_step(state, batch, kind) -> (state, metrics)`, jitted by the caller.

  state: dict(step, params, model_state, opt_state, rng); batch: the task's example-batch keys;
  `kind` (static) picks the task's loss. Shared by the trainer and mbjax.bench.
  """
  accum = int(config.get('grad_accum_steps', 1) or 1)

  def grads_of(params, model_state, batch, rng, kind):
    def loss(params):
      return task.loss_fn(model, {'params': _without_frozen_grads(params, config),
                                  **model_state}, batch, rng, kind, config)

    with nn.logical_axis_rules(rules):
      (total, (metrics, new_state)), grads = jax.value_and_grad(loss, has_aux=True)(params)
    if (jax.tree_util.tree_structure(dict(new_state)) !=
        jax.tree_util.tree_structure(dict(model_state))):
      raise ValueError(f'task {config.task}: loss_fn returned a model state with collections '
                       f'{sorted(new_state)}, the model has {sorted(model_state)}')
    return grads, dict(metrics, loss=total), dict(new_state)

  def accumulated(state, batch, rng, kind):
    # `accum` equal micro-batches, scanned; the mean of their gradients is the full batch's
    # gradient (losses are batch means), with 1/accum of the activations. The model state (BatchNorm
    # statistics) is updated micro-batch after micro-batch.
    micro = jax.tree_util.tree_map(
        lambda x: x.reshape(accum, x.shape[0] // accum, *x.shape[1:]), batch)

    def body(carry, xs):
      grads, metrics, model_state = carry
      i, mb = xs
      g, m, model_state = grads_of(state['params'], model_state, mb, jax.random.fold_in(rng, i),
                                   kind)
      return (*jax.tree_util.tree_map(jnp.add, (grads, metrics), (g, m)), model_state), None

    shapes = jax.eval_shape(lambda p, ms, mb, r: grads_of(p, ms, mb, r, kind)[:2],
                            state['params'], state['model_state'],
                            jax.tree_util.tree_map(lambda x: x[0], micro), rng)
    zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
    (grads, metrics, model_state), _ = jax.lax.scan(
        body, (*zeros, state['model_state']), (jnp.arange(accum), micro))
    grads, metrics = jax.tree_util.tree_map(lambda x: x / accum, (grads, metrics))
    return grads, metrics, model_state

  def train_step(state, batch, kind):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state['rng']), state['step'])
    if accum == 1:
      grads, metrics, model_state = grads_of(state['params'], state['model_state'], batch, rng,
                                             kind)
    else:
      grads, metrics, model_state = accumulated(state, batch, rng, kind)
    total = metrics.pop('loss')
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    metrics.update(loss=total, grad_norm=_tree_norm(grads), param_norm=_tree_norm(params),
                   update_norm=_tree_norm(updates), lr=schedule(state['step']))
    return dict(step=state['step'] + 1, params=params, model_state=model_state,
                opt_state=opt_state, rng=state['rng']), metrics

  return train_step
