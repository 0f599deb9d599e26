"""The machine a program runs on: CPU model and ISA flags, and a per-machine cache of what was
measured on it (`~/.cache/mbjax/`, or `MBJAX_CACHE_DIR`), keyed by CPU model, core count and
jaxlib version."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata

# The instruction-set extensions that decide matmul speed, as /proc/cpuinfo names them.
ISA_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16', 'avx_vnni',
             'amx_tile', 'amx_bf16', 'amx_int8')


def _cpuinfo() -> dict[str, str]:
  """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
  fields = {}
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if not line.strip():
          break
        key, _, value = line.partition(':')
        fields.setdefault(key.strip(), value.strip())
  except OSError:
    pass
  return fields


def cpu_model() -> str:
  """'AMD EPYC 9R14 (family 25 model 17)', or the platform's own name off Linux."""
  fields = _cpuinfo()
  if not fields:
    return platform.processor() or platform.machine()
  name = fields.get('model name', 'unknown CPU')
  if 'cpu family' in fields:
    name += f' (family {fields["cpu family"]} model {fields.get("model", "?")})'
  return name


def cpu_flags() -> list[str]:
  """The ISA_FLAGS this CPU has."""
  have = set(_cpuinfo().get('flags', '').split())
  return [f for f in ISA_FLAGS if f in have]


def key() -> str:
  """What a measurement on this machine depends on: CPU model, cores, jaxlib version."""
  try:
    jaxlib = metadata.version('jaxlib')
  except metadata.PackageNotFoundError:
    jaxlib = 'unknown'
  return f'{cpu_model()} | {os.cpu_count()} cpus | jaxlib {jaxlib}'


def cache_path(name: str) -> str:
  root = os.environ.get('MBJAX_CACHE_DIR') or os.path.join(
      os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'mbjax')
  return os.path.join(root, name)


def read_cache(name: str) -> dict:
  """The cache file `name` as a dict ({} when absent or unreadable)."""
  try:
    with open(cache_path(name)) as f:
      cache = json.load(f)
    return cache if isinstance(cache, dict) else {}
  except (OSError, ValueError):
    return {}


def write_cache(name: str, cache: dict) -> None:
  """Writes the cache file atomically; a read-only home only means measuring again next time."""
  from mbjax.files import atomic  # pylint: disable=g-import-not-at-top
  try:
    atomic.write_text(cache_path(name), json.dumps(cache, indent=2, sort_keys=True) + '\n')
  except OSError:
    pass


def remembered(name: str, key: str, measure, *, again: bool = False):
  """`key`'s entry of the cache file `name`, or `measure()` (a few seconds) written there first;
  `again` measures even when cached. A `measure` that raises writes nothing."""
  cache = read_cache(name)
  if again or key not in cache:
    cache[key] = measure()
    write_cache(name, cache)
  return cache[key]


def child_seconds(code: str, *args: str, env: dict[str, str]) -> float:
  """The number a `python -c code args...` child prints last (a timing), run on the CPU with
  `env` over this process's environment; raises subprocess errors when it fails."""
  done = subprocess.run([sys.executable, '-c', code, *args],
                        env=dict(os.environ, JAX_PLATFORMS='cpu', **env), capture_output=True,
                        text=True, timeout=600, check=True)
  return float(done.stdout.strip().splitlines()[-1])
