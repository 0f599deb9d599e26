"""The one trainer: mesh -> data -> model/optimizer -> shard -> step -> restore -> evals -> loop.

Tasks differ only in a small module chosen by `config.task` (see mbjax/tasks/). A run can be killed
at any moment (SIGKILL) and restarted with the same command: it resumes from the latest checkpoint
and reaches bitwise the same parameters as an uninterrupted run on CPU. SIGTERM saves and exits 0.
"""

from __future__ import annotations

import dataclasses
import importlib
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
from mbjax import metric_writer
from mbjax import progress as progress_lib
from mbjax import optim, sharding
from mbjax.data import pipelines


class NonFiniteLossError(RuntimeError):
  pass


def _task(config):
  return importlib.import_module(f'mbjax.tasks.{config.task}')


def _tree_norm(tree):
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32)))
                      for x in jax.tree_util.tree_leaves(tree)))


def _init_params_from(path: str, params, model_kind: str = 'pose'):
  """Params initialised from an official .bin, an mbjax.convert dir or a trainer workdir.

  Variables whose path and shape match are taken; the rest keep their fresh init (e.g. a new head).
  """
  from mbjax import convert
  if os.path.isfile(path):
    source = convert.official_to_variables(convert.load_official(path), model_kind)['params']
  elif os.path.exists(os.path.join(path, 'config.json')) and os.path.isdir(
      os.path.join(path, 'variables')):
    source = meta.unbox(convert.restore(path)[1])['params']
  else:
    directory = os.path.join(path, 'checkpoints') if os.path.isdir(
        os.path.join(path, 'checkpoints')) else path
    import orbax.checkpoint as ocp
    with ocp.CheckpointManager(os.path.abspath(directory), item_names=('state', 'data')) as m:
      step = m.latest_step()
    if step is None:
      raise FileNotFoundError(f'init_from={path}: no checkpoint found')
    # Restore onto this process's first device, whatever mesh the run was saved from.
    state_path = os.path.join(os.path.abspath(directory), str(step), 'state')
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    with ocp.StandardCheckpointer() as ckptr:
      target = jax.tree_util.tree_map(
          lambda md: jax.ShapeDtypeStruct(md.shape, md.dtype, sharding=device),
          ckptr.metadata(state_path).item_metadata)
      source = ckptr.restore(state_path, target)['params']
  params = meta.unbox(params)
  from mbjax.models.dstformer import scan_params, unscan_params
  if 'layers' in params and 'layers' not in source:  # scanned model, unscanned weights
    depth = jax.tree_util.tree_leaves(params['layers'])[0].shape[0]
    source = scan_params(source, depth)
  elif 'layers' in source and 'layers' not in params:
    source = unscan_params(source)
  flat_src = {jax.tree_util.keystr(k): v for k, v in
              jax.tree_util.tree_flatten_with_path(source)[0]}
  taken, kept = [], []

  def pick(keypath, value):
    key = jax.tree_util.keystr(keypath)
    if key in flat_src and tuple(np.shape(flat_src[key])) == tuple(value.shape):
      taken.append(key)
      return jnp.asarray(flat_src[key], value.dtype)
    kept.append(key)
    return value

  params = jax.tree_util.tree_map_with_path(pick, params)
  logging.info('init_from %s: %d tensors loaded, %d kept from init: %s', path, len(taken),
               len(kept), kept[:10])
  if not taken:
    raise ValueError(f'init_from={path}: no parameter matched the model')
  return params


def _throughput_accounting(model, batches, curriculum, config):
  """(analytic model FLOPs of a 3D-phase train step, peak FLOP/s per device) for TFLOP/s and MFU
  in the progress line; (None, None) where unknown. Shorter 2D-phase clips make those steps
  cheaper than this figure."""
  from mbjax.bench.flops import dstformer_forward_flops
  from mbjax.bench.peak import peak_flops_per_device
  try:
    step = next(s for s in range(curriculum.total_steps)
                if curriculum.kind_of(s) == pipelines.KIND_3D)
    frames = curriculum.phases[curriculum.locate(step)[1]].source[0]
    T = max(np.shape(v)[0] for v in frames.values() if np.ndim(v) == 3)
    fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)
              if f.name not in ('parent', 'name')}
    flops = 3 * dstformer_forward_flops(batch=config.batch_size, frames=T, **fields)
    dtype = 'bfloat16' if 'bfloat16' in str(config.model.get('dtype', '')) else 'float32'
    return flops, peak_flops_per_device(dtype)[0]
  except Exception as e:  # accounting is informative only
    logging.info('no TFLOP/s / MFU accounting: %s', e)
    return None, None


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


def abstract_params(model):
  """The model's (boxed, logically partitioned) parameter shapes, without computing them."""
  example = jnp.zeros((1, 1, model.num_joints, model.dim_in), jnp.float32)
  return jax.eval_shape(lambda rng: model.init(rng, example)['params'], jax.random.key(0))


@dataclasses.dataclass
class StateLayout:
  """How the train state dict(step, params, opt_state, rng) is built and sharded over `mesh`."""

  init: Any  # rng -> state (jit it with out_shardings=shardings)
  abstract: Any  # eval_shape of `init`
  shardings: Any  # NamedShardings matching `abstract`
  batch_shardings: dict


def state_layout(model, tx, boxed_params, mesh, rules, seed: int) -> StateLayout:
  """Partitioned init: shapes by eval_shape, shardings from the logical axis names."""
  example = jnp.zeros((1, 1, model.num_joints, model.dim_in), jnp.float32)

  def init_state(rng):
    params = meta.unbox(model.init(rng, example)['params'])
    return dict(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                rng=jax.random.key_data(jax.random.fold_in(rng, 1)))

  with mesh, nn.logical_axis_rules(rules):
    param_sh = sharding.param_shardings(boxed_params, mesh, rules)
  abstract = jax.eval_shape(init_state, jax.random.key(seed))
  opt_sh = sharding.opt_state_shardings(tx, abstract['opt_state'], param_sh,
                                        sharding.replicated(mesh))
  shardings = dict(step=sharding.replicated(mesh), params=param_sh, opt_state=opt_sh,
                   rng=sharding.replicated(mesh))
  batch_sh = {k: sharding.batch_sharding(mesh, 4) for k in ('input', 'target', 'conf')}
  return StateLayout(init_state, abstract, shardings, batch_sh)


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


def make_train_step(task, model, tx, schedule, rules, config):
  """The pure step `train_step(state, batch, kind) -> (state, metrics)`, jitted by the caller.

  state: dict(step, params, opt_state, rng); batch: `input`/`target` (B, T, J, 3), `conf`
  (B, T, J, 1); `kind` (static) picks the task's loss. Shared by the trainer and mbjax.bench.
  """

  accum = int(config.get('grad_accum_steps', 1) or 1)

  def grads_of(params, batch, rng, kind):
    def loss(params):
      return task.loss_fn(model, params, batch, rng, kind, config)

    with nn.logical_axis_rules(rules):
      (total, metrics), grads = jax.value_and_grad(loss, has_aux=True)(params)
    return grads, dict(metrics, loss=total)

  def train_step(state, batch, kind):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state['rng']), state['step'])
    if accum == 1:
      grads, metrics = grads_of(state['params'], batch, rng, kind)
    else:
      # Gradient accumulation: `accum` equal micro-batches, scanned; the mean of their gradients
      # is the full batch's gradient (losses are batch means), with 1/accum of the activations.
      micro = jax.tree_util.tree_map(
          lambda x: x.reshape(accum, x.shape[0] // accum, *x.shape[1:]), batch)

      def body(carry, xs):
        i, mb = xs
        g, m = grads_of(state['params'], mb, jax.random.fold_in(rng, i), kind)
        return jax.tree_util.tree_map(jnp.add, carry, (g, m)), None

      shapes = jax.eval_shape(lambda p, mb, r: grads_of(p, mb, r, kind), state['params'],
                              jax.tree_util.tree_map(lambda x: x[0], micro), rng)
      zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
      (grads, metrics), _ = jax.lax.scan(body, zeros, (jnp.arange(accum), micro))
      grads, metrics = jax.tree_util.tree_map(lambda x: x / accum, (grads, metrics))
    total = metrics.pop('loss')
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    metrics.update(loss=total, grad_norm=_tree_norm(grads), param_norm=_tree_norm(params),
                   update_norm=_tree_norm(updates), lr=schedule(state['step']))
    return dict(step=state['step'] + 1, params=params, opt_state=opt_state,
                rng=state['rng']), metrics

  return train_step


def train_and_evaluate(config, workdir: str) -> dict:
  """Runs (or resumes) training; returns the final metrics summary."""
  os.makedirs(workdir, exist_ok=True)
  task = _task(config)
  is_primary = jax.process_index() == 0

  # ---------------------------------------------------------------------------------- mesh
  # `mesh_devices` > 0 uses only the first N devices (tests compare meshes of 1 and 8 fake CPUs).
  devices = jax.devices()[:config.mesh_devices] if config.get('mesh_devices', 0) else None
  mesh = sharding.make_mesh(dict(config.mesh), devices=devices)
  rules = sharding.logical_rules(fsdp=config.get('fsdp', False),
                                 tensor=config.get('tensor_parallel', False))
  batch_ways = mesh.shape['data'] * mesh.shape['fsdp']
  if config.batch_size % batch_ways:
    raise ValueError(f'config.batch_size={config.batch_size} does not split over the mesh\'s '
                     f'{batch_ways} batch shards (data x fsdp of {dict(mesh.shape)}); use a '
                     f'multiple of {batch_ways}, or set config.mesh / config.mesh_devices')

  # ---------------------------------------------------------------------------------- data
  curriculum = task.make_curriculum(config)
  batches = pipelines.HostBatches(curriculum, seed=config.data_seed,
                                  process_index=jax.process_index(),
                                  process_count=jax.process_count())
  total_steps = curriculum.total_steps
  if config.get('total_steps', -1) > 0:
    total_steps = min(total_steps, config.total_steps)

  # ------------------------------------------------------------------- model / optimizer
  model = task.make_model(config)
  schedule = optim.schedules(config, epoch_starts=curriculum.epoch_starts)['lr']
  boxed_params = abstract_params(model)
  tx = optim.make_optimizer(config, params=meta.unbox(boxed_params),
                            epoch_starts=curriculum.epoch_starts)

  # --------------------------------------------------------------------------------- shard
  layout = state_layout(model, tx, boxed_params, mesh, rules, config.seed)
  init_state, abstract_state, state_sh = layout.init, layout.abstract, layout.shardings
  param_sh, opt_sh, batch_sh = state_sh['params'], state_sh['opt_state'], layout.batch_shardings

  # ---------------------------------------------------------------------------------- step
  p_train_step = jit_train_step(make_train_step(task, model, tx, schedule, rules, config), layout,
                                mesh)

  # ------------------------------------------------------------------------------- restore
  ckpt = ckpt_lib.Checkpointer(workdir, keep=config.checkpoint.keep,
                               async_save=config.checkpoint.async_save,
                               best_metric=config.get('best_metric') or None)
  data_iter = pipelines.make_iterator(batches, num_workers=config.data.num_workers,
                                      prefetch=config.data.prefetch)
  start_step = ckpt.latest_step() or 0
  abstract_sharded = jax.tree_util.tree_map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, state_sh)
  if start_step:
    state, data_restored = ckpt.restore(start_step, abstract_sharded, data_iter)
    if not data_restored:
      data_iter = pipelines.make_iterator(batches, num_workers=config.data.num_workers,
                                          prefetch=config.data.prefetch, start=start_step)
    logging.info('resumed from %s at step %d', workdir, start_step)
  else:
    state = jax.jit(init_state, out_shardings=state_sh)(jax.random.key(config.seed))
    if config.get('init_from'):
      params = _init_params_from(config.init_from, jax.device_get(state['params']))
      params = jax.device_put(params, param_sh)
      state = dict(state, params=params, opt_state=jax.jit(tx.init, out_shardings=opt_sh)(params))

  # ---------------------------------------------------------------------------- evaluators
  evaluators = task.make_evaluators(config, model) if hasattr(task, 'make_evaluators') else {}

  def run_evals(step):
    results = {}
    for name, (every, fn) in evaluators.items():
      if step == total_steps or (every and step % every == 0):
        for k, v in fn(state['params']).items():
          results[f'{name}/{k}'] = v
    return results

  # ---------------------------------------------------------------------------------- loop
  # The metrics of the restored step were written before its checkpoint: keep them on resume.
  writer = metric_writer.MetricWriter(workdir, is_primary=is_primary,
                                      resume_step=start_step + 1 if start_step else 0)
  writer.write_config(config.to_dict())
  flops, peak = _throughput_accounting(model, batches, curriculum, config)
  progress = progress_lib.Progress(total_steps, start_step=start_step,
                                   clips_per_step=config.batch_size, desc=config.task,
                                   num_devices=mesh.size, flops_per_step=flops,
                                   peak_flops_per_device=peak, show=('loss', 'lr'))
  preempt = _Preemption()
  pending = None  # (step, metrics) dispatched but not yet read: read one step behind
  last = {}
  history_eval = {}

  def drain(pending):
    step, m = pending
    m = metric_writer.to_float_dict(m)
    if not np.isfinite(m['loss']):
      raise NonFiniteLossError(
          f'non-finite loss ({m["loss"]}) at step {step}; the last good checkpoint '
          f'(step {ckpt.latest_step()}) is left intact in {workdir}/checkpoints. Lower the '
          'learning rate or check the data of that step.')
    if log_due(step, total_steps, config.log_every_steps, curriculum.kind_of):
      writer.scalars(step, m)
    progress.update(step, m)
    return m

  step = start_step
  try:
    if start_step == 0 and evaluators:
      with progress.pause():
        history_eval.update(run_evals(0))
        writer.scalars(0, history_eval)
    while step < total_steps:
      if preempt.requested:
        break
      host = next(data_iter)
      if int(host['step'][0]) != step:
        raise RuntimeError(f'data pipeline at step {int(host["step"][0])}, trainer at {step}')
      kind = curriculum.kind_of(step)
      batch = sharding.global_batch({k: host[k] for k in batch_sh}, mesh)
      state, m = p_train_step(state, batch, kind)
      step += 1
      if pending is not None:
        last = drain(pending)
      pending = (step, m)
      is_save = step % config.checkpoint.every_steps == 0 or step == total_steps
      evals_due = any(every and step % every == 0 for every, _ in evaluators.values())
      if is_save or evals_due or step == total_steps:
        last = drain(pending)  # never save or evaluate a state whose loss is not finite
        pending = None
        with progress.pause():
          if evals_due or step == total_steps:
            results = run_evals(step)
            if results:
              writer.scalars(step, results)
              history_eval.update(results)
              ckpt.save_best(step, state, results)
          if is_save:
            ckpt.save(step, state, data_iter)
    if pending is not None:
      last = drain(pending)
    if preempt.requested and ckpt.latest_step() != step:
      ckpt.save(step, state, data_iter, force=True)
  finally:
    preempt.restore()
    ckpt.close()
    progress.close()
  summary = dict(step=step, total_steps=total_steps, preempted=preempt.requested,
                 **{k: v for k, v in last.items()}, **history_eval, **progress.rates())
  writer.write_summary(summary)
  writer.close()
  return dict(summary, state=state, model=model)
