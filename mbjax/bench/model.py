"""`python -m mbjax.bench model`: jitted DSTformer forward and train-step throughput.

Prints one JSON line last with `infer_frames_per_s`, `train_frames_per_s`, `compile_s` and the
achieved GFLOP/s (analytic matmul FLOPs; XLA's own count is reported beside it).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mbjax.train import peak_flops as peak
from mbjax.models.flops import dstformer_forward_flops, xla_flops
from mbjax.models import dstformer_from_variant

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def _time(fn, *args, iters: int, min_seconds: float):
  """Median seconds per call over at least `iters` calls and `min_seconds`."""
  times = []
  start = time.perf_counter()
  while len(times) < iters or time.perf_counter() - start < min_seconds:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return float(np.median(times)), len(times)


def _attention_impls(choice: str) -> tuple[str, str]:
  """(inference, training) attention implementations. 'auto' takes the fastest measured: on CPU
  the batch-leading matmuls ('matmul'; release B=2 T=243 on Zen 3, interleaved A/B: inference
  70.0 frames/s against 62.9 'xla' and 59.9 'einsum', training 22.8 against 22.3); on GPU
  cuDNN."""
  if choice != 'auto':
    return choice, choice
  if jax.default_backend() == 'gpu':
    return 'cudnn', 'cudnn'
  return 'matmul', 'matmul'


def build(args):
  """(model, compiled forward, compiled train step, params, opt_state, x, y, compile seconds) of
  the bench's flags: the jitted DSTformer forward and its AdamW train step on random clips."""
  infer_attention, train_attention = _attention_impls(args.attention)
  model = dstformer_from_variant(args.variant, dtype=DTYPES[args.dtype],
                                 attention_impl=train_attention, remat_policy=args.remat)
  infer_model = model.clone(attention_impl=infer_attention)
  B, T = args.batch, args.frames
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((B, T, 17, 3)), jnp.float32)
  y = jnp.asarray(rng.standard_normal((B, T, 17, 3)), jnp.float32)
  params = jax.jit(model.init)(jax.random.key(0), x[:, :1])['params']
  tx = optax.adamw(1e-4, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01)
  opt_state = tx.init(params)

  def forward(params, x):
    return infer_model.apply({'params': params}, x)

  def train_step(params, opt_state, x, y):
    def loss_fn(p):
      out = model.apply({'params': p}, x, train=True).astype(jnp.float32)
      return jnp.mean(jnp.linalg.norm(out - y, axis=-1))  # MPJPE, the main pretraining term
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  t0 = time.perf_counter()
  infer = jax.jit(forward).lower(params, x).compile()
  infer_compile = time.perf_counter() - t0
  t0 = time.perf_counter()
  step = jax.jit(train_step, donate_argnums=(0, 1)).lower(params, opt_state, x, y).compile()
  train_compile = time.perf_counter() - t0
  return dict(model=model, infer=infer, step=step, params=params, opt_state=opt_state, x=x, y=y,
              attention=dict(infer=infer_attention, train=train_attention),
              compile_s=(infer_compile, train_compile))


def compare(args) -> dict:
  """--compare: each attention implementation's forward and train step timed in one process,
  one call of each in turn for `--iters` rounds, so that a machine whose speed drifts between runs
  (virtual machines: ~10-15%) slows them alike; median frames/s per implementation."""
  import types
  fields = ('variant', 'dtype', 'remat', 'batch', 'frames')
  built = {impl: build(types.SimpleNamespace(attention=impl, **{f: getattr(args, f)
                                                                 for f in fields}))
           for impl in args.compare}
  times = {impl: {'infer': [], 'train': []} for impl in built}
  states = {impl: (b['params'], b['opt_state']) for impl, b in built.items()}
  for _ in range(args.iters):
    for impl, b in built.items():
      params = states[impl][0]  # the step donates its inputs: the newest params
      times[impl]['infer'].append(_time(b['infer'], params, b['x'], iters=1, min_seconds=0)[0])
      t0 = time.perf_counter()
      p, o, loss = b['step'](*states[impl], b['x'], b['y'])
      jax.block_until_ready(loss)
      times[impl]['train'].append(time.perf_counter() - t0)
      states[impl] = (p, o)
  frames = args.batch * args.frames
  return dict(bench='model', variant=args.variant, batch=args.batch, frames=args.frames,
              dtype=args.dtype, rounds=args.iters, compare={
                  impl: {f'{k}_frames_per_s': round(frames / float(np.median(v)), 2)
                         for k, v in t.items()} for impl, t in times.items()})


def run(args) -> dict:
  if args.compare:
    return compare(args)
  b = build(args)
  model, infer, step, params, opt_state, x, y = (b[k] for k in (
      'model', 'infer', 'step', 'params', 'opt_state', 'x', 'y'))
  infer_compile, train_compile = b['compile_s']
  B, T = args.batch, args.frames
  result = dict(bench='model', variant=args.variant, batch=B, frames=T, dtype=args.dtype,
                attention=b['attention'], remat=args.remat, backend=jax.default_backend(),
                devices=jax.device_count())
  jax.block_until_ready(infer(params, x))
  infer_s, infer_n = _time(infer, params, x, iters=args.iters, min_seconds=args.min_seconds)

  state = (params, opt_state)

  def one_step():
    nonlocal state
    p, o, loss = step(*state, x, y)
    state = (p, o)
    return loss

  jax.block_until_ready(one_step())
  train_s, train_n = _time(one_step, iters=args.iters, min_seconds=args.min_seconds)

  fwd_flops = dstformer_forward_flops(batch=B, frames=T, **model.__dict__)
  train_flops = 3 * fwd_flops  # backward ~ 2x forward
  result.update(
      compile_s=round(infer_compile + train_compile, 2),
      infer_compile_s=round(infer_compile, 2),
      train_compile_s=round(train_compile, 2),
      infer_step_s=round(infer_s, 5),
      train_step_s=round(train_s, 5),
      infer_frames_per_s=round(B * T / infer_s, 2),
      train_frames_per_s=round(B * T / train_s, 2),
      infer_gflops_per_s=round(fwd_flops / infer_s / 1e9, 1),
      train_gflops_per_s=round(train_flops / train_s / 1e9, 1),
      analytic_gflop_forward=round(fwd_flops / 1e9, 2),
      xla_gflop_forward=round((xla_flops(infer) or 0) / 1e9, 2),
      xla_gflop_train_step=round((xla_flops(step) or 0) / 1e9, 2),
      timed_calls=dict(infer=infer_n, train=train_n),
  )
  result.update(_against_peak(result, args.dtype))
  return result


def _against_peak(result: dict, dtype: str) -> dict:
  """The machine's matmul peak for `dtype` and how much of it inference and training reach
  (CPU: measured once per machine and cached; accelerators: the published table)."""
  name = 'bfloat16' if 'bfloat16' in dtype else 'float32'
  try:
    per_device, source = peak.peak_flops_per_device(name)
  except KeyError:  # an accelerator missing from the table
    return dict(peak_gflops=None, pct_of_peak=None)
  total = per_device * jax.device_count()
  return dict(peak_gflops=round(total / 1e9, 1), peak_source=source,
              pct_of_peak={k: round(100 * result[f'{k}_gflops_per_s'] * 1e9 / total, 1)
                           for k in ('infer', 'train')})


def define_flags(fv) -> None:
  """This bench's flags, in their own absl FlagValues `fv`."""
  from absl import flags
  from mbjax import bench
  bench.define_model_flags(fv, iters=5)
  flags.DEFINE_enum('dtype', 'float32', sorted(DTYPES), 'compute dtype', flag_values=fv)
  flags.DEFINE_enum('attention', 'auto', ['auto', 'einsum', 'matmul', 'xla', 'cudnn'],
                    'attention implementation', flag_values=fv)
  flags.DEFINE_string('remat', 'none', 'remat policy', flag_values=fv)
  flags.DEFINE_list('compare', [], 'attention implementations to time against each other in '
                    'one process, a call of each in turn (e.g. einsum,xla,matmul)', flag_values=fv)
