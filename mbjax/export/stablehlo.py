"""StableHLO through `jax.export`: one serialized artefact for cpu, cuda and tpu.

Batch and frame dimensions are symbolic ('b', 't', with t <= maxlen), so one file runs every
(B, T) the model takes; each new shape compiles once where it is called back.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from mbjax.export import graph
from mbjax.export import sidecar

PLATFORMS = ('cpu', 'cuda', 'tpu')


def export_fn(fn: Callable, input_shape: tuple, maxlen: int,
              platforms=PLATFORMS) -> jax.export.Exported:
  """`fn` exported for a float32 input of `input_shape` ('b', 't' symbolic)."""
  spec = graph.symbolic_input(input_shape, maxlen)
  return jax.export.export(jax.jit(fn), platforms=platforms)(spec)


def serialize(ex: graph.Exportable) -> tuple[bytes, dict]:
  """The serialized artefact and the sidecar fields of this format."""
  exported = export_fn(ex.fn, ex.input_shape, ex.maxlen)
  return bytes(exported.serialize()), dict(
      platforms=list(exported.platforms),
      calling_convention_version=exported.calling_convention_version,
      jax_version=jax.__version__)


def _deserialize(file: str) -> jax.export.Exported:
  with open(file, 'rb') as f:
    data = f.read()
  try:
    return jax.export.deserialize(bytearray(data))
  except Exception as e:  # pylint: disable=broad-except  # flatbuffers fail as struct.error etc.
    what = 'the file is empty' if not data else f'{len(data):,} bytes that do not deserialize'
    raise ValueError(f'{file}: not a complete StableHLO export ({what}); export it '
                     'again') from e


def load(file: str, meta: dict) -> Callable[[np.ndarray], Any]:
  """The artefact `file` as a jitted callable that checks its input against `meta` (several
  outputs: a dict of them by name, in the sidecar's order)."""
  exported = _deserialize(file)
  call = jax.jit(exported.call)

  def run(x):
    sidecar.check_input(meta, x)
    out = call(x if getattr(x, 'dtype', None) == np.float32 else np.asarray(x, np.float32))
    return sidecar.named_outputs(meta, out if isinstance(out, (tuple, list)) else [out])

  return run
