"""Exported models: StableHLO (`jax.export`) and ONNX (jax2onnx), each with a JSON sidecar.

  python -m mbjax.export --checkpoint=CKPT --format=stablehlo --out=pose.hlo [--flip_test]
  predict = mbjax.export.load('pose.hlo')   # or 'pose.onnx' (onnxruntime)
  predict(x)                                # x: (B, T, 17, 3) float32, any B, T <= maxlen

`load` reads `FILE.json` (mbjax/export/sidecar.py) and rejects inputs that do not fit it. A mesh
model (kind 'mesh') returns {'theta', 'verts', 'kp_3d'} (verts and kp_3d in mm); it exports to
StableHLO only (mbjax/export/onnx_graph.py: MESH_REFUSED says why).
"""

from __future__ import annotations

from typing import Callable

import ml_collections

FORMATS = ('stablehlo', 'onnx')


def export(checkpoint: str, out: str, fmt: str = 'stablehlo',
           config: ml_collections.ConfigDict | None = None, **options) -> dict:
  """Writes `out` and `out.json` for the model of `checkpoint`; returns the sidecar.

  Args:
    checkpoint: an official .bin (with `config`), a convert directory or a trainer workdir.
    out: the file to write.
    fmt: 'stablehlo' or 'onnx'.
    config: the config of an official .bin (default: mbjax.infer's, the official Lite model).
    **options: dtype ('float32' | 'bfloat16'), flip_test, rootrel (pose only) (graph.py).
  """
  from mbjax.export import graph, onnx_graph, sidecar, stablehlo
  if fmt not in FORMATS:
    raise ValueError(f'--format={fmt!r}: expected one of {FORMATS}')
  ex = graph.build(checkpoint, config, **options)
  fields = (stablehlo if fmt == 'stablehlo' else onnx_graph).save(ex, out)
  meta = sidecar.describe(ex, checkpoint, fmt, **fields)
  sidecar.write(out, meta)
  return meta


def load(file: str) -> Callable:
  """The exported model `file` as a callable (StableHLO: jax; ONNX: onnxruntime); a model with
  several outputs returns a dict of them by name, in the sidecar's order."""
  from mbjax.export import onnx_graph, sidecar, stablehlo
  meta = sidecar.read(file)
  return (stablehlo if meta['format'] == 'stablehlo' else onnx_graph).load(file, meta)
