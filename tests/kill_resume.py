"""SIGKILL a training command line once it has saved a checkpoint, run it again, and read the
final state: shared by the resume tests of several tasks."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import orbax.checkpoint as ocp

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main_process(args, workdir):
  """`python -m mbjax.train ARGS --workdir=WORKDIR` on CPU, output captured."""
  cmd = [sys.executable, '-m', 'mbjax.train', *args, f'--workdir={workdir}']
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='')
  return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def final_state(workdir):
  """(latest checkpointed step, its train state as numpy)."""
  with ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'),
                             item_names=('state', 'data')) as m:
    step = m.latest_step()
    state = m.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
  return step, jax.device_get(state)


def run_to_end(args, workdir, timeout=300):
  out, _ = (proc := main_process(args, workdir)).communicate(timeout=timeout)
  assert proc.returncode == 0, out


def kill_after_checkpoint(args, workdir, min_step, timeout=240):
  """Starts the run and SIGKILLs it once a checkpoint of step >= `min_step` exists; returns the
  latest checkpointed step then."""
  proc = main_process(args, workdir)
  ckpts = os.path.join(workdir, 'checkpoints')
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    steps = [int(s) for s in os.listdir(ckpts) if s.isdigit()] if os.path.isdir(ckpts) else []
    if steps and max(steps) >= min_step:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  return final_state(workdir)[0]
