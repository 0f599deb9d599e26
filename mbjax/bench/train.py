"""`python -m mbjax.bench train`: the trainer's own step on synthetic data of a config's shapes.

  python -m mbjax.bench train --config=configs/pretrain.py:tiny,runlocal --frames 27   # CPU
  python -m mbjax.bench train --config=configs/pretrain.py:release --config.model.dtype=bfloat16 \\
      --config.mesh.fsdp=4 --config.fsdp=True --steps 20

Builds the state, shardings and jitted step with the trainer's own `train.setup` (same task,
mesh, logical rules, optimizer and step), feeds one device-resident random batch of the task's
example-batch shapes (clips cut to `--frames`) and times real steps. The last line printed is
JSON with `step_s`, `clips_per_s` and `frames_per_s` (global, frames of every person's
sequence), per-device `tflops_per_s_xla` (XLA's cost analysis
of the compiled step) and `tflops_per_s_analytic` (the task's `flops_per_step` at its own clip
length, else 3x the backbone's analytic forward FLOPs: `analytic_source`), `mfu`
(analytic over the per-device peak of mbjax/train/peak_flops.py) and `peak_memory_bytes`.
"""

from __future__ import annotations

import resource
import time

import jax
import numpy as np

from mbjax import train as trainer
from mbjax.train import peak_flops as peak
from mbjax.models.flops import dstformer_forward_flops, xla_flops
from mbjax.models import DSTformer
from mbjax.data import pipelines


def _backbone(model) -> DSTformer:
  return model if isinstance(model, DSTformer) else model.backbone


def _peak_memory() -> tuple[int, str]:
  """(bytes, source): the largest device peak where the backend reports one, else max RSS."""
  peaks = []
  for device in jax.local_devices():
    try:
      stats = device.memory_stats() or {}
    except Exception:  # CPU devices have no allocator statistics
      stats = {}
    if 'peak_bytes_in_use' in stats:
      peaks.append(int(stats['peak_bytes_in_use']))
  if peaks:
    return max(peaks), 'device peak_bytes_in_use (max over local devices)'
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'process max RSS'


def synthetic_batch(example: dict, frames: int, rng: np.random.Generator) -> dict:
  """Random host arrays for every key of a task's example batch, clips cut to `frames`.

  The time axis of `input` is the third from last ((B, T, J, C) or (B, M, T, J, C)); another key
  of three or more axes whose axis 1 has the input's length (e.g. the mesh task's `theta`
  (B, T, 82)) is cut there too.
  """
  length = example['input'].shape[-3]

  def make(spec):
    shape = list(spec.shape)
    if len(shape) >= 4:
      shape[-3] = frames
    elif len(shape) == 3 and shape[1] == length:
      shape[1] = frames
    if np.issubdtype(spec.dtype, np.integer):
      return rng.integers(0, 2, shape).astype(spec.dtype)
    return rng.uniform(0, 1, shape).astype(spec.dtype)  # also valid confidences
  return {k: make(v) for k, v in example.items()}


def run(args) -> dict:
  from ml_collections import config_flags
  config = args.config
  config_arg = config_flags.get_config_filename(args['config'])
  overrides = {k: v for k, v in config_flags.get_override_values(args['config']).items()}
  # The trainer's own setup without data: same mesh, rules, optimizer, layout and jitted step.
  s = trainer.setup(config, with_data=False)
  model, mesh = s.model, s.mesh
  frames = args.frames or s.example['input'].shape[-3]  # the task's own clip length
  B = config.batch_size
  kind = args.kind or getattr(s.task, 'KIND', pipelines.KIND_3D)
  # The backbone sees every sequence of a clip: B for (B, T, J, C), B x M for (B, M, T, J, C).
  sequences = B * int(np.prod(s.example['input'].shape[1:-3], dtype=np.int64))
  state = s.init_state()
  host = synthetic_batch(s.example, frames, np.random.default_rng(0))
  batch = {k: jax.device_put(v, s.layout.batch_shardings[k]) for k, v in host.items()}

  t0 = time.perf_counter()
  compiled = s.train_step.lower(state, batch, kind).compile()
  compile_s = time.perf_counter() - t0

  for _ in range(args.warmup):
    state, m = compiled(state, batch)
  jax.block_until_ready(state)
  # Steps are dispatched back to back, as in the trainer's loop; one sync at the end.
  t0 = time.perf_counter()
  for _ in range(args.steps):
    state, m = compiled(state, batch)
  jax.block_until_ready((state, m))
  step_s = (time.perf_counter() - t0) / args.steps
  loss = float(m['loss'])
  if not np.isfinite(loss):
    raise FloatingPointError(f'mbjax.bench train: non-finite loss {loss} on synthetic data')

  num_devices = mesh.devices.size
  # The task's own count (heads, SMPL, ...) at its clip length; else 3x the backbone forward.
  task_flops = (s.task.flops_per_step(config) if frames == s.example['input'].shape[-3]
                else None)
  analytic = task_flops or 3 * dstformer_forward_flops(batch=sequences, frames=frames,
                                                       **_backbone(model).__dict__)
  xla = xla_flops(compiled)  # of the per-device (SPMD-partitioned) program
  dtype = config.model.dtype
  peak_flops, peak_source = peak.peak_flops_per_device(dtype, mesh.devices.flat[0])
  tflops_analytic = analytic / num_devices / step_s / 1e12
  memory, memory_source = _peak_memory()
  return dict(
      bench='train', config=config_arg, overrides=overrides,
      task=config.task, kind=kind, batch=B, sequences=sequences, frames=frames, dtype=dtype,
      backend=jax.default_backend(), device_kind=mesh.devices.flat[0].device_kind,
      devices=num_devices, mesh=dict(mesh.shape), fsdp=bool(config.get('fsdp', False)),
      tensor_parallel=bool(config.get('tensor_parallel', False)),
      steps=args.steps, compile_s=round(compile_s, 2), loss=loss,
      step_s=step_s,
      clips_per_s=B / step_s, frames_per_s=sequences * frames / step_s,
      tflops_per_s_xla=(xla / step_s / 1e12) if xla else None,
      tflops_per_s_analytic=tflops_analytic,
      analytic_tflop_per_step=analytic / 1e12,
      analytic_source='task' if task_flops else 'backbone',
      xla_tflop_per_step_per_device=(xla / 1e12) if xla else None,
      peak_tflops_per_device=peak_flops / 1e12, peak_source=peak_source,
      mfu=tflops_analytic * 1e12 / peak_flops,
      peak_memory_bytes=memory, peak_memory_source=memory_source,
  )


def define_flags(fv) -> None:
  """This bench's flags, in their own absl FlagValues `fv`: `--config` as `mbjax.train` reads it
  (path:variant, `--config.key=value` overrides)."""
  from absl import flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config', None, 'config file and variant, path:variant',
                                  flag_values=fv, lock_config=True)
  flags.DEFINE_integer('steps', 10, 'timed steps', flag_values=fv)
  flags.DEFINE_integer('warmup', 2, 'untimed steps after compiling', flag_values=fv)
  flags.DEFINE_integer('frames', 0, "clip length; 0: the task's example batch", flag_values=fv)
  flags.DEFINE_string('kind', '', 'which loss (curriculum batch kind) the step computes, e.g. 3d '
                      'or 2d; default: the task\'s KIND, else 3d', flag_values=fv)
  flags.mark_flag_as_required('config', flag_values=fv)
