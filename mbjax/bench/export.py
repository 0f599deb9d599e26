"""`python -m mbjax.bench export`: exported DSTformer inference next to jax.jit, frames/s on CPU.

Random weights of `--variant` (factory), einsum attention (what `mbjax.export` writes), one input
of (B, T, 17, 3). Timed: jax.jit of the model, the StableHLO artefact called back (deserialized,
jitted), and the ONNX graph under onnxruntime (CPU). Also the max difference of each to jax.jit.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from flax.core import meta

from mbjax.bench.model import _time
from mbjax.models import dstformer_from_variant


def _timed(fn, x, args) -> dict:
  seconds, calls = _time(fn, x, iters=args.iters, min_seconds=args.min_seconds)
  frames = x.shape[0] * x.shape[1]
  return dict(step_s=round(seconds, 4), frames_per_s=round(frames / seconds, 1), calls=calls)


def run(args) -> dict:
  from mbjax.export import graph, onnx_graph, stablehlo
  model = dstformer_from_variant(args.variant, attention_impl=graph.EXPORT_ATTENTION)
  B, T = args.batch, args.frames
  x = np.random.default_rng(0).uniform(-1, 1, (B, T, 17, 3)).astype(np.float32)
  variables = meta.unbox(jax.jit(model.init)(jax.random.key(0), x[:, :1]))
  fn = graph.pose_predict(model, variables, flip_test=False, rootrel=False)
  result = dict(bench='export', variant=args.variant, batch=B, frames=T, attention='einsum',
                backend=jax.default_backend())
  jitted = jax.jit(fn)
  want = np.asarray(jitted(x))
  result['jax_jit'] = _timed(jitted, x, args)

  t0 = time.perf_counter()
  exported = jax.export.deserialize(stablehlo.export_fn(fn, ('b', 't', 17, 3), model.maxlen)
                                    .serialize())
  result['stablehlo_export_s'] = round(time.perf_counter() - t0, 2)
  call = jax.jit(exported.call)
  result['stablehlo_max_abs_diff'] = float(np.abs(np.asarray(call(x)) - want).max())
  result['stablehlo'] = _timed(call, x, args)

  t0 = time.perf_counter()
  proto = onnx_graph.to_proto(fn, ('b', 't', 17, 3), model.maxlen)
  result['onnx_convert_s'] = round(time.perf_counter() - t0, 2)
  session = onnx_graph.session(proto.SerializeToString(), threads=args.ort_threads)
  ort_run = lambda a: session.run(None, {'x': a})[0]  # noqa: E731
  result['onnx_max_abs_diff'] = float(np.abs(ort_run(x) - want).max())
  result['onnxruntime'] = _timed(ort_run, x, args)
  result['onnxruntime']['threads'] = args.ort_threads or 'default'
  return result


def define_flags(fv) -> None:
  """This bench's flags, in their own absl FlagValues `fv`."""
  from absl import flags
  from mbjax import bench
  bench.define_model_flags(fv, iters=3)
  flags.DEFINE_integer('ort_threads', 0, 'onnxruntime intra-op threads (0: its default)',
                       flag_values=fv)
