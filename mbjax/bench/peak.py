"""This machine's limit: the fp32 and bf16 matmul peak of its CPU (cached for every bench and the
trainer's MFU), its model and ISA flags, and (`--trial`) the matmul path timings again.

  python -m mbjax.bench peak [--trial]
"""

from __future__ import annotations

import jax

from mbjax.cli import dot_path, machine
from mbjax.train import peak_flops


def run(args) -> dict:
  result = dict(bench='peak', cpu_model=machine.cpu_model(), cpu_flags=machine.cpu_flags(),
                backend=jax.default_backend())
  if args.trial:  # times each path in child processes and caches the choice for later starts
    result['dot_path_trial'] = machine.remembered(dot_path.CACHE, machine.key(),
                                                  dot_path.run_trial, again=True)
  result['peak_gflops'] = {dtype: round(peak_flops.cpu_peak(dtype, remeasure=True) / 1e9, 1)
                           for dtype in ('float32', 'bfloat16')}
  result['matmul_shapes'] = [list(s) for s in peak_flops.CPU_PEAK_SHAPES]
  return result


def define_flags(fv) -> None:
  """This bench's flags, in their own absl FlagValues `fv`."""
  from absl import flags
  flags.DEFINE_bool('trial', False, 'also time every matmul path again (mbjax.cli.dot_path) '
                    'and cache the fastest for later program starts', flag_values=fv)
