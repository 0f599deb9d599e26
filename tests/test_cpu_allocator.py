"""mbjax.cli.allocator: command lines re-execute once with glibc malloc tunables that keep freed
memory, which removes the page faults of large buffers allocated again and again."""

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from mbjax.cli import allocator as cpu_allocator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc', reason='glibc only')

# Re-executes like every mbjax command line, then counts the minor page faults of filling a
# 64 MB buffer 20 times (what XLA's temporaries of a training step do).
PROBE = textwrap.dedent('''
    import json, os, resource, sys
    from mbjax.cli import allocator as cpu_allocator
    cpu_allocator.reexec()
    import numpy as np
    np._core.multiarray._set_madvise_hugepage(False)  # 4 kB pages, as XLA's buffers
    np.ones(1 << 23).sum()  # warm up: the first buffer always faults in
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
      np.ones(1 << 23).sum()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(json.dumps(dict(argv=sys.argv[1:], tunables=os.environ.get('GLIBC_TUNABLES', ''),
                          active=cpu_allocator.active(), faults=faults)))
''')


def _probe(tmp_path, **env):
  (tmp_path / 'probe.py').write_text(PROBE)
  base = {k: v for k, v in os.environ.items()
          if k not in ('GLIBC_TUNABLES', 'MBJAX_ALLOCATOR', 'MBJAX_ALLOCATOR_REEXEC')}
  base['PYTHONPATH'] = os.pathsep.join([str(tmp_path), ROOT])
  out = subprocess.run([sys.executable, '-m', 'probe', 'a', '--b=c'], cwd=tmp_path,
                       env={**base, **env}, capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_reexec_sets_the_tunables_keeps_argv_and_removes_page_faults(tmp_path):
  tuned = _probe(tmp_path)
  system = _probe(tmp_path, MBJAX_ALLOCATOR='system')
  assert tuned['argv'] == system['argv'] == ['a', '--b=c']
  assert tuned['active'] == cpu_allocator.NAME and system['active'] == 'system'
  assert tuned['tunables'].split(':') == list(cpu_allocator.TUNABLES)
  assert system['tunables'] == ''
  # 20 x 64 MB freshly mapped is ~330k faults; kept memory is reused without faulting.
  assert system['faults'] > 100_000, system
  assert tuned['faults'] < system['faults'] / 20, (tuned, system)


def test_the_users_own_tunables_come_last(tmp_path):
  tuned = _probe(tmp_path, GLIBC_TUNABLES='glibc.malloc.arena_max=4')
  assert tuned['tunables'].split(':') == [*cpu_allocator.TUNABLES, 'glibc.malloc.arena_max=4']


def test_bench_reports_the_allocator(tmp_path):
  env = {k: v for k, v in os.environ.items() if k not in ('MBJAX_ALLOCATOR', 'GLIBC_TUNABLES')}
  env.update(JAX_PLATFORMS='cpu', XLA_FLAGS='')
  out = subprocess.run([sys.executable, '-m', 'mbjax.bench', 'data', '--pipeline', 'pretrain',
                        '--min_batches', '2', '--min_seconds', '0'], cwd=ROOT, env=env,
                       capture_output=True, text=True)
  assert out.returncode == 0, out.stderr[-2000:]
  assert json.loads(out.stdout.strip().splitlines()[-1])['allocator'] == cpu_allocator.NAME


def test_accelerator_runs_are_left_alone(tmp_path, monkeypatch):
  assert _probe(tmp_path, JAX_PLATFORMS='cuda')['active'] == 'system'
  assert _probe(tmp_path, JAX_PLATFORMS='cpu')['active'] == cpu_allocator.NAME
  monkeypatch.delenv('JAX_PLATFORMS', raising=False)
  monkeypatch.setattr(cpu_allocator, 'ACCELERATOR_PLUGINS', ('json',))  # "installed"
  assert cpu_allocator.accelerator_expected()
  monkeypatch.setattr(cpu_allocator, 'ACCELERATOR_PLUGINS', ('no_such_plugin_here',))
  assert not cpu_allocator.accelerator_expected()


def test_a_program_restarts_before_its_heavy_imports(tmp_path):
  """`python -m mbjax.<program>` restarts while the package is imported, so JAX is imported once
  (after the restart), and the interpreter's own options (-X importtime) survive the restart."""
  env = {k: v for k, v in os.environ.items()
         if k not in ('GLIBC_TUNABLES', 'MBJAX_ALLOCATOR', 'MBJAX_ALLOCATOR_REEXEC')}
  env.update(JAX_PLATFORMS='cpu', XLA_FLAGS='')
  done = subprocess.run([sys.executable, '-X', 'importtime', '-m', 'mbjax.convert',
                         str(tmp_path / 'x.bin'), str(tmp_path / 'out')], cwd=ROOT, env=env,
                        capture_output=True, text=True)
  assert 'x.bin: no such file' in done.stderr
  imported = [line.rsplit('|', 1)[-1].strip() for line in done.stderr.splitlines()
              if line.startswith('import time:')]
  assert imported.count('mbjax.cli.allocator') == 2  # before and after the restart
  assert imported.count('jax') == 1, 'JAX imported before the restart'


@pytest.mark.parametrize('argv, module, restarts', [
    (['-m'], 'mbjax.train', True),
    (['-m'], 'mbjax', True),
    (['-m'], 'other.tool', False),  # another package's program that imports mbjax
    (['script.py'], 'mbjax.train', False),  # not while -m looks for its module
])
def test_the_early_restart_is_for_mbjax_programs_only(monkeypatch, argv, module, restarts):
  calls = []
  monkeypatch.setattr(cpu_allocator, '_wanted', lambda: True)
  monkeypatch.setattr(cpu_allocator, '_exec', calls.append)
  monkeypatch.setattr(sys, 'argv', argv)
  monkeypatch.setattr(sys, 'orig_argv', ['python3', '-W', 'ignore', '-m', module, '--x=1'])
  cpu_allocator.reexec_early()
  assert calls == ([['-W', 'ignore', '-m', module, '--x=1']] if restarts else [])
