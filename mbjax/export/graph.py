"""The model of a checkpoint as one jnp function of its input, and the description of that input.

What goes into an exported file (`mbjax.export`): the weights of `--checkpoint`, loaded by the one
loader (`mbjax.tasks.loading.load_model`) under the config the checkpoint records (the same
resolution as `mbjax.infer`: a workdir's `config.json`, a convert directory's backbone, an official
`.bin` with `--config`), closed over as constants.

Pose models may carry the official test-time options inside the graph (both off by default):
flip test, (f(x) + flip_pose(f(flip_pose(x)))) / 2, and root zeroing, as
`mbjax.evaluate.h36m.predict_clips` applies them for `mbjax.infer.lift`.

Mesh models (`MeshNet`, kind 'mesh') return three outputs, `MESH_OUTPUTS` in that order; their
flip test is the official one (`mbjax.models.mesh_head.mesh_flip_test`), and their SMPL model (read
from the config's `model.head.smpl_dir`) enters the graph as constants.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from mbjax.data import transforms
from mbjax.infer import action as action_lib
from mbjax.infer import model as model_lib
from mbjax.models import mesh_head

ACTION_TASKS = ('action', 'action_oneshot')
MESH_CONFIG = 'configs/mesh.py'  # the runtime fields of a mesh convert directory's config
MESH_OUTPUTS = ('theta', 'verts', 'kp_3d')
NUM_PERSONS = 2  # action clips hold two persons (the NTU layout of mbjax.evaluate.action)
# Attention without custom calls: the one form every platform and the ONNX converter take
# ('cudnn' would bake a GPU-only kernel into a multi-platform artefact).
EXPORT_ATTENTION = 'einsum'
DTYPES = ('float32', 'bfloat16')

POSE_NORMALISATION = (
    'H36M-17 2D keypoints (x, y, confidence), x and y in [-1, 1] as mbjax.infer.lift.normalise '
    "makes them: 'crop' (the track's square box, official crop_scale_2d) or 'pixel' "
    '((p - (w, h) / 2) / (min(w, h) / 2)); the 3D output is in the same units')
ACTION_NORMALISATION = (
    'two persons of H36M-17 2D keypoints (x, y, score), through the evaluators\' test transform '
    '(mbjax.evaluate.action: resampled to clip_len frames, crop_scale_2d at '
    'augment.scale_range_test)')
MESH_NORMALISATION = (
    'H36M-17 2D keypoints (x, y, confidence), x and y in [-1, 1] as the mesh datasets hold them '
    '(mbjax.data.mesh_clips); theta, verts and kp_3d are SMPL outputs, verts and kp_3d in mm')


@dataclasses.dataclass
class Exportable:
  """A loaded model as a function of one input array.

  Attributes:
    fn: jnp function, input (b, t, 17, C) or (b, 2, t, 17, C) float32 -> float32 output (a
      tuple of `output_names` for a mesh model).
    kind: 'pose', 'action-class', 'action-embed' or 'mesh'.
    input_shape: the input shape with 'b' and 't' for the symbolic dimensions.
    input_name: / output_names: names in the exported file.
    maxlen: the most frames the model takes (t <= maxlen).
    model: / variables: what `fn` applies (for tests and benches).
    options: flip_test, rootrel, dtype.
    config: the resolved config; source: where its model came from.
  """

  fn: Callable[[jax.Array], Any]
  kind: str
  input_shape: tuple
  input_name: str
  output_names: tuple
  maxlen: int
  model: Any
  variables: Any
  options: dict
  config: ml_collections.ConfigDict
  source: str


def _stored(checkpoint: str) -> tuple[str, dict | None]:
  """(kind, config.json) of the checkpoint's folder or the run it is in; ('official', None)."""
  path = os.path.abspath(checkpoint)
  for folder in (path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
    kind, stored = model_lib.stored_config(folder)
    if kind != 'official':
      return kind, stored
  return 'official', None


def _run_task(checkpoint: str) -> str | None:
  """The task the checkpoint's own config names (its folder or the run it is in), if any."""
  kind, stored = _stored(checkpoint)
  if kind == 'workdir':
    return stored.get('task')
  if kind == 'convert':
    model = str(stored.get('model', ''))
    return 'mesh' if model == 'mesh' else 'action' if model.startswith('action') else 'pose3d'
  return None


def mesh_config(checkpoint: str, config: ml_collections.ConfigDict | None
                ) -> tuple[ml_collections.ConfigDict, str]:
  """The mesh config of `checkpoint`: its run's, configs/mesh.py with a convert directory's
  model, or `config` (an official .bin)."""
  kind, stored = _stored(checkpoint)
  if kind == 'workdir':
    return ml_collections.ConfigDict(stored), f'workdir {checkpoint}'
  if kind == 'convert':
    c = model_lib.load_config_file(MESH_CONFIG)
    c.model = dict(c.model.to_dict(), **stored['backbone'], head=stored['head'])
    c.clip_len = min(int(c.clip_len), int(c.model.maxlen))
    return c, f'convert {checkpoint}'
  if config is None:
    raise ValueError(f'{checkpoint}: an official mesh .bin: pass the config it was trained with, '
                     'e.g. --config=configs/mesh.py:pw3d --config.model.head.smpl_dir=DIR')
  return ml_collections.ConfigDict(config.to_dict()), f'official {checkpoint} (model of --config)'


def resolve_config(checkpoint: str, config: ml_collections.ConfigDict | None
                   ) -> tuple[ml_collections.ConfigDict, str]:
  """(config of the checkpoint's model, where it came from), as mbjax.infer resolves it."""
  task = _run_task(checkpoint) or (config.get('task') if config is not None else None)
  if task == 'mesh':
    return mesh_config(checkpoint, config)
  if task in ACTION_TASKS:
    return ml_collections.ConfigDict(action_lib.resolve_config(checkpoint, config).to_dict()), (
        f'action {checkpoint}')
  config = config if config is not None else model_lib.load_config_file(model_lib.DEFAULT_CONFIG)
  config, source = model_lib.model_config(config, checkpoint)
  config.task = 'pose3d'  # the DSTformer with its 3D head, whatever task trained it
  return config, source


def model_kind(config: ml_collections.ConfigDict) -> str:
  """'pose', 'mesh', 'action-class' or 'action-embed' (the config's model head)."""
  head = config.model.get('head')
  if head and head.get('version') == 'mesh':
    return 'mesh'
  return f'action-{head.get("version", "class")}' if head else 'pose'


def pose_predict(model, variables, *, flip_test: bool, rootrel: bool) -> Callable:
  """(b, t, 17, C) -> (b, t, 17, 3) float32, with the official test-time options in the graph."""

  def predict(x):
    y = model.apply(variables, x).astype(jnp.float32)
    if flip_test:
      mirrored = model.apply(variables, transforms.flip_pose(x)).astype(jnp.float32)
      y = (y + transforms.flip_pose(mirrored)) / 2
    if rootrel:
      y = y.at[:, :, 0, :].set(0)
    return y

  return predict


def mesh_predict(model, variables, *, flip_test: bool) -> Callable:
  """(b, t, 17, C) -> (theta, verts, kp_3d) float32 (`MESH_OUTPUTS`), flip test in the graph."""

  def predict(x):
    if flip_test:
      out = mesh_head.mesh_flip_test(model, variables, x)
    else:
      out = model.apply(variables, x)
    return tuple(out[k].astype(jnp.float32) for k in MESH_OUTPUTS)

  return predict


def _check_options(checkpoint: str, kind: str, flip_test: bool, rootrel: bool) -> None:
  if kind == 'mesh' and rootrel:
    raise ValueError(f'{checkpoint}: a mesh model; --rootrel is an option of pose models (a mesh '
                     "model's verts and kp_3d are SMPL outputs in mm, not root-zeroed joints)")
  if kind not in ('pose', 'mesh') and (flip_test or rootrel):
    raise ValueError(f'{checkpoint}: an {kind} model; --flip_test and --rootrel are options of '
                     'pose models (--flip_test also of mesh models)')


def build(checkpoint: str, config: ml_collections.ConfigDict | None = None, *,
          dtype: str = 'float32', flip_test: bool = False, rootrel: bool = False) -> Exportable:
  """The model of `checkpoint` (module docstring) as an `Exportable`."""
  from mbjax.tasks.loading import load_model
  if dtype not in DTYPES:
    raise ValueError(f'--dtype={dtype!r}: expected one of {DTYPES}')
  checkpoint = model_lib.checkpoint_dir(checkpoint)
  if not os.path.exists(checkpoint):
    raise FileNotFoundError(f'{checkpoint}: no such checkpoint (official .bin, convert dir or '
                            'workdir)')
  config, source = resolve_config(checkpoint, config)
  config.model.attention_impl = EXPORT_ATTENTION
  config.model.dtype = dtype
  kind = model_kind(config)
  _check_options(checkpoint, kind, flip_test, rootrel)
  _, model, variables = load_model(config, checkpoint)
  maxlen, dim_in = int(config.model.maxlen), int(config.model.get('dim_in', 3))
  if kind == 'pose':
    fn = pose_predict(model, variables, flip_test=flip_test, rootrel=rootrel)
    shape, outputs = ('b', 't', 17, dim_in), ('joints_3d',)
  elif kind == 'mesh':
    fn = mesh_predict(model, variables, flip_test=flip_test)
    shape, outputs = ('b', 't', 17, dim_in), MESH_OUTPUTS
  else:
    fn = lambda x: model.apply(variables, x).astype(jnp.float32)  # noqa: E731
    shape = ('b', NUM_PERSONS, 't', 17, dim_in)
    outputs = ('logits' if kind == 'action-class' else 'embedding',)
  return Exportable(fn=fn, kind=kind, input_shape=shape, input_name='keypoints_2d',
                    output_names=outputs, maxlen=maxlen, model=model, variables=variables,
                    options=dict(flip_test=flip_test, rootrel=rootrel, dtype=dtype),
                    config=config, source=source)


def symbolic_input(shape: tuple, maxlen: int) -> jax.ShapeDtypeStruct:
  """A float32 ShapeDtypeStruct of `shape` with 'b' and 't' symbolic, t <= maxlen."""
  b, t = jax.export.symbolic_shape('b, t', constraints=(f't <= {maxlen}',))
  dims = tuple({'b': b, 't': t}.get(d, d) for d in shape)
  return jax.ShapeDtypeStruct(dims, jnp.float32)


def output_shapes(ex: Exportable) -> list[list]:
  """The shape of each output, symbolic dimensions as their names ('b', 't')."""
  out = jax.eval_shape(ex.fn, symbolic_input(ex.input_shape, ex.maxlen))
  return [[d if isinstance(d, int) else str(d) for d in o.shape]
          for o in jax.tree_util.tree_leaves(out)]


def checkpoint_sha256(checkpoint: str) -> dict[str, str]:
  """sha256 of the checkpoint file, or of every file under a checkpoint directory."""
  checkpoint = model_lib.checkpoint_dir(checkpoint)
  if os.path.isfile(checkpoint):
    return {os.path.basename(checkpoint): _sha256(checkpoint)}
  found = {}
  for root, dirs, files in os.walk(checkpoint):
    dirs.sort()
    for name in sorted(files):
      path = os.path.join(root, name)
      found[os.path.relpath(path, checkpoint)] = _sha256(path)
  return found


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()
