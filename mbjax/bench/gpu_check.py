"""`python -m mbjax.bench gpu-check`: release train step, bf16, remat off and on, largest batch.

  python -m mbjax.bench gpu-check                    # one GPU / TPU: B=64 T=243, a few minutes
  python -m mbjax.bench gpu-check --cpu_smoke        # CPU: tiny model, B=2 T=9, no search

For each remat policy (`--remat`, most memory-saving first) the `train` bench times the
trainer's own step of configs/pretrain.py at `--variant`, `--batch`, `--frames`, `--dtype`, with
cuDNN attention on GPU ('xla', jax.nn.dot_product_attention, elsewhere): step time, TFLOP/s,
MFU against the device's peak (mbjax/train/peak_flops.py) and peak memory. Then a doubling search
from `--batch` up to `--max_batch` finds the largest batch whose step compiles and runs; the
backend's out-of-memory error (`jax.errors.JaxRuntimeError`, RESOURCE_EXHAUSTED) ends it.
Peak memory is the device allocator's high-water mark of the process (max RSS on CPU): a
setting whose peak did not rise above the previous one's is marked `peak_memory_upper_bound`.
The last line printed is JSON, one entry per remat policy under `settings`.
"""

from __future__ import annotations

import gc
import pathlib
import sys
import time

import jax
from absl import flags

from mbjax.bench import train as train_bench

CONFIG = pathlib.Path(__file__).resolve().parents[2] / 'configs' / 'pretrain.py'
REMAT_ORDER = ('full', 'dots_no_batch', 'dots', 'none')  # most memory-saving first
# CI's CPU run: the search is capped at the batch itself (tests/test_bench.py checks its logic).
SMOKE = dict(variant='tiny', batch=2, frames=9, max_batch=2, steps=2, warmup=1)


def attention_impl() -> str:
  """cuDNN fused attention on GPU, jax.nn.dot_product_attention's XLA path elsewhere."""
  return 'cudnn' if jax.default_backend() == 'gpu' else 'xla'


def is_oom(error: Exception) -> bool:
  """Whether `error` is the backend's out-of-memory error (at compile or at run time)."""
  text = str(error)
  return isinstance(error, jax.errors.JaxRuntimeError) and (
      'RESOURCE_EXHAUSTED' in text or 'out of memory' in text.lower())


def _train_step(args: dict, batch: int, remat: str, *, steps: int, warmup: int) -> dict:
  """The `train` bench's result for the pretrain config at `batch` and `remat`."""
  argv = ['mbjax.bench train', f'--config={CONFIG}:{args["variant"]}',
          f'--config.batch_size={batch}', f'--config.model.dtype={args["dtype"]}',
          f'--config.model.attention_impl={attention_impl()}',
          f'--config.model.remat_policy={remat}', f'--frames={args["frames"]}',
          f'--steps={steps}', f'--warmup={warmup}']
  fv = flags.FlagValues()
  train_bench.define_flags(fv)
  saved, sys.argv = sys.argv, argv  # ml_collections reads the `--config.` overrides from sys.argv
  try:
    fv(argv)
  finally:
    sys.argv = saved
  try:
    return train_bench.run(fv)
  finally:
    gc.collect()  # drop the state before the next setting allocates its own


def _fits(args: dict, batch: int, remat: str) -> bool:
  """Whether one step at `batch` compiles and runs; False on the backend's out-of-memory."""
  try:
    _train_step(args, batch, remat, steps=1, warmup=0)
  except jax.errors.JaxRuntimeError as e:
    if not is_oom(e):
      raise
    return False
  return True


def largest_batch(args: dict, remat: str) -> dict:
  """Doubling search from `args['batch']` (known to fit) up to `args['max_batch']`."""
  fitted, oom, batch = args['batch'], None, args['batch'] * 2
  while batch <= args['max_batch']:
    if not _fits(args, batch, remat):
      oom = batch
      break
    fitted, batch = batch, batch * 2
  return dict(max_batch_fits=fitted, max_batch_oom=oom, max_batch_capped=oom is None,
              max_batch_cap=args['max_batch'])


def _timed(args: dict, remat: str, previous_peak: int | None) -> dict:
  """One setting's step time, TFLOP/s, MFU and peak memory at `args['batch']`."""
  try:
    r = _train_step(args, args['batch'], remat, steps=args['steps'], warmup=args['warmup'])
  except jax.errors.JaxRuntimeError as e:
    if not is_oom(e):
      raise
    return dict(remat=remat, oom_at_batch=True, error=str(e).splitlines()[0][:300])
  upper_bound = previous_peak is not None and r['peak_memory_bytes'] <= previous_peak
  return dict(
      remat=remat, oom_at_batch=False, step_s=r['step_s'], compile_s=r['compile_s'],
      clips_per_s=r['clips_per_s'], frames_per_s=r['frames_per_s'], loss=r['loss'],
      tflops_per_s=r['tflops_per_s_analytic'], tflops_per_s_xla=r['tflops_per_s_xla'],
      mfu=r['mfu'], peak_memory_bytes=r['peak_memory_bytes'],
      peak_memory_gib=round(r['peak_memory_bytes'] / 2**30, 3),
      peak_memory_upper_bound=upper_bound, peak_memory_source=r['peak_memory_source'],
      peak_tflops_per_device=r['peak_tflops_per_device'], peak_source=r['peak_source'])


def _options(fv) -> dict:
  """The run's settings: the flags, or the tiny CPU shapes under --cpu_smoke."""
  args = dict(variant=fv.variant, batch=fv.batch, frames=fv.frames, max_batch=fv.max_batch,
              steps=fv.steps, warmup=fv.warmup, dtype=fv.dtype)
  if fv.cpu_smoke:
    args.update(SMOKE)
  remats = [r.strip() for r in fv.remat if r.strip()]
  unknown = sorted(set(remats) - set(REMAT_ORDER))
  if unknown:
    raise ValueError(f'--remat: unknown policies {unknown}, expected some of {REMAT_ORDER}')
  args['remats'] = sorted(set(remats), key=REMAT_ORDER.index)
  return args


def run(fv) -> dict:
  args = _options(fv)
  start = time.perf_counter()
  settings, peak = [], None
  for remat in args['remats']:  # all timings first: the batch searches raise the high-water mark
    entry = _timed(args, remat, peak)
    peak = max(peak or 0, entry.get('peak_memory_bytes', 0))
    settings.append(entry)
  for entry in settings:
    if entry['oom_at_batch']:
      entry.update(max_batch_fits=None, max_batch_oom=args['batch'], max_batch_capped=False,
                   max_batch_cap=args['max_batch'])
    else:
      entry.update(largest_batch(args, entry['remat']))
  device = jax.local_devices()[0]
  return dict(
      bench='gpu-check', variant=args['variant'], batch=args['batch'], frames=args['frames'],
      dtype=args['dtype'], attention_impl=attention_impl(), backend=jax.default_backend(),
      device_kind=device.device_kind, devices=jax.device_count(), steps=args['steps'],
      cpu_smoke=bool(fv.cpu_smoke), settings=settings,
      total_s=round(time.perf_counter() - start, 1))


def define_flags(fv) -> None:
  """This bench's flags, in their own absl FlagValues `fv`."""
  flags.DEFINE_enum('variant', 'release', ['release', 'lite', 'tiny'], 'DSTformer size',
                    flag_values=fv)
  flags.DEFINE_integer('batch', 64, 'clips per batch, the start of the batch search',
                       flag_values=fv)
  flags.DEFINE_integer('frames', 243, 'clip length', flag_values=fv)
  flags.DEFINE_integer('max_batch', 512, 'cap of the doubling batch search', flag_values=fv)
  flags.DEFINE_integer('steps', 10, 'timed steps per setting', flag_values=fv)
  flags.DEFINE_integer('warmup', 2, 'untimed steps after compiling', flag_values=fv)
  flags.DEFINE_enum('dtype', 'bfloat16', ['bfloat16', 'float32'], 'compute dtype',
                    flag_values=fv)
  flags.DEFINE_list('remat', ['none', 'full'], f'remat policies, of {list(REMAT_ORDER)}',
                    flag_values=fv)
  flags.DEFINE_bool('cpu_smoke', False, f'tiny CPU shapes: {SMOKE}', flag_values=fv)
