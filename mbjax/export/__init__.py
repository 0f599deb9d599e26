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
           config: ml_collections.ConfigDict | None = None, *, overwrite: bool = False,
           **options) -> dict:
  """Writes `out` and `out.json` for the model of `checkpoint`; returns the sidecar.

  Each file is written under a temporary name and renamed into place, the model file first and
  then the sidecar that names its sha256: a kill leaves the old pair, or a new file beside the
  old sidecar (which `load` refuses), never a partial file.

  Args:
    checkpoint: an official .bin (with `config`), a convert directory or a trainer workdir.
    out: the file to write.
    fmt: 'stablehlo' or 'onnx'.
    config: the config of an official .bin (default: mbjax.infer's, the official Lite model).
    overwrite: replace an existing `out` or `out.json` (else FileExistsError, before any work).
    **options: dtype ('float32' | 'bfloat16'), flip_test, rootrel (pose only) (graph.py).
  """
  from mbjax.export import graph, onnx_graph, sidecar, stablehlo
  from mbjax.files import atomic
  if fmt not in FORMATS:
    raise ValueError(f'--format={fmt!r}: expected one of {FORMATS}')
  if fmt == 'onnx' and options.get('dtype', 'float32') != 'float32':  # a flag mistake comes first
    raise ValueError(f'--dtype={options["dtype"]}: the ONNX export is float32 only (bfloat16 is '
                     'for --format=stablehlo)')
  for path in (out, sidecar.path_of(out)):
    atomic.check_new(path, overwrite)
  ex = graph.build(checkpoint, config, **options)
  data, fields = (stablehlo if fmt == 'stablehlo' else onnx_graph).serialize(ex)
  meta = sidecar.describe(ex, checkpoint, fmt, file_sha256=atomic.sha256_bytes(data), **fields)
  atomic.write_bytes(out, data, overwrite=overwrite)
  if not atomic.is_device(out):  # /dev/null: no sidecar beside it
    sidecar.write(out, meta, overwrite=overwrite)
  return meta


def load(file: str) -> Callable:
  """The exported model `file` as a callable (StableHLO: jax; ONNX: onnxruntime); a model with
  several outputs returns a dict of them by name, in the sidecar's order. A file that is not the
  one its sidecar describes, or is cut short, is a ValueError naming it."""
  from mbjax.export import onnx_graph, sidecar, stablehlo
  meta = sidecar.read(file)
  sidecar.check_file(file, meta)
  return (stablehlo if meta['format'] == 'stablehlo' else onnx_graph).load(file, meta)
