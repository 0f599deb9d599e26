"""The SMPL body model in JAX: loading the published files and the differentiable forward.

  smpl = SMPL.from_file('data/mesh')          # the official `data_root`, or the .pkl, or our .npz
  out = smpl(betas, rotmats)                  # (N, 10), (N, 24, 3, 3) -> vertices, joints (m)
  kp = smpl.joints_h36m(out['vertices'])      # (N, 17, 3), the official J_regressor_h36m

What it computes is smplx's `SMPL(..., pose2rot=False)` without global translation, as the
official `lib/utils/utils_smpl.py` wrapper calls it: shape blend shapes, pose blend shapes from
(R[1:] - I), joints regressed from the shaped rest mesh, forward kinematics along the kinematic
tree, linear blend skinning.

Design: `SMPL` is a frozen pytree dataclass of float32 numpy arrays (`parents` is static), and
the forward is a pure function of it. A Flax head embeds it most simply as a module attribute:
its arrays then enter the jitted program as constants, never as parameters, so no optimizer,
checkpoint or sharding rule ever sees them (the official checkpoint's SMPL buffers are data we
load from the SMPL files, not weights). Passing it as a jit argument works as well (a pytree).

Precision: everything is computed in float32 with HIGHEST matmul precision whatever the input
dtype, and the outputs are float32: bf16 has an 8-bit mantissa, millimetres at a metre, far
more than the 1e-6 m the model is checked to. Cast the outputs if a bf16 head wants them so.

The published `SMPL_NEUTRAL.pkl` is a Python 2 pickle whose arrays may be chumpy objects and
whose `J_regressor` is a scipy sparse matrix; it is read without chumpy (and without scipy) by
an unpickler that maps those classes to stand-ins keeping their arrays. `--to-npz` writes the
same arrays, and the SPIN-style files beside the pickle, into one plain `.npz`:

  python -m mbjax.models.smpl --to-npz data/mesh smpl_neutral.npz
"""

from __future__ import annotations

import os
import pickle
import sys
import zipfile
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mbjax.data import rotations

NUM_JOINTS = 24
NUM_BETAS = 10
NUM_POSE_BASIS = (NUM_JOINTS - 1) * 9  # 207
MODEL_FILE = 'SMPL_NEUTRAL.pkl'
H36M_REGRESSOR_FILE = 'J_regressor_h36m_correct.npy'
EXTRA_REGRESSOR_FILE = 'J_regressor_extra.npy'
MEAN_PARAMS_FILE = 'smpl_mean_params.npz'
_NPZ_MARKER = 'mbjax_smpl_format'
_NPZ_VERSION = 1
_HIGHEST = jax.lax.Precision.HIGHEST

# ---------------------------------------------------------------------------------------------
# Reading the published pickle without chumpy or scipy.
# ---------------------------------------------------------------------------------------------


class _ChumpyStandIn:
  """What a pickled `chumpy.ch.Ch` becomes: its state dict, whose 'x' is the array."""

  def __init__(self, *args, **kwargs):
    del args, kwargs
    self.state = {}

  def __setstate__(self, state):
    self.state = state if isinstance(state, dict) else {'state': state}


class _SparseStandIn:
  """What a pickled scipy sparse matrix becomes: `_shape`, `data`, `indices`, `indptr`, `format`."""

  def __init__(self, *args, **kwargs):
    del args, kwargs
    self.state = {}

  def __setstate__(self, state):
    self.state = state


class _SMPLUnpickler(pickle.Unpickler):
  """Maps chumpy and scipy.sparse classes to stand-ins; numpy and builtins as usual."""

  def find_class(self, module, name):
    if module == 'chumpy' or module.startswith('chumpy.'):
      return _ChumpyStandIn
    if module.startswith('scipy.sparse') and name in ('csc_matrix', 'csr_matrix'):
      return _SparseStandIn
    if module.startswith('numpy.core') and hasattr(np, '_core'):  # numpy 2 renamed numpy.core
      module = 'numpy._core' + module[len('numpy.core'):]
    return super().find_class(module, name)


def _densify(sparse: _SparseStandIn, where: str) -> np.ndarray:
  """A csc/csr stand-in -> dense float64 (V-dense regressor); duplicates summed as scipy does."""
  s = sparse.state
  try:
    shape, data, indices, indptr, fmt = (s['_shape'], np.asarray(s['data']),
                                         np.asarray(s['indices']), np.asarray(s['indptr']),
                                         s.get('format', 'csc'))
  except KeyError as e:
    raise ValueError(f'{where}: sparse matrix without field {e}') from None
  fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
  dense = np.zeros(tuple(int(n) for n in shape), np.float64)
  major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
  rows, cols = (indices, major) if fmt == 'csc' else (major, indices)
  np.add.at(dense, (rows, cols), data)
  return dense


def _plain(value, where: str):
  """A pickled field as plain numpy: chumpy -> its 'x', sparse -> dense."""
  if isinstance(value, _ChumpyStandIn):
    if 'x' not in value.state:
      raise ValueError(f'{where}: a chumpy object without an array (state keys '
                       f'{sorted(value.state)}); only plain chumpy.ch.Ch leaves are supported')
    return np.asarray(value.state['x'])
  if isinstance(value, _SparseStandIn):
    return _densify(value, where)
  return value


def _read_pickle(path: str) -> dict:
  with open(path, 'rb') as f:
    try:
      data = _SMPLUnpickler(f, encoding='latin1').load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as e:
      raise ValueError(f'{path}: not a readable SMPL model pickle ({type(e).__name__}: {e})'
                       ) from None
  if not isinstance(data, dict):
    raise ValueError(f'{path}: expected a dict of SMPL arrays, got {type(data).__name__}')
  return data


# ---------------------------------------------------------------------------------------------
# Checking and assembling the arrays.
# ---------------------------------------------------------------------------------------------


def _field(data: dict, key: str, where: str, shape: Sequence, dtype=np.float64) -> np.ndarray:
  """data[key] as an array of `shape` (None = any size, an int = exactly that); clear errors."""
  if key not in data:
    raise ValueError(f'{where}: key {key!r} missing (keys: {sorted(data)})')
  value = np.asarray(_plain(data[key], f'{where}: {key!r}'))
  ok = value.ndim == len(shape) and all(n is None or n == m for n, m in zip(shape, value.shape))
  if not ok:
    want = '(' + ', '.join('*' if n is None else str(n) for n in shape) + ')'
    raise ValueError(f'{where}: key {key!r} has shape {value.shape}, expected {want}')
  return value.astype(dtype)


def _model_arrays(data: dict, where: str) -> dict:
  """The body-model fields of a pickle or npz dict, checked against each other (V from
  v_template). Kept as the file holds them (float64, shapedirs with all its betas)."""
  v_template = _field(data, 'v_template', where, (None, 3))
  V = v_template.shape[0]
  out = dict(
      v_template=v_template,
      shapedirs=_field(data, 'shapedirs', where, (V, 3, None)),
      posedirs=_field(data, 'posedirs', where, (V, 3, NUM_POSE_BASIS)),
      J_regressor=_field(data, 'J_regressor', where, (NUM_JOINTS, V)),
      weights=_field(data, 'weights', where, (V, NUM_JOINTS)),
      kintree_table=_field(data, 'kintree_table', where, (2, NUM_JOINTS), np.int64),
      f=_field(data, 'f', where, (None, 3), np.int64))
  if out['shapedirs'].shape[2] < NUM_BETAS:
    raise ValueError(f'{where}: key \'shapedirs\' has shape {out["shapedirs"].shape}, expected '
                     f'({V}, 3, >= {NUM_BETAS})')
  return out


def _extra_arrays(data: dict, where: str, V: int) -> dict:
  """The SPIN-style extras: H36M and extra regressors, mean pose (24 x 6D) and shape."""
  return dict(J_regressor_h36m=_field(data, 'J_regressor_h36m', where, (17, V)),
              J_regressor_extra=_field(data, 'J_regressor_extra', where, (9, V)),
              mean_pose=_field(data, 'mean_pose', where, (NUM_JOINTS * 6,)),
              mean_shape=_field(data, 'mean_shape', where, (NUM_BETAS,)))


def _load_numpy(path: str):
  """np.load of a .npy array or an .npz (as a dict), a damaged file as a ValueError naming it."""
  try:
    with open(path, 'rb') as f:
      loaded = np.load(f)
      return {k: loaded[k] for k in loaded.files} if hasattr(loaded, 'files') else loaded
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f'{path}: not a readable numpy file ({type(e).__name__}: {e})') from None


def _read_extras(folder: str) -> dict:
  """The three SPIN-style files beside the model, as `_extra_arrays` keys."""
  paths = {name: os.path.join(folder, name)
           for name in (H36M_REGRESSOR_FILE, EXTRA_REGRESSOR_FILE, MEAN_PARAMS_FILE)}
  for name, path in paths.items():
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f'{path} not found: the SMPL extras ({", ".join(paths)}) must lie beside '
          f'{MODEL_FILE}, as in the official data_root (or pass with_extras=False)')
  out = {'J_regressor_h36m': _load_numpy(paths[H36M_REGRESSOR_FILE]),
         'J_regressor_extra': _load_numpy(paths[EXTRA_REGRESSOR_FILE])}
  mean = _load_numpy(paths[MEAN_PARAMS_FILE])
  for key, name in (('pose', 'mean_pose'), ('shape', 'mean_shape')):
    if not isinstance(mean, dict) or key not in mean:
      raise ValueError(f'{paths[MEAN_PARAMS_FILE]}: key {key!r} missing (expected the SPIN mean '
                       'parameters: pose (144,), shape (10,))')
    out[name] = mean[key]
  return out


def read_arrays(path: str, *, with_extras: bool = True) -> dict:
  """The raw SMPL arrays (file layout, float64) from a data_root folder, the pickle or our npz.

  Raises:
    FileNotFoundError: a file is missing (its path is named).
    ValueError: a file does not read, or a key is missing or has the wrong shape.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    path = os.path.join(path, MODEL_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} not found: expected the SMPL model ({MODEL_FILE} from '
                            'https://smpl.is.tue.mpg.de, or a folder holding it, or an npz '
                            'written by `python -m mbjax.models.smpl --to-npz`)')
  if path.endswith('.npz'):
    data = _load_numpy(path)
    if not isinstance(data, dict) or _NPZ_MARKER not in data:
      raise ValueError(f'{path}: not an mbjax SMPL npz (key {_NPZ_MARKER!r} missing); write one '
                       'with `python -m mbjax.models.smpl --to-npz SRC OUT`')
    extras = data
  else:
    data = _read_pickle(path)
    extras = _read_extras(os.path.dirname(path)) if with_extras else {}
  arrays = _model_arrays(data, path)
  if with_extras:
    where = path if extras is data else os.path.dirname(path) or '.'
    arrays.update(_extra_arrays(extras, where, arrays['v_template'].shape[0]))
  return arrays


def write_npz(src: str, out: str) -> dict:
  """Reads the SMPL model and its extras from `src` and writes them into one plain npz."""
  if os.path.exists(out):
    raise FileExistsError(f'{out} exists; remove it or choose another output')
  arrays = read_arrays(src, with_extras=True)
  np.savez(out, **arrays, **{_NPZ_MARKER: np.int64(_NPZ_VERSION)})
  return arrays


# ---------------------------------------------------------------------------------------------
# The model.
# ---------------------------------------------------------------------------------------------


@struct.dataclass
class SMPL:
  """The SMPL arrays as the forward uses them, float32 (V vertices, F faces).

  Attributes:
    v_template: (V, 3) rest mesh, metres.
    shapedirs: (V, 3, 10) shape blend shapes (the file's first 10).
    posedirs: (207, 3V) pose blend shapes, smplx's `posedirs.reshape(-1, 207).T`.
    J_regressor: (24, V) dense joint regressor.
    lbs_weights: (V, 24) skinning weights.
    faces: (F, 3) int32 triangles.
    J_regressor_h36m: (17, V) or None: H36M-17 joints from vertices.
    J_regressor_extra: (9, V) or None: the SPIN extra joints.
    mean_pose: (144,) or None: SPIN's mean pose, 24 x 6D (the mesh head's `init_pose`).
    mean_shape: (10,) or None: SPIN's mean betas (the mesh head's `init_shape`).
    parents: 24 static ints, parents[0] = -1 (from kintree_table[0]).
  """

  v_template: np.ndarray
  shapedirs: np.ndarray
  posedirs: np.ndarray
  J_regressor: np.ndarray
  lbs_weights: np.ndarray
  faces: np.ndarray
  J_regressor_h36m: np.ndarray | None = None
  J_regressor_extra: np.ndarray | None = None
  mean_pose: np.ndarray | None = None
  mean_shape: np.ndarray | None = None
  parents: tuple = struct.field(pytree_node=False, default=())

  @classmethod
  def from_arrays(cls, arrays: dict) -> 'SMPL':
    """From `read_arrays`' dict (file layout)."""
    f32 = lambda key: (np.asarray(arrays[key], np.float32) if arrays.get(key) is not None
                       else None)
    parents = [int(p) for p in arrays['kintree_table'][0]]
    parents[0] = -1  # the file stores 2**32 - 1 for the root
    bad = [i for i, p in enumerate(parents[1:], 1) if not 0 <= p < i]
    if bad:
      raise ValueError(f'kintree_table: joint {bad[0]} has parent {parents[bad[0]]}; expected '
                       'every parent to come before its child')
    V = arrays['v_template'].shape[0]
    return cls(
        v_template=f32('v_template'),
        shapedirs=np.asarray(arrays['shapedirs'][:, :, :NUM_BETAS], np.float32),
        posedirs=np.asarray(arrays['posedirs'].reshape(V * 3, NUM_POSE_BASIS).T, np.float32),
        J_regressor=f32('J_regressor'), lbs_weights=f32('weights'),
        faces=np.asarray(arrays['f'], np.int32),
        J_regressor_h36m=f32('J_regressor_h36m'), J_regressor_extra=f32('J_regressor_extra'),
        mean_pose=f32('mean_pose'), mean_shape=f32('mean_shape'), parents=tuple(parents))

  @classmethod
  def from_file(cls, path: str, *, with_extras: bool = True) -> 'SMPL':
    """From the official data_root folder, `SMPL_NEUTRAL.pkl` itself, or an mbjax npz.

    With `with_extras` (the default) the SPIN-style `J_regressor_h36m_correct.npy`,
    `J_regressor_extra.npy` and `smpl_mean_params.npz` must lie beside the pickle (an npz
    holds them itself); without, those fields are None.
    """
    return cls.from_arrays(read_arrays(path, with_extras=with_extras))

  @property
  def num_vertices(self) -> int:
    return self.v_template.shape[0]

  def __call__(self, betas, rotmats) -> dict:
    return smpl_forward(self, betas, rotmats)

  def joints_h36m(self, vertices):
    """(..., V, 3) vertices -> (..., 17, 3) H36M-17 joints (J_regressor_h36m @ vertices)."""
    if self.J_regressor_h36m is None:
      raise ValueError('this SMPL was loaded without its extras: no J_regressor_h36m')
    return jnp.einsum('jv,...vc->...jc', self.J_regressor_h36m, jnp.asarray(vertices,
                                                                           jnp.float32),
                      precision=_HIGHEST)


def _check_inputs(model: SMPL, betas, rotmats):
  if betas.shape[-1:] != (NUM_BETAS,) or rotmats.shape[-3:] != (NUM_JOINTS, 3, 3):
    raise ValueError(f'SMPL expects betas (..., {NUM_BETAS}) and rotmats (..., {NUM_JOINTS}, '
                     f'3, 3), got {betas.shape} and {rotmats.shape}')
  if betas.shape[:-1] != rotmats.shape[:-3]:
    raise ValueError(f'SMPL: betas {betas.shape} and rotmats {rotmats.shape} differ in their '
                     'batch axes')
  if len(model.parents) != NUM_JOINTS:
    raise ValueError(f'SMPL: {len(model.parents)} parents, expected {NUM_JOINTS}')


def shaped_rest(model: SMPL, betas):
  """(N, 10) betas -> (N, V, 3) rest vertices and (N, 24, 3) rest joints."""
  v = model.v_template + jnp.einsum('nl,vcl->nvc', betas, model.shapedirs, precision=_HIGHEST)
  joints = jnp.einsum('jv,nvc->njc', model.J_regressor, v, precision=_HIGHEST)
  return v, joints


def pose_offsets(model: SMPL, rotmats):
  """(N, 24, 3, 3) -> (N, V, 3) pose blend shape offsets from (R[1:] - I), row-major."""
  N = rotmats.shape[0]
  feature = (rotmats[:, 1:] - jnp.eye(3, dtype=rotmats.dtype)).reshape(N, NUM_POSE_BASIS)
  return jnp.matmul(feature, model.posedirs, precision=_HIGHEST).reshape(N, -1, 3)


def forward_kinematics(parents: Sequence[int], rotmats, joints):
  """World transforms along the kinematic tree.

  Pointer jumping rather than a joint-by-joint chain: each of ceil(log2(depth + 1)) rounds
  composes every joint's partial product with its current ancestor's (4 rounds for SMPL's
  depth 9), a few batched matmuls that compile in a fraction of the chain's time.

  Args:
    parents: 24 ints, parents[0] = -1, each parent before its child.
    rotmats: (N, 24, 3, 3) local rotations.
    joints: (N, 24, 3) rest joint positions.

  Returns:
    (N, 24, 3) posed joints and (N, 24, 3, 4) skinning transforms [R | t - R j_rest] that map
    a rest point to its posed position under each joint.
  """
  N, J = joints.shape[:2]
  root = J  # an identity transform appended at index J is every root's ancestor
  up = np.asarray([root if p < 0 else p for p in parents] + [root])
  offsets = joints - jnp.where((up[:J] == root)[:, None], 0.0, joints[:, np.minimum(up[:J],
                                                                                    J - 1)])
  local = jnp.concatenate([rotmats, offsets[..., None]], axis=-1)
  bottom = jnp.broadcast_to(jnp.asarray([0.0, 0.0, 0.0, 1.0], local.dtype), (N, J, 1, 4))
  world = jnp.concatenate([jnp.concatenate([local, bottom], axis=-2),
                           jnp.broadcast_to(jnp.eye(4, dtype=local.dtype), (N, 1, 4, 4))], axis=1)
  while np.any(up[:J] != root):
    world = jnp.matmul(world[:, up], world, precision=_HIGHEST)
    up = up[up]
  rot, pos = world[:, :J, :3, :3], world[:, :J, :3, 3]
  t = pos - jnp.einsum('njab,njb->nja', rot, joints, precision=_HIGHEST)
  return pos, jnp.concatenate([rot, t[..., None]], axis=-1)


def smpl_forward(model: SMPL, betas, rotmats) -> dict:
  """SMPL without global translation, smplx `SMPL(..., pose2rot=False)`.

  Args:
    model: the SMPL arrays.
    betas: (..., 10) shape coefficients, any float dtype.
    rotmats: (..., 24, 3, 3) local joint rotations (root first), any float dtype.

  Returns:
    {'vertices': (..., V, 3), 'joints': (..., 24, 3)} float32, metres; `joints` are the posed
    kinematic joints (smplx's first 24).
  """
  betas, rotmats = jnp.asarray(betas), jnp.asarray(rotmats)
  _check_inputs(model, betas, rotmats)
  batch = betas.shape[:-1]
  betas = betas.reshape(-1, NUM_BETAS).astype(jnp.float32)
  rotmats = rotmats.reshape(-1, NUM_JOINTS, 3, 3).astype(jnp.float32)
  v_shaped, rest_joints = shaped_rest(model, betas)
  v_posed = v_shaped + pose_offsets(model, rotmats)
  joints, transforms = forward_kinematics(model.parents, rotmats, rest_joints)
  per_vertex = jnp.einsum('vj,njab->nvab', model.lbs_weights, transforms, precision=_HIGHEST)
  vertices = (jnp.einsum('nvab,nvb->nva', per_vertex[..., :3], v_posed, precision=_HIGHEST)
              + per_vertex[..., 3])
  V = model.v_template.shape[0]
  return {'vertices': vertices.reshape(batch + (V, 3)),
          'joints': joints.reshape(batch + (NUM_JOINTS, 3))}


def smpl_from_axis_angle(model: SMPL, betas, pose) -> dict:
  """smplx `SMPL(..., pose2rot=True)`: (..., 10) betas, (..., 72) axis-angles (smplx's own
  Rodrigues), -> `smpl_forward`'s dict plus 'rotmats' (..., 24, 3, 3)."""
  pose = jnp.asarray(pose)
  rotmats = rotations.axis_angle_to_rotmat_smplx(pose.reshape(pose.shape[:-1] + (NUM_JOINTS, 3)))
  return dict(smpl_forward(model, betas, rotmats), rotmats=rotmats)


# ---------------------------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------------------------

_PROGRAM = 'mbjax.models.smpl'


def _parse_flags(argv: Sequence[str]) -> list[str]:
  """Defines this tool's one flag (only when run as a program) and parses `argv`."""
  from absl import flags
  if 'to-npz' not in flags.FLAGS:
    flags.DEFINE_bool('to-npz', False, 'Write the SMPL model SRC (data_root folder or '
                      f'{MODEL_FILE}) and its SPIN-style extras into one npz OUT.')
  return flags.FLAGS(list(argv))


def main(argv: Sequence[str]) -> int:
  """`--to-npz SRC OUT`."""
  from absl import flags
  if not flags.FLAGS['to-npz'].value or len(argv) != 3:
    sys.exit(f'{_PROGRAM}: usage: python -m {_PROGRAM} --to-npz SRC OUT (got '
             f'{list(argv[1:])})')
  arrays = write_npz(argv[1], argv[2])
  print(f'wrote {argv[2]}: SMPL with {arrays["v_template"].shape[0]} vertices, '
        f'{arrays["f"].shape[0]} faces, and its extras')
  return 0


if __name__ == '__main__':
  from mbjax import cli
  cli.run(main, program=_PROGRAM, flags_parser=_parse_flags)
