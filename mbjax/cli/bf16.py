"""Whether `mbjax.infer` lifts in bfloat16 on this CPU: only where the CPU has native bf16 dots
(AVX512-BF16 or AMX-BF16) and a short timed trial shows bf16 at least SPEEDUP x fp32.

bf16 inference keeps the accuracy (README "Benchmarks": the demo's held-out MPJPE 71.49 mm bf16
against 71.66 fp32), so speed alone decides, and speed differs by CPU and matmul path: on a CPU
without native bf16 dots XLA converts to fp32 and bf16 runs no faster (Zen 3: no trial, fp32). On
a CPU with them, the first `infer` times one release-size DSTformer block (layer norms, the qkv,
attention, projection and MLP dots, GELU) forward in both dtypes in a child process under this
process's XLA flags (the matmul path of `mbjax.cli.dot_path`), and caches the result per machine
and matmul path in `~/.cache/mbjax/bf16.json` (`MBJAX_CACHE_DIR` moves it).
`MBJAX_INFER_DTYPE=float32|bfloat16` fixes the choice for every run on a machine (the tests run
with float32); `--config.model.dtype` always wins; accelerator runs stay fp32 unless asked.
"""

from __future__ import annotations

import os
import subprocess
import sys

from mbjax.cli import allocator, dot_path, machine

NATIVE = ('avx512_bf16', 'amx_bf16')  # /proc/cpuinfo's names of native bf16 dot instructions
SPEEDUP = 1.6  # bf16 must run this much faster than fp32 to become the default
CACHE = 'bf16.json'
ENV = 'MBJAX_INFER_DTYPE'

# One DSTformer block of the release model (dim 512, 8 heads, MLP ratio 2) over 243 frames of
# 17 x `scale` streams: temporal attention, forward only, best of 3.
_TRIAL = '''
import json, sys, time, jax, jax.numpy as jnp
dtype, scale = jnp.dtype(sys.argv[1]), float(sys.argv[2])
b, t, d, h = max(1, int(17 * scale)), 243, 512, 8
k = jax.random.split(jax.random.PRNGKey(0), 5)
x = jax.random.normal(k[0], (b, t, d))
w = [jax.random.normal(k[i], s) * 0.02 for i, s in ((1, (d, 3 * d)), (2, (d, d)), (3, (d, 2 * d)), (4, (2 * d, d)))]
def norm(y):
  m = y.mean(-1, keepdims=True)
  return (y - m) * jax.lax.rsqrt(((y - m) ** 2).mean(-1, keepdims=True) + 1e-6)
def block(x, w):
  x = x.astype(dtype); wq, wo, w1, w2 = (v.astype(dtype) for v in w)
  q, kk, v = jnp.split((norm(x) @ wq).reshape(b, t, 3 * h, d // h).transpose(0, 2, 1, 3), 3, 1)
  a = jax.nn.softmax(q @ kk.transpose(0, 1, 3, 2) * (d // h) ** -0.5, -1) @ v
  x = x + a.transpose(0, 2, 1, 3).reshape(b, t, d) @ wo
  return (x + jax.nn.gelu(norm(x) @ w1) @ w2).astype(jnp.float32)
f = jax.jit(block)
f(x, w).block_until_ready()
best = float('inf')
for _ in range(3):
  s = time.perf_counter(); f(x, w).block_until_ready(); best = min(best, time.perf_counter() - s)
print(json.dumps(best))
'''


def trial_seconds(dtype: str, scale: float = 1.0) -> float:
  """Best seconds of the trial block in `dtype`, in a child process with this one's XLA flags."""
  return machine.child_seconds(_TRIAL, dtype, str(scale), env={})


def measure(scale: float = 1.0) -> dict:
  """{'float32': s, 'bfloat16': s, 'speedup': fp32 seconds / bf16 seconds}."""
  fp32, bf16 = trial_seconds('float32', scale), trial_seconds('bfloat16', scale)
  return {'float32': round(fp32, 5), 'bfloat16': round(bf16, 5),
          'speedup': round(fp32 / max(bf16, 1e-9), 3)}


def cache_key() -> str:
  return f'{machine.key()} | dot {dot_path.active()}'


def _announced_measure() -> dict:
  print('mbjax: timing bf16 against fp32 on this CPU once ...', file=sys.stderr, flush=True)
  return measure()


def infer_dtype() -> tuple[str, str]:
  """(dtype, why): 'bfloat16' where this CPU has native bf16 dots and its (cached) trial shows
  bf16 >= SPEEDUP x fp32, else 'float32'; `why` says which, for the run's report."""
  forced = os.environ.get(ENV, 'auto')
  if forced in ('float32', 'bfloat16'):
    return forced, f'set by {ENV}'
  if forced != 'auto':
    raise ValueError(f'{ENV}={forced!r}: expected float32, bfloat16 or auto')
  if allocator.accelerator_expected():
    return 'float32', 'an accelerator run (bfloat16 by --config.model.dtype=bfloat16)'
  native = [f for f in NATIVE if f in machine.cpu_flags()]
  if not native:
    return 'float32', f'this CPU has no native bf16 dots ({" / ".join(NATIVE)})'
  try:
    speedup = float(machine.remembered(CACHE, cache_key(), _announced_measure)['speedup'])
  except (OSError, subprocess.SubprocessError, ValueError) as e:
    return 'float32', f'the bf16 trial did not run ({type(e).__name__})'
  if speedup >= SPEEDUP:
    return 'bfloat16', (f'{"+".join(native)}: bf16 ran {speedup:.2f}x fp32 in this CPU\'s trial '
                        f'(>= {SPEEDUP}x)')
  return 'float32', (f'{"+".join(native)}: bf16 ran only {speedup:.2f}x fp32 in this CPU\'s '
                     f'trial (< {SPEEDUP}x)')
