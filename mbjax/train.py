"""The one trainer: setup (mesh -> data -> model/optimizer -> shard -> step) -> restore -> evals
-> loop.

The trainer knows no task: `config.task` names a module implementing `mbjax.tasks.base.Task`,
and everything task-specific (model, batch keys, data, loss, evaluators, pretrained weights,
FLOPs) comes from it. A run can be killed at any moment (SIGKILL) and restarted with the same
command: it resumes from the latest checkpoint and reaches bitwise the same parameters as an
uninterrupted run on CPU. SIGTERM saves and exits 0.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import signal
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax.core import meta

from mbjax import checkpoint as ckpt_lib
from mbjax import compute, cpu_allocator
from mbjax import config_diff
from mbjax import metric_writer
from mbjax import optim, peak_flops, sharding
from mbjax import progress as progress_lib
from mbjax.data import pipelines
from mbjax.evaluate import registry
from mbjax.tasks import base


class NonFiniteLossError(RuntimeError):
  pass


def get_task(config):
  """The task module of `config.task`: a name under mbjax/tasks/ or a dotted module path."""
  name = config.task
  module_name = name if '.' in name else f'mbjax.tasks.{name}'
  try:
    task = importlib.import_module(module_name)
  except ModuleNotFoundError as e:
    if e.name != module_name:
      raise
    tasks_dir = os.path.dirname(base.__file__)
    known = sorted(f[:-3] for f in os.listdir(tasks_dir)
                   if f.endswith('.py') and f not in ('__init__.py', 'base.py'))
    raise ValueError(f'config.task={name!r}: no module {module_name}; tasks: {known} '
                     '(or a dotted module path)') from None
  missing = [f for f in base.TASK_FUNCTIONS if not callable(getattr(task, f, None))]
  if missing:
    raise TypeError(f'task module {module_name} lacks {missing} of the task protocol '
                    '(mbjax/tasks/base.py)')
  return task


def _tree_norm(tree):
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32)))
                      for x in jax.tree_util.tree_leaves(tree)))


class _Preemption:
  """SIGTERM -> save at the next step boundary and exit 0."""

  def __init__(self):
    self.requested = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    logging.warning('SIGTERM received: saving a checkpoint and stopping')
    self.requested = True

  def restore(self):
    signal.signal(signal.SIGTERM, self._previous)


# ------------------------------------------------------------------------------------ state


def _init_input(example) -> jnp.ndarray:
  x = example['input']
  return jnp.zeros((1,) + tuple(x.shape[1:]), x.dtype)


def abstract_variables(model, example):
  """The model's (boxed, logically partitioned) variable shapes, without computing them."""
  return jax.eval_shape(lambda rng: model.init(rng, _init_input(example)), jax.random.key(0))


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
  x = _init_input(example)

  def init_state(rng):
    variables = dict(meta.unbox(model.init(rng, x)))
    params = variables.pop('params')
    return dict(step=jnp.zeros((), jnp.int32), params=params, model_state=variables,
                opt_state=tx.init(params), rng=jax.random.key_data(jax.random.fold_in(rng, 1)))

  with mesh, nn.logical_axis_rules(rules):
    param_sh = sharding.param_shardings(abstract_variables(model, example)['params'], mesh, rules)
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


# ------------------------------------------------------------------------------------- step


def log_due(step: int, total_steps: int, every: int, kind_of) -> bool:
  """Whether the metrics of the `step`-th completed step (index step - 1) are written: every
  `every` steps, at the end, and at the last step of each curriculum phase, so that short phases
  (a few 2D batches per epoch) still appear in the logs and loss curves."""
  if step % every == 0 or step == total_steps:
    return True
  return kind_of(step) != kind_of(step - 1)


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


# ------------------------------------------------------------------------------------ setup


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
  task = get_task(config)
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
  boxed = abstract_variables(model, example)
  tx = optim.make_optimizer(config, params=meta.unbox(boxed['params']), epoch_starts=epoch_starts)
  schedule = optim.schedules(config, epoch_starts=epoch_starts)['lr']
  layout = state_layout(model, tx, example, mesh, rules, config.seed)
  step = jit_train_step(make_train_step(task, model, tx, schedule, rules, config), layout, mesh)
  return Setup(config, mesh, rules, task, model, example, curriculum, total_steps, tx, schedule,
               layout, step)


# ---------------------------------------------------------------------------------- restore


def _init_from(s: Setup, state, path: str):
  """`state` with the task's pretrained weights from `path` and a fresh optimizer state."""
  sh = s.layout.shardings
  variables, _ = s.task.load_pretrained(jax.device_get(variables_of(state)), path)
  variables = dict(variables)
  params = jax.device_put(variables.pop('params'), sh['params'])
  model_state = jax.device_put(variables, sh['model_state'])
  opt_state = jax.jit(s.tx.init, out_shardings=sh['opt_state'])(params)
  return dict(state, params=params, model_state=model_state, opt_state=opt_state)


def _restore_or_init(s: Setup, ckpt, batches, config):
  """(state, data iterator, start step): workdir latest -> `init_from` -> scratch."""
  data_iter = pipelines.make_iterator(batches, num_workers=config.data.num_workers,
                                      prefetch=config.data.prefetch)
  restored = ckpt.restore_latest(s.abstract_state(), data_iter)
  if restored:
    start_step, state, data_restored = restored
    if not data_restored:
      data_iter = pipelines.make_iterator(batches, num_workers=config.data.num_workers,
                                          prefetch=config.data.prefetch, start=start_step)
    logging.info('resumed at step %d', start_step)
    return state, data_iter, start_step
  state = s.init_state()
  if config.get('init_from'):
    state = _init_from(s, state, config.init_from)
  return state, data_iter, 0


# ------------------------------------------------------------------------------- evaluators


def _scalars(results: dict) -> dict:
  """The scalar entries of evaluator results (tables and per-item lists are not logged)."""
  def scalar(v):
    return (isinstance(v, (int, float, np.number)) and not isinstance(v, bool)) or (
        isinstance(v, (np.ndarray, jax.Array)) and v.ndim == 0)
  return {k: float(v) for k, v in results.items() if scalar(v)}


def _run_evals(evaluators, state, step: int, total_steps: int) -> dict[str, dict]:
  """{name: result} of the evaluators due at `step`: all at step 0 and at the last step, the
  others every `every` steps."""
  return {name: fn(variables_of(state)) for name, (every, fn) in evaluators.items()
          if step in (0, total_steps) or (every and step % every == 0)}


def _throughput(s: Setup):
  """(model FLOPs of a train step, peak FLOP/s of a device) for the progress line, or None each
  where unknown; said once in the log."""
  flops = s.task.flops_per_step(s.config)
  if flops is None:
    logging.info('task %s gives no FLOP count: no TFLOP/s or MFU in the progress line',
                 s.config.task)
    return None, None
  dtype = 'bfloat16' if 'bfloat16' in str(s.config.model.get('dtype', '')) else 'float32'
  try:
    return flops, peak_flops.peak_flops_per_device(dtype)[0]
  except KeyError as e:  # an accelerator missing from the peak table
    logging.info('no MFU in the progress line: %s', e)
    return flops, None


def _allocator_tags() -> tuple[str, ...]:
  """('malloc glibc-retain',) or ('malloc system',) on CPU (mbjax/cpu_allocator.py), else ()."""
  return (f'malloc {cpu_allocator.active()}',) if jax.default_backend() == 'cpu' else ()


# ------------------------------------------------------------------------------------- loop


def train_and_evaluate(config, workdir: str) -> dict:
  """Runs (or resumes) training; returns the final metrics summary (with `state` and `model`)."""
  started = time.perf_counter()
  os.makedirs(workdir, exist_ok=True)
  s = setup(config)
  batches = pipelines.HostBatches(s.curriculum, seed=config.data_seed,
                                  process_index=jax.process_index(),
                                  process_count=jax.process_count())
  every_epochs = config.checkpoint.get('snapshot_every_epochs', 0)
  ckpt = ckpt_lib.Checkpointer(workdir, keep=config.checkpoint.keep,
                               async_save=config.checkpoint.async_save,
                               best_metric=config.get('best_metric') or None,
                               best_mode=config.get('best_mode', 'min'),
                               snapshots=every_epochs > 0)
  state, data_iter, start_step = _restore_or_init(s, ckpt, batches, config)
  if start_step:
    try:
      config_diff.check_resume(workdir, config, start_step, is_primary=jax.process_index() == 0)
    except ValueError:
      ckpt.close()
      raise
  if start_step and start_step >= s.total_steps:
    ckpt.close()
    return dict(_finished(workdir, start_step), state=state, model=s.model)

  # The metrics of the restored step were written before its checkpoint: keep them on resume.
  writer = metric_writer.MetricWriter(workdir, is_primary=jax.process_index() == 0,
                                      resume_step=start_step + 1 if start_step else 0)
  writer.write_config(config.to_dict())
  flops, peak = _throughput(s)
  meter = compute.ComputeMeter(params=s.layout.abstract['params'], example=s.example,
                               flops_per_step=flops, workdir=workdir, start_step=start_step,
                               started=started)
  progress = progress_lib.Progress(s.total_steps, start_step=start_step,
                                   clips_per_step=config.batch_size, desc=config.task,
                                   num_devices=s.mesh.size, flops_per_step=flops,
                                   peak_flops_per_device=peak, show=('loss', 'lr'),
                                   tags=_allocator_tags())
  loop = _Loop(s, workdir, batches, ckpt, writer, progress,
               s.task.make_evaluators(config, s.model), meter)
  preempt = _Preemption()
  try:
    state, step = loop.run(state, data_iter, start_step, preempt)
  finally:
    preempt.restore()
    ckpt.close()
    progress.close()
  rates = progress.rates()
  summary = dict(step=step, total_steps=s.total_steps, preempted=preempt.requested,
                 **{**loop.last, **loop.evals, **rates, **meter.summary(step, rates)})
  writer.write_summary(summary)
  writer.close()
  return dict(summary, state=state, model=s.model)


class _Loop:
  """The training loop of `train_and_evaluate`: steps, metrics one step behind, evaluators and
  saves at their steps, preemption."""

  def __init__(self, s: Setup, workdir, batches, ckpt, writer, progress, evaluators, meter):
    self.s, self.workdir, self.batches, self.ckpt, self.meter = s, workdir, batches, ckpt, meter
    self.writer, self.progress, self.evaluators = writer, progress, evaluators
    self.last, self.evals = {}, {}  # the latest step's metrics, the latest evaluator results
    self.snapshot_steps = snapshot_steps(
        s.curriculum, s.config.checkpoint.get('snapshot_every_epochs', 0), s.total_steps)

  def read(self, done) -> None:
    """A finished step's (step, metrics): checked finite, logged when due, shown."""
    if done is None:
      return
    step, m = done
    if not np.isfinite(m['loss']):
      raise NonFiniteLossError(_non_finite_message(m['loss'], step, self.batches, self.ckpt,
                                                   self.workdir))
    config = self.s.config
    m = {**m, **self.meter.at(step)}
    if log_due(step, self.s.total_steps, config.log_every_steps, self.s.curriculum.kind_of):
      self.writer.scalars(step, m)
    self.progress.update(step, m)
    self.last = m

  def evaluate(self, state, step: int) -> None:
    with self.progress.pause():
      raw = _run_evals(self.evaluators, state, step, self.s.total_steps)
      results = {f'{name}/{k}': v for name, result in raw.items()
                 for k, v in _scalars(result).items()}
      if jax.process_index() == 0:  # pictures of results (e.g. a confusion matrix)
        for name, result in raw.items():
          registry.save_artifacts(self.s.config, name, result, self.workdir, step)
      if results:
        self.writer.scalars(step, results)
        self.evals.update(results)
        if step:
          self.ckpt.save_best(step, state, results)

  def run(self, state, data_iter, step: int, preempt):
    """(state, step) after training from `step` to the end, or to a SIGTERM."""
    s, total = self.s, self.s.total_steps
    if step == 0 and self.evaluators:
      self.evaluate(state, 0)
    while step < total and not preempt.requested:
      host = next(data_iter)
      if int(host['step'][0]) != step:
        raise RuntimeError(f'data pipeline at step {int(host["step"][0])}, trainer at {step}')
      batch = sharding.global_batch(_batch_of(host, s.example, s.config.task), s.mesh)
      state, metrics = s.train_step(state, batch, s.curriculum.kind_of(step))
      step += 1
      self.read(self.writer.push(step, metrics))
      is_save = step % s.config.checkpoint.every_steps == 0 or step == total
      evals_due = step == total or any(every and step % every == 0
                                       for every, _ in self.evaluators.values())
      is_snapshot = step in self.snapshot_steps
      if is_save or evals_due or is_snapshot:
        self.read(self.writer.pop())  # never save or evaluate a state whose loss is not finite
        if evals_due:
          self.evaluate(state, step)
        with self.progress.pause():
          if is_snapshot:  # before the regular save: a resume never skips past a snapshot
            self.ckpt.save_snapshot(step, state)
          if is_save:
            self.ckpt.save(step, state, data_iter)
    self.read(self.writer.pop())
    if preempt.requested and self.ckpt.latest_step() != step:
      self.ckpt.save(step, state, data_iter, force=True)
    return state, step


def snapshot_steps(curriculum, every_epochs: int, last_step: int) -> set[int]:
  """The steps that end every `every_epochs`-th epoch (1-based: epochs N, 2N, ...) of the
  curriculum, up to `last_step`; empty for 0."""
  if every_epochs <= 0:
    return set()
  ends = [*curriculum.epoch_starts[1:], curriculum.total_steps]  # epoch e ends where e + 1 starts
  return {end for e, end in enumerate(ends) if (e + 1) % every_epochs == 0 and end <= last_step}


def _finished(workdir: str, step: int) -> dict:
  """The summary of a run that is already finished: every artefact is left as it is."""
  print(f'{workdir}: already finished at step {step}; nothing to do (summary, metrics and '
        'checkpoints left as they are)', flush=True)
  path = os.path.join(workdir, 'summary.json')
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  return dict(step=step, total_steps=step, preempted=False)


def _non_finite_message(loss, step: int, batches, ckpt, workdir: str) -> str:
  """What a non-finite loss at (1-based) `step` came from, and what is left to resume from."""
  curriculum = batches.curriculum
  epoch, phase_id, _ = curriculum.locate(step - 1)
  records = [int(i) for i in batches.indices(step - 1)]
  shown = ', '.join(map(str, records[:16])) + (' ...' if len(records) > 16 else '')
  latest = ckpt.latest_step()
  kept = (f'the last good checkpoint (step {latest}) is left intact in {workdir}/checkpoints'
          if latest is not None else 'no checkpoint yet')
  return (f'non-finite loss ({loss}) at step {step} (epoch {epoch}, data source '
          f'{curriculum.phases[phase_id].name!r}, this process\'s records [{shown}]); {kept}. '
          'Lower the learning rate or check those records.')


def _batch_of(host: dict, example: dict, task: str) -> dict:
  """The example-batch keys of a host batch; a curriculum without one of them is a task bug."""
  missing = sorted(set(example) - set(host))
  if missing:
    raise ValueError(f'task {task}: the curriculum\'s batches lack {missing} of example_batch '
                     f'(they have {sorted(k for k in host if k != "step")})')
  return {k: host[k] for k in example}
