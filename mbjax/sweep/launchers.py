"""How a sweep's runs are started: here one after another (`local`), as a SLURM job array
(`slurm`), or as printed commands for any other scheduler (`print`).

Each launcher leaves finished runs alone (summary.json at the last step) and restarts interrupted
ones with their own command, which resumes them from their latest checkpoint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Sequence

from mbjax.sweep import spec

SLURM_SCRIPT = 'launch/slurm_sweep.sh'  # relative to the checkout


def pending(runs: Sequence[spec.Run], sweep_dir: str) -> list[tuple[spec.Run, str]]:
  """(run, status) of every run that is not finished."""
  out = []
  for run in runs:
    state = spec.status(os.path.join(sweep_dir, run.name))
    if state != 'finished':
      out.append((run, state))
  return out


def print_commands(commands: Sequence[list[str]], file=None) -> None:
  """One shell line per run, for any scheduler."""
  for argv in commands:
    print(spec.shell_line(argv), file=file or sys.stdout, flush=True)


# ------------------------------------------------------------------------------------- local


def _start(argv: list[str], workdir: str, env: dict) -> subprocess.Popen:
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'sweep.log'), 'a') as log:  # the child keeps its own copy
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)


def run_local(jobs: Sequence[tuple[spec.Run, list[str]]], sweep_dir: str, *, parallel: int = 1,
              total: int, env: dict | None = None, file=None) -> list[str]:
  """Runs `jobs` (run, argv) `parallel` at a time, each logging to <run>/sweep.log; returns the
  names of the runs that failed. One status line per start and end, with an ETA."""
  out = file or sys.stdout
  env = dict(os.environ if env is None else env)
  queue, running, failed, took = list(jobs), {}, [], []
  done = total - len(queue)
  while queue or running:
    while queue and len(running) < max(1, parallel):
      run, argv = queue.pop(0)
      running[run.name] = (_start(argv, os.path.join(sweep_dir, run.name), env),
                           time.perf_counter())
      print(f'[{done + len(running)}/{total}] {run.name}: started', file=out, flush=True)
    time.sleep(0.2)
    for name, (proc, started) in list(running.items()):
      if proc.poll() is None:
        continue
      del running[name]
      done += 1
      took.append(time.perf_counter() - started)
      if proc.returncode:
        failed.append(name)
      state = 'done' if not proc.returncode else f'failed (exit {proc.returncode})'
      eta = sum(took) / len(took) * (len(queue) + len(running)) / max(1, parallel)
      print(f'[{done}/{total}] {name}: {state} in {took[-1]:.0f} s (log {name}/sweep.log) | '
            f'ETA {eta:.0f} s', file=out, flush=True)
  return failed


def local_env(sweep_dir: str) -> dict:
  """The environment of local runs: one persistent XLA compilation cache for the sweep (runs of
  one size compile the same step), unless the caller set one."""
  env = dict(os.environ)
  env.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(sweep_dir, '.xla_cache'))
  return env


# ------------------------------------------------------------------------------------- slurm


def slurm_files(commands: Sequence[list[str]], sweep_dir: str, *, max_parallel: int = 0,
                sbatch_args: str = '', root: str | None = None) -> tuple[str, list[str]]:
  """Writes <sweep_dir>/sweep_commands.txt (one run's trainer flags per line); returns its path
  and the `sbatch` argv that submits them as one job array through launch/slurm_sweep.sh."""
  root = root or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  os.makedirs(sweep_dir, exist_ok=True)
  path = os.path.join(os.path.abspath(sweep_dir), 'sweep_commands.txt')
  with open(path, 'w') as f:
    for argv in commands:
      f.write(spec.shell_line(argv[3:]) + '\n')  # after `python -m mbjax.train`
  array = f'0-{len(commands) - 1}' + (f'%{max_parallel}' if max_parallel > 0 else '')
  logs = os.path.join(os.path.abspath(sweep_dir), 'slurm-%A_%a.out')
  argv = ['sbatch', f'--array={array}', f'--output={logs}', '--job-name=mbjax-sweep',
          f'--chdir={os.getcwd()}', f'--export=ALL,MBJAX_ROOT={root}', *sbatch_args.split(),
          os.path.join(root, SLURM_SCRIPT), path]
  return path, argv


def submit(argv: list[str]) -> str:
  """Runs `sbatch`; its output (the job id line)."""
  if shutil.which(argv[0]) is None:
    raise FileNotFoundError(f'{argv[0]}: not found on this machine; use --launcher=slurm '
                            '--dry_run to write the job array without submitting it')
  out = subprocess.run(argv, capture_output=True, text=True)
  if out.returncode:
    raise ValueError(f'{spec.shell_line(argv)} failed: {out.stderr.strip() or out.stdout}')
  return out.stdout.strip()
