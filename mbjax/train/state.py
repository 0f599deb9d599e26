"""The train state dict(step, params, model_state, opt_state, rng): how it is initialised and
sharded (`StateLayout`), and the model variables it holds."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import meta

from mbjax import models
from mbjax.train import sharding


@dataclasses.dataclass
class StateLayout:
  """How the train state dict(step, params, model_state, opt_state, rng) is built and sharded."""

  init: Any  # rng -> state (jit it with out_shardings=shardings)
  abstract: Any  # eval_shape of `init`
  shardings: Any  # NamedShardings matching `abstract`
  batch_shardings: dict  # one per key of the task's example batch


def state_layout(model, tx, example, mesh, rules, seed: int) -> StateLayout:
  """Partitioned init: shapes by eval_shape, shardings from the logical axis names. The model
  state (e.g. BatchNorm statistics) is small and replicated."""
  x = models.init_input(example)

  def init_state(rng):
    variables = dict(meta.unbox(model.init(rng, x)))
    params = variables.pop('params')
    return dict(step=jnp.zeros((), jnp.int32), params=params, model_state=variables,
                opt_state=tx.init(params), rng=jax.random.key_data(jax.random.fold_in(rng, 1)))

  with mesh, nn.logical_axis_rules(rules):
    param_sh = sharding.param_shardings(models.abstract_variables(model, example)['params'], mesh,
                                        rules)
  abstract = jax.eval_shape(init_state, jax.random.key(seed))
  replicated = sharding.replicated(mesh)
  opt_sh = sharding.opt_state_shardings(tx, abstract['opt_state'], param_sh, replicated)
  shardings = dict(step=replicated, params=param_sh,
                   model_state=jax.tree_util.tree_map(lambda _: replicated,
                                                      abstract['model_state']),
                   opt_state=opt_sh, rng=replicated)
  batch_sh = {k: sharding.batch_sharding(mesh, len(v.shape)) for k, v in example.items()}
  return StateLayout(init_state, abstract, shardings, batch_sh)


def variables_of(state) -> dict:
  """The model's full variables (params and model state) in a train state."""
  return {'params': state['params'], **state['model_state']}
