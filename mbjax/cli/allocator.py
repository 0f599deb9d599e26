"""Keep freed memory inside the process on CPU: glibc malloc tunables, set before Python starts.

Profiling the release training step on CPU (B=2, T=243) showed a third of its time in the
kernel: XLA's large temporary buffers are mmapped, zero-filled by the kernel and unmapped again
at every step (20 million minor page faults in a 2-minute bench). glibc can keep them: one arena
for every thread (per-thread arenas grow by mmapped heaps), large blocks from that arena instead
of their own mmap, and freed memory never trimmed. With these settings the bench's page faults
fall ~7x and its throughput rises ~1.5x (README, Benchmarks); no library or system package is
needed, and peak memory stays the same.

The tunables are read by the dynamic loader at process start, so every mbjax command line
(`mbjax.cli.run`, `python -m mbjax.bench`) re-executes itself once with them set, early, before
any work. `MBJAX_ALLOCATOR=system` turns this off. Elsewhere than Linux/glibc, and where JAX will
run on an accelerator (JAX_PLATFORMS names no cpu, or a GPU/TPU plugin is installed and
JAX_PLATFORMS is unset), nothing changes: device memory has its own allocator.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys

ENV_SWITCH = 'MBJAX_ALLOCATOR'  # 'system': leave malloc as the system configures it
TUNABLES = ('glibc.malloc.arena_max=1', 'glibc.malloc.mmap_max=0',
            f'glibc.malloc.trim_threshold={1 << 44}', f'glibc.malloc.top_pad={1 << 28}')
NAME = 'glibc-retain'  # what `active()` reports when the tunables are in effect
_MARKER = 'MBJAX_ALLOCATOR_REEXEC'
# Packages that make JAX pick an accelerator when JAX_PLATFORMS is unset.
ACCELERATOR_PLUGINS = ('jax_cuda12_plugin', 'jax_cuda13_plugin', 'jax_rocm60_plugin',
                       'jax_rocm7_plugin', 'libtpu')


def active() -> str:
  """NAME if this process started with the tunables, else 'system'."""
  given = os.environ.get('GLIBC_TUNABLES', '').split(':')
  return NAME if all(t in given for t in TUNABLES) else 'system'


def accelerator_expected() -> bool:
  """Whether JAX will run on a GPU or TPU here (judged without importing JAX)."""
  platforms = os.environ.get('JAX_PLATFORMS', '')
  if platforms:
    return 'cpu' not in platforms.split(',')[0]
  return any(importlib.util.find_spec(name) is not None for name in ACCELERATOR_PLUGINS)


def _main_module() -> str | None:
  """The module run by `python -m`, or None (a script, an interactive or embedded interpreter)."""
  spec = getattr(sys.modules.get('__main__'), '__spec__', None)
  if spec is None or not spec.name:
    return None
  return spec.name[:-len('.__main__')] if spec.name.endswith('.__main__') else spec.name


def _wanted() -> bool:
  """Whether this process should restart with TUNABLES (not switched off, not done, glibc, CPU)."""
  return not (os.environ.get(ENV_SWITCH, '') == 'system' or os.environ.get(_MARKER)
              or active() == NAME or platform.system() != 'Linux'
              or platform.libc_ver()[0] != 'glibc' or accelerator_expected())


def _exec(argv: list[str]) -> None:
  user = os.environ.get('GLIBC_TUNABLES')  # the user's own settings come last and win
  env = dict(os.environ, GLIBC_TUNABLES=':'.join([*TUNABLES, *([user] if user else [])]),
             **{_MARKER: '1'})
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *argv], env)


def reexec() -> None:
  """Re-executes `python -m <this module> argv...` with TUNABLES, unless switched off, already
  done, not on glibc, or not run with `python -m`. Returns when nothing is to be done."""
  if not _wanted():
    return
  module = _main_module()
  if module is not None:
    _exec([*_interpreter_options(), '-m', module, *sys.argv[1:]])


def reexec_early() -> None:
  """`reexec` while `python -m mbjax.<program>` is still importing the `mbjax` package, before
  the program's own imports (JAX among them, ~2 s of CPU that the restart would pay twice):
  called by `mbjax/__init__.py`, it restarts the exact command line. Does nothing in any other
  process (a script, pytest, another package's `-m` program)."""
  if sys.argv[:1] != ['-m'] or not _wanted():  # argv[0] is '-m' only while -m finds its module
    return
  argv = getattr(sys, 'orig_argv', [])[1:]
  module = argv[argv.index('-m') + 1] if '-m' in argv[:-1] else ''
  if module.startswith('mbjax.') or module == 'mbjax':
    _exec(argv)


def _interpreter_options() -> list[str]:
  """The interpreter's own options (-W, -X, -O ...) to pass on across the re-exec."""
  import subprocess  # pylint: disable=g-import-not-at-top
  return subprocess._args_from_interpreter_flags()  # pylint: disable=protected-access
