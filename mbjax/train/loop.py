"""The training loop: restore (workdir latest -> init_from -> scratch) -> evaluators -> steps,
with metrics, saves, evaluations and snapshots at their steps.

The trainer knows no task: `config.task` names a module implementing `mbjax.tasks.base.Task`,
and everything task-specific (model, batch keys, data, loss, evaluators, pretrained weights,
FLOPs) comes from it. A run can be killed at any moment (SIGKILL) and restarted with the same
command: it resumes from the latest checkpoint and reaches bitwise the same parameters as an
uninterrupted run on CPU. SIGTERM and Ctrl-C save at the next step and stop (a second Ctrl-C
exits at once, mbjax.train.faults). One trainer at a time owns a workdir (mbjax.train.workdir).
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import logging

from mbjax import checkpoint as ckpt_lib
from mbjax.cli import allocator as cpu_allocator
from mbjax.cli import dot_path
from mbjax.data import pipelines
from mbjax.evaluate import registry
from mbjax.logs import metric_writer
from mbjax.logs import progress as progress_lib
from mbjax.train import checks, compute, config_diff, faults, peak_flops, sharding
from mbjax.train import workdir as workdir_lib
from mbjax.train.build import Setup, setup
from mbjax.train.state import variables_of


class NonFiniteLossError(RuntimeError):
  pass


def log_due(step: int, total_steps: int, every: int, kind_of) -> bool:
  """Whether the metrics of the `step`-th completed step (index step - 1) are written: every
  `every` steps, at the end, and at the last step of each curriculum phase, so that short phases
  (a few 2D batches per epoch) still appear in the logs and loss curves."""
  if step % every == 0 or step == total_steps:
    return True
  return kind_of(step) != kind_of(step - 1)


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
  def fresh_iterator(start=0):
    return pipelines.make_iterator(batches, num_workers=config.data.num_workers,
                                   prefetch=config.data.prefetch, start=start)

  data_iter = fresh_iterator()
  restored = ckpt.restore_latest(s.abstract_state(), data_iter)
  if not restored:
    state = s.init_state()
    if config.get('init_from'):
      state = _init_from(s, state, config.init_from)
    # A damaged checkpoint can have moved the iterator before its state failed to read.
    return state, fresh_iterator(), 0
  start_step, state, data_restored = restored
  if not data_restored:
    data_iter = fresh_iterator(start_step)
  logging.info('resumed at step %d', start_step)
  return state, data_iter, start_step


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


def _cpu_tags() -> tuple[str, ...]:
  """On CPU, the allocator and the matmul path of this process ('malloc glibc-retain',
  'dot ynnpack': mbjax/cli/allocator.py, mbjax/cli/dot_path.py); else ()."""
  if jax.default_backend() != 'cpu':
    return ()
  return (f'malloc {cpu_allocator.active()}', f'dot {dot_path.active()}')


# ------------------------------------------------------------------------------------- loop


def train_and_evaluate(config, workdir: str) -> dict:
  """Runs (or resumes) training; returns the final metrics summary (with `state` and `model`).

  The config's trainer fields are checked and the run is built before the workdir is touched;
  then the workdir is locked for this run (`mbjax.files.lock.LockHeld` names the trainer that
  holds it). A failure for lack of disk space raises `faults.WorkdirWriteError`.
  """
  started = time.perf_counter()
  checks.check_trainer_fields(config)
  s = setup(config)
  with workdir_lib.claim(workdir) as held:
    try:
      return _train(s, config, workdir, started, held)
    except Exception as e:  # noqa: BLE001 - only a disk's failure is translated
      storage = faults.storage_error(e, workdir)
      if storage is None:
        raise
      raise storage from e


def _train(s: Setup, config, workdir: str, started: float, held) -> dict:
  """train_and_evaluate's run in its claimed workdir (`held`: its lock, None off process 0)."""
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
  if not start_step and jax.process_index() == 0:
    workdir_lib.set_aside_history(workdir)  # never cut a run's history: keep it beside

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
                                   tags=_cpu_tags())
  loop = _Loop(s, workdir, batches, ckpt, writer, progress,
               s.task.make_evaluators(config, s.model), meter)
  preempt = faults.Stop(on_abort=held.release if held is not None else None)
  try:
    state, step = loop.run(state, data_iter, start_step, preempt)
  finally:
    try:  # still under `preempt`: a Ctrl-C while the last save completes is not a traceback
      ckpt.close()
      progress.close()
    finally:
      preempt.restore()
  rates = progress.rates()
  summary = dict(step=step, total_steps=s.total_steps, preempted=preempt.requested,
                 stopped_by=preempt.signal,
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
