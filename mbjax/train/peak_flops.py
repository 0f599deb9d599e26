"""Peak dense matmul FLOP/s of one device, the denominator of MFU.

Accelerators come from a table of published dense (no sparsity) peaks per chip / GPU; a CPU is
measured with a jitted large matmul, once per machine, matmul path and dtype, and cached
(`mbjax.cli.machine`; `python -m mbjax.bench peak` measures again). The `float32` column is what an fp32 matmul runs at under
JAX's default precision: one bf16 MXU pass on TPU, TF32 tensor cores on Ampere/Hopper GPUs.
`float32_highest` is the rate under `jax_default_matmul_precision='highest'` (TPU: 6 bf16 passes,
GPU: IEEE fp32 on CUDA cores).
"""

from __future__ import annotations

import re
import time

import jax
import jax.numpy as jnp
import numpy as np

T = 1e12

# name: (device_kind regex, {dtype: FLOP/s}), first match wins. `device_kind` as JAX reports it:
# 'TPU v4', 'TPU v5 lite' (v5e), 'TPU v5' (v5p), 'TPU v6 lite' (v6e), 'NVIDIA H100 80GB HBM3', ...
# The lower-clocked NVL boards are left out rather than given the SXM numbers.
PEAKS = {
    'tpu_v4': (r'^tpu v4$', {'bfloat16': 275 * T, 'float32': 275 * T,
                             'float32_highest': 275 * T / 6}),
    'tpu_v5e': (r'^tpu v5 ?(lite|e)', {'bfloat16': 197 * T, 'float32': 197 * T,
                                       'float32_highest': 197 * T / 6}),
    'tpu_v5p': (r'^tpu v5p?$', {'bfloat16': 459 * T, 'float32': 459 * T,
                                'float32_highest': 459 * T / 6}),
    'tpu_v6e': (r'^tpu v6 ?(lite|e)', {'bfloat16': 918 * T, 'float32': 918 * T,
                                       'float32_highest': 918 * T / 6}),
    'a100': (r'a100', {'bfloat16': 312 * T, 'float32': 156 * T, 'float32_highest': 19.5 * T}),
    'h100_pcie': (r'h100.*pcie', {'bfloat16': 756 * T, 'float32': 378 * T,
                                  'float32_highest': 51 * T}),
    'h100_sxm': (r'h100(?!.*nvl)', {'bfloat16': 989 * T, 'float32': 494.7 * T,
                                    'float32_highest': 67 * T}),
    'h200': (r'h200(?!.*nvl)', {'bfloat16': 989 * T, 'float32': 494.7 * T,
                                'float32_highest': 67 * T}),
}


def accelerator_name(device_kind: str) -> str | None:
  """The `PEAKS` key of a JAX `device_kind`, None if the device is not in the table."""
  kind = device_kind.strip().lower()
  for name, (pattern, _) in PEAKS.items():
    if re.search(pattern, kind):
      return name
  return None


def _precision_column(dtype: str) -> str:
  if dtype != 'float32':
    return dtype
  precision = str(jax.config.jax_default_matmul_precision or '').lower()
  return 'float32_highest' if precision in ('highest', 'float32') else 'float32'


def measure_matmul_flops(device: jax.Device | None = None, dtype: str = 'float32', *,
                         n: int = 1024, min_seconds: float = 0.5,
                         shape: tuple[int, int, int] | None = None) -> float:
  """Best FLOP/s of a jitted (m, k) @ (k, n) matmul on `device` over at least `min_seconds`;
  `shape` (m, k, n), default (n, n, n)."""
  device = device or jax.local_devices()[0]
  m, k, n = shape or (n, n, n)
  rng = np.random.default_rng(0)
  a, b = (jax.device_put(jnp.asarray(rng.standard_normal(s), dtype), device)
          for s in ((m, k), (k, n)))
  matmul = jax.jit(jnp.matmul)
  jax.block_until_ready(matmul(a, b))
  best, start = float('inf'), time.perf_counter()
  while time.perf_counter() - start < min_seconds:
    t0 = time.perf_counter()
    jax.block_until_ready(matmul(a, b))
    best = min(best, time.perf_counter() - t0)
  return 2.0 * m * k * n / best


PEAK_CACHE = 'cpu_peak.json'
# (m, k, n) of the matmuls timed for the CPU peak, the fastest taken: a large square one and the
# tall ones of the release DSTformer's own dense layers (B*T*J rows by the widths 512 / 1024 /
# 1536), since a CPU's kernels need not reach their best rate on the square shape (Zen 3,
# YNNPACK: 2048^3 ran at 80 GFLOP/s while the model's dots ran faster).
CPU_PEAK_SHAPES = ((2048, 2048, 2048), (8192, 512, 2048), (8192, 1024, 1024))


def cpu_peak(dtype: str = 'float32', *, remeasure: bool = False) -> float:
  """FLOP/s of the fastest of `CPU_PEAK_SHAPES`' jitted matmuls on this machine's CPU (all its
  cores), from the cache or measured now (a few seconds) and cached."""
  from mbjax.cli import dot_path, machine  # pylint: disable=g-import-not-at-top
  def measure():
    device = jax.local_devices(backend='cpu')[0]
    return max(measure_matmul_flops(device, dtype, shape=shape, min_seconds=1.0)
               for shape in CPU_PEAK_SHAPES)
  key = f'{machine.key()} | dot {dot_path.active()} | {dtype}'
  return float(machine.remembered(PEAK_CACHE, key, measure, again=remeasure))


def peak_flops_per_device(dtype: str = 'bfloat16',
                          device: jax.Device | None = None) -> tuple[float, str]:
  """(peak FLOP/s of one device for matmuls in `dtype`, where the number comes from).

  Args:
    dtype: the compute dtype, 'bfloat16' or 'float32'.
    device: defaults to the first local device.

  A CPU is measured, and the result is split over the process's CPU devices, since fake devices
  (`--xla_force_host_platform_device_count`) share the same cores. Unknown accelerators raise.
  """
  if dtype not in ('bfloat16', 'float32'):
    raise ValueError(f'peak_flops_per_device: dtype {dtype!r}, expected bfloat16 or float32')
  device = device or jax.local_devices()[0]
  if device.platform == 'cpu':
    cpus = len(jax.local_devices(backend='cpu'))
    flops = cpu_peak(dtype) / cpus
    return flops, f'measured {dtype} matmul (cached) / {cpus} CPU devices'
  name = accelerator_name(device.device_kind)
  if name is None:
    raise KeyError(f'mbjax/train/peak_flops.py: no peak FLOP/s for device_kind '
                   f'{device.device_kind!r}; add it to PEAKS (known: {sorted(PEAKS)})')
  column = _precision_column(dtype)
  return PEAKS[name][1][column], f'table {name} {column}'
