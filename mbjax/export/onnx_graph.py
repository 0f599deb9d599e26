"""ONNX through jax2onnx, run with onnxruntime: dynamic batch and frame axes ('b', 't').

The graph is the same jnp function the StableHLO export takes; what the converter needs of it is
chosen on our side (`graph.EXPORT_ATTENTION`: einsum attention; GELU stays the exact erf form,
which jax2onnx maps to ONNX Erf).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from mbjax.export import graph
from mbjax.export import sidecar

OPSET = 23  # jax2onnx 0.17's default; onnxruntime 1.32 runs it


def _quiet() -> None:
  """jax2onnx imports plugins for libraries we do not use (equinox, dm_pix) and logs each one it
  cannot import with a traceback; onnx_ir warns about untyped shape constants. Neither matters."""
  logging.getLogger('jax2onnx').setLevel(logging.ERROR)
  logging.getLogger('onnx_ir').setLevel(logging.ERROR)


def to_proto(fn: Callable, input_shape: tuple, maxlen: int, *, input_name: str = 'x',
             output_names: tuple = ('y',), model_name: str = 'mbjax'):
  """The onnx.ModelProto of `fn` on a float32 input of `input_shape` ('b', 't' dynamic); a `fn`
  returning a tuple has one graph output per name of `output_names`, in order."""
  _quiet()
  jax2onnx = _import_converter()
  spec = graph.symbolic_input(input_shape, maxlen)
  return jax2onnx.to_onnx(fn, [spec], model_name=model_name, opset=OPSET,
                          input_names=[input_name], output_names=list(output_names))


def _import_converter():
  try:
    import jax2onnx
  except ImportError:
    raise ValueError('--format=onnx needs jax2onnx, installed apart because it pins an older orbax '
                     'it never imports: pip install --no-deps jax2onnx==0.17.1 (requirements.txt)'
                     ) from None
  return jax2onnx


def serialize(ex: graph.Exportable) -> tuple[bytes, dict]:
  """The .onnx file's bytes (one file, weights inline) and the sidecar fields of this format."""
  if ex.options['dtype'] != 'float32':
    raise ValueError(f'--dtype={ex.options["dtype"]}: the ONNX export is float32 only (bfloat16 '
                     'is for --format=stablehlo)')
  jax2onnx = _import_converter()
  import onnx
  proto = to_proto(ex.fn, ex.input_shape, ex.maxlen, input_name=ex.input_name,
                   output_names=ex.output_names, model_name=f'mbjax_{ex.kind}')
  return proto.SerializeToString(), dict(opset=OPSET, onnx_version=onnx.__version__,
                                         jax2onnx_version=_version('jax2onnx', jax2onnx))


def _version(name: str, module) -> str:
  from importlib import metadata
  try:
    return metadata.version(name)
  except metadata.PackageNotFoundError:
    return getattr(module, '__version__', 'unknown')


def session(model, threads: int | None = None):
  """An onnxruntime CPU session of a file path or serialized model bytes."""
  import onnxruntime as ort
  options = ort.SessionOptions()
  if threads:
    options.intra_op_num_threads = threads
  return ort.InferenceSession(model, options, providers=['CPUExecutionProvider'])


def load(file: str, meta: dict) -> Callable[[np.ndarray], Any]:
  """The ONNX file as an onnxruntime callable that checks its input against `meta` (several
  outputs: a dict of them by name, in the sidecar's order)."""
  try:
    run_session = session(file)
  except Exception as e:  # pylint: disable=broad-except  # onnxruntime's own error types
    raise ValueError(f'{file}: not a complete ONNX export ({type(e).__name__}: '
                     f'{str(e).splitlines()[0][:200] if str(e) else ""}); export it again') from e
  name = meta['inputs'][0]['name']
  names = [o['name'] for o in meta['outputs']]

  def run(x):
    sidecar.check_input(meta, x)
    return sidecar.named_outputs(meta, run_session.run(names, {name: np.asarray(x, np.float32)}))

  return run
