"""What a run is built from: mesh and logical rules, the task, model, optimizer, the state
layout (shapes and shardings) and the jitted step, shared by the trainer, the train bench,
export and sweeps."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import optax
from flax.core import meta

from mbjax import models
from mbjax.data import pipelines
from mbjax.tasks import base
from mbjax.train import optim, sharding
from mbjax.train.state import StateLayout, state_layout
from mbjax.train.step import MeshStep, jit_train_step, make_train_step


@dataclasses.dataclass
class Setup:
  """Everything a run is built from: used by the trainer, the train bench, export and sweeps."""

  config: Any
  mesh: jax.sharding.Mesh
  rules: tuple
  task: Any  # the task module (mbjax.tasks.base.Task)
  model: nn.Module
  example: dict  # the task's example batch: key -> ShapeDtypeStruct
  curriculum: pipelines.Curriculum | None  # None when built without data (benches)
  total_steps: int
  tx: optax.GradientTransformation
  schedule: Any
  layout: StateLayout
  train_step: MeshStep

  def init_state(self):
    """A freshly initialised, sharded train state."""
    return jax.jit(self.layout.init, out_shardings=self.layout.shardings)(
        jax.random.key(self.config.seed))

  def abstract_state(self):
    """The train state's shapes with their shardings (a restore target)."""
    return jax.tree_util.tree_map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), self.layout.abstract,
        self.layout.shardings)


def make_mesh(config):
  """The config's mesh and logical rules; the batch must split over its batch shards."""
  # `mesh_devices` > 0 uses only the first N devices (tests compare meshes of 1 and 8 fake CPUs).
  devices = jax.devices()[:config.mesh_devices] if config.get('mesh_devices', 0) else None
  mesh = sharding.make_mesh(dict(config.mesh), devices=devices)
  fsdp, tensor = config.get('fsdp', False), config.get('tensor_parallel', False)
  sharding.check_parallelism(mesh, fsdp=fsdp, tensor=tensor)
  rules = sharding.logical_rules(fsdp=fsdp, tensor=tensor)
  if config.batch_size < 1:
    raise ValueError(f'config.batch_size={config.batch_size}: must be a positive integer')
  batch_ways = mesh.shape['data'] * mesh.shape['fsdp']
  if config.batch_size % batch_ways:
    raise ValueError(f'config.batch_size={config.batch_size} does not split over the mesh\'s '
                     f'{batch_ways} batch shards (data x fsdp of {dict(mesh.shape)}); use a '
                     f'multiple of {batch_ways}, or set config.mesh / config.mesh_devices')
  return mesh, rules


def setup(config, *, with_data: bool = True) -> Setup:
  """Mesh, task, model, curriculum, optimizer, state layout and jitted step of a config.

  `with_data=False` skips the curriculum (benches on synthetic batches): one epoch from step 0.
  """
  mesh, rules = make_mesh(config)
  task = base.get_task(config)
  base.configure(task, config)
  curriculum = task.make_curriculum(config) if with_data else None
  epoch_starts = curriculum.epoch_starts if curriculum else [0]
  total_steps = curriculum.total_steps if curriculum else 0
  if config.get('total_steps', -1) > 0:
    total_steps = min(total_steps, config.total_steps) if curriculum else config.total_steps

  model = task.make_model(config)
  example = dict(task.example_batch(config))
  if 'input' not in example:
    raise ValueError(f'task {config.task}: example_batch has no `input` key ({sorted(example)})')
  boxed = models.abstract_variables(model, example)
  tx = optim.make_optimizer(config, params=meta.unbox(boxed['params']), epoch_starts=epoch_starts)
  schedule = optim.schedules(config, epoch_starts=epoch_starts)['lr']
  layout = state_layout(model, tx, example, mesh, rules, config.seed)
  step = jit_train_step(make_train_step(task, model, tx, schedule, rules, config), layout, mesh)
  return Setup(config, mesh, rules, task, model, example, curriculum, total_steps, tx, schedule,
               layout, step)
