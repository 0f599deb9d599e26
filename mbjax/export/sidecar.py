"""The JSON file next to an exported model (`FILE.json`): what it takes, returns and came from.

A runtime that knows nothing of mbjax reads from it the input and output names, shapes (with the
symbolic 'b' and 't'), dtypes, `max_frames` (t <= max_frames), the H36M-17 joint order, the
input normalisation, the test-time options baked into the graph, the source checkpoint's
sha256 and the exported file's own (`file_sha256`: `load` refuses a file that is not the one the
sidecar describes).
"""

from __future__ import annotations

import json
import os

import numpy as np

import mbjax
from mbjax.data import skeletons
from mbjax.export import graph
from mbjax.files import atomic


def path_of(file: str) -> str:
  return f'{file}.json'


MESH_UNITS = dict(theta='24 SMPL joint rotations as axis-angles (radians), then 10 betas',
                  verts='mm', kp_3d='mm')
SMPL_EMBEDDED = ('the SMPL arrays (template, blend shapes, regressors, skinning weights) of the '
                 "checkpoint's model.head.smpl_dir are constants inside the exported graph")


def _normalisation(kind: str) -> str:
  if kind == 'pose':
    return graph.POSE_NORMALISATION
  return graph.MESH_NORMALISATION if kind == 'mesh' else graph.ACTION_NORMALISATION


def _outputs(ex: graph.Exportable) -> list[dict]:
  """name, shape, dtype (and units, for a mesh model) of each output."""
  found = []
  for name, shape in zip(ex.output_names, graph.output_shapes(ex), strict=True):
    found.append(dict(name=name, shape=shape, dtype='float32'))
    if ex.kind == 'mesh':
      found[-1]['units'] = MESH_UNITS[name]
  return found


def _mesh_fields(ex: graph.Exportable) -> dict:
  if ex.kind != 'mesh':
    return {}
  return dict(smpl_vertices=int(ex.model.smpl.num_vertices), smpl_embedded=SMPL_EMBEDDED)


def describe(ex: graph.Exportable, checkpoint: str, fmt: str, **extra) -> dict:
  """The sidecar of `ex` exported as `fmt` ('stablehlo' or 'onnx')."""
  return dict(
      format=fmt, kind=ex.kind, mbjax_version=mbjax.__version__,
      inputs=[dict(name=ex.input_name, shape=list(ex.input_shape), dtype='float32')],
      outputs=_outputs(ex),
      max_frames=ex.maxlen, symbolic_dims=dict(b='batch (clips)', t=f'frames, 1..{ex.maxlen}'),
      joints=list(skeletons.H36M_JOINTS), normalisation=_normalisation(ex.kind),
      compute_dtype=ex.options['dtype'], flip_test=ex.options['flip_test'],
      rootrel=ex.options['rootrel'], model_source=ex.source,
      checkpoint=os.path.basename(os.path.normpath(checkpoint)),
      checkpoint_sha256=graph.checkpoint_sha256(checkpoint), **_mesh_fields(ex), **extra)


def write(file: str, meta: dict, *, overwrite: bool = True) -> None:
  """`file`.json, atomically."""
  atomic.write_text(path_of(file), json.dumps(meta, indent=1), overwrite=overwrite)


def read(file: str) -> dict:
  path = path_of(file)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path}: no sidecar next to {file} (written by mbjax.export)')
  try:
    with open(path) as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f'{path}: damaged sidecar ({e}); export {file} again') from None


def check_file(file: str, meta: dict) -> None:
  """ValueError unless `file` is the one its sidecar describes (`file_sha256`; sidecars written
  before it was recorded are taken on trust)."""
  want = meta.get('file_sha256')
  if want is None:
    return
  if not os.path.isfile(file):
    raise FileNotFoundError(f'{file}: no such file (its sidecar {path_of(file)} is there)')
  got = atomic.sha256(file)
  if got != want:
    raise ValueError(f'{file} does not match its sidecar {path_of(file)} (sha256 {got[:12]}..., '
                     f'the sidecar names {want[:12]}...): an export was interrupted or one of '
                     'the two was replaced; export it again')


def named_outputs(meta: dict, outputs):
  """The one output array, or {name: array} of several in the sidecar's order."""
  names = [o['name'] for o in meta['outputs']]
  if len(names) == 1:
    return outputs[0]
  return dict(zip(names, outputs, strict=True))


def check_input(meta: dict, x) -> None:
  """Raises ValueError unless `x` fits the sidecar's input (fixed sizes, t <= max_frames)."""
  spec = meta['inputs'][0]
  want = spec['shape']
  shape = tuple(np.shape(x))
  if len(shape) != len(want) or any(isinstance(w, int) and w != s for w, s in zip(want, shape)):
    raise ValueError(f'{spec["name"]}: got shape {shape}, expected {tuple(want)}')
  frames = shape[want.index('t')]
  if frames > meta['max_frames']:
    raise ValueError(f'{spec["name"]}: a clip of t={frames} frames is longer than the model\'s '
                     f'maxlen={meta["max_frames"]}; cut it into clips of at most '
                     f'{meta["max_frames"]} frames')
  if shape[0] < 1 or frames < 1:
    raise ValueError(f'{spec["name"]}: got shape {shape}, expected at least one clip and frame')
