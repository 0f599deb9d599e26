"""The fastest matmul path of this CPU for XLA, chosen once per machine by a short timed trial.

The pinned jaxlib's CPU backend can run dots through YNNPACK (its default), oneDNN or its own
Eigen kernels, and which is fastest differs between CPUs of the same kind (Xeon, EPYC Zen 3,
Zen 4 ...). At the first program start on a machine, `choose` times the release DSTformer's own
dot shapes under each path (a few seconds, in child processes), keeps the fastest (the default
unless another is >= MARGIN faster), and caches the choice per CPU model and jaxlib version in
`~/.cache/mbjax/dot_path.json` (`MBJAX_CACHE_DIR` moves it). `apply()` puts the chosen path's
XLA flags into XLA_FLAGS before JAX starts its backend; `MBJAX_DOT_PATH=ynnpack|onednn|eigen`
forces one, `MBJAX_DOT_PATH=default` leaves XLA's own choice and skips the trial. XLA flags the
user set on the same options win. Accelerator runs are left alone.
"""

from __future__ import annotations

import os
import subprocess
import sys

from mbjax.cli import allocator, machine

ENV = 'MBJAX_DOT_PATH'
CACHE = 'dot_path.json'
DEFAULT = 'ynnpack'  # what XLA does with no flag
_NO_YNN = '--xla_cpu_experimental_ynn_fusion_type='
PATHS = {
    'ynnpack': (),
    'onednn': (_NO_YNN, '--xla_cpu_use_onednn=true',
               '--xla_cpu_experimental_onednn_fusion_type=dot'),
    'eigen': (_NO_YNN,),
}
MARGIN = 0.05  # another path must beat the default by this much to be chosen
_OWN_OPTIONS = ('xla_cpu_experimental_ynn_fusion_type', 'xla_cpu_use_onednn',
                'xla_cpu_experimental_onednn_fusion_type')

# The trial: the release model's dots at batch 2, 243 frames, 17 joints (qkv and MLP over all
# tokens, temporal and spatial attention scores and weighted sums), forward only, best of 3.
_TRIAL = '''
import json, time, jax, jax.numpy as jnp
scale = float(__import__('sys').argv[1])
n, d = int(8262 * scale) or 1, 512
tok = jnp.ones((n, d)); w_qkv = jnp.ones((d, 3 * d)); w_mlp = jnp.ones((d, 2 * d))
q_t = jnp.ones((max(1, int(272 * scale)), 243, 64)); q_s = jnp.ones((max(1, int(3888 * scale)), 17, 64))
def step(tok, w_qkv, w_mlp, q_t, q_s):
  a = jnp.tanh(tok @ w_qkv).sum() + jnp.tanh(tok @ w_mlp).sum()
  for q in (q_t, q_s):
    s = jax.nn.softmax(jnp.einsum('bqd,bkd->bqk', q, q), -1)
    a = a + jnp.einsum('bqk,bkd->bqd', s, q).sum()
  return a
f = jax.jit(step)
args = (tok, w_qkv, w_mlp, q_t, q_s)
f(*args).block_until_ready()
best = float('inf')
for _ in range(3):
  t = time.perf_counter(); f(*args).block_until_ready(); best = min(best, time.perf_counter() - t)
print(json.dumps(best))
'''


def trial_seconds(path: str, scale: float = 1.0) -> float:
  """Best seconds of the trial step under `path`'s flags, in a child process."""
  return machine.child_seconds(_TRIAL, str(scale),
                               env={'XLA_FLAGS': ' '.join(PATHS[path]), ENV: 'default'})


def run_trial(scale: float = 1.0) -> dict:
  """{'choice', 'seconds': {path: s}, 'failed': {path: why}}: the fastest path that runs, the
  default unless beaten by MARGIN. A path that crashes its child process (oneDNN's fusion dies
  with SIGILL on AMD Zen 3 in the pinned jaxlib) is never chosen."""
  seconds, failed = {}, {}
  for path in PATHS:
    try:
      seconds[path] = trial_seconds(path, scale)
    except subprocess.CalledProcessError as e:
      code = e.returncode
      failed[path] = (f'killed by signal {-code}' if code < 0 else f'exit status {code}')
  if DEFAULT not in seconds:
    return {'choice': DEFAULT, 'seconds': seconds, 'failed': failed}
  best = min(seconds, key=seconds.get)
  if seconds[best] > (1 - MARGIN) * seconds[DEFAULT]:
    best = DEFAULT
  return {'choice': best, 'seconds': {k: round(v, 5) for k, v in seconds.items()},
          'failed': failed}


def choose(*, scale: float = 1.0) -> str:
  """The path of this machine: forced by MBJAX_DOT_PATH, cached, or found by a trial now."""
  forced = os.environ.get(ENV, '')
  if forced == 'default':
    return DEFAULT
  if forced:
    if forced not in PATHS:
      raise ValueError(f'{ENV}={forced!r}: expected one of {sorted(PATHS)} or default')
    return forced
  return machine.remembered(CACHE, machine.key(), lambda: _announced_trial(scale))['choice']


def _announced_trial(scale: float) -> dict:
  print(f'mbjax: timing the matmul paths of this CPU once ({", ".join(PATHS)}) ...',
        file=sys.stderr, flush=True)
  return run_trial(scale)


def active() -> str:
  """The path this process runs with (its XLA_FLAGS), for reports."""
  flags = os.environ.get('XLA_FLAGS', '').split()
  for path in ('onednn', 'eigen'):
    if all(f in flags for f in PATHS[path]):
      return path
  return DEFAULT


def apply() -> str | None:
  """Adds the chosen path's flags to XLA_FLAGS for a CPU run (before JAX starts its backend);
  returns the path, or None where nothing was done (an accelerator run, or the user's XLA_FLAGS
  already set these options)."""
  if allocator.accelerator_expected():
    return None
  given = os.environ.get('XLA_FLAGS', '')
  if any(option in given for option in _OWN_OPTIONS):
    return None
  try:
    path = choose()
  except (OSError, subprocess.SubprocessError, ValueError) as e:
    if isinstance(e, ValueError):
      raise
    return None  # a trial that cannot run: XLA's default
  os.environ['XLA_FLAGS'] = ' '.join([given, *PATHS[path]]).strip()
  return path
