"""Human mesh recovery: DSTformer representation -> SMPL (official `lib/model/model_mesh.py`).

  smpl = SMPL.from_file('data/mesh')           # the official data_root
  model = MeshNet(backbone=DSTformer(...), smpl=smpl, hidden_dim=1024, dropout_ratio=0.1)
  out = model.apply(variables, x)              # x (N, T, 17, 3)
  out['theta'], out['verts'], out['kp_3d']     # (N, T, 82), (N, T, V, 3) mm, (N, T, 17, 3) mm

Variables of a `MeshNet`:
- `params`: `backbone/...` and `head/{fc1, bn1, head_pose, fc2, bn2, head_shape}`.
- `batch_stats`: `head/{bn1, bn2}/{mean, var, num_batches_tracked}` (torch BatchNorm1d).
- `constants`: `head/init_pose` (144,) and `head/init_shape` (10,): the official buffers (SPIN's
  mean pose, 24 x 6D, and mean betas), initialised from `smpl.mean_pose` / `smpl.mean_shape`.
  A collection of their own so no optimizer touches them; the trainer carries every collection
  but `params` as model state (never written by the model, so they stay as loaded).
The SMPL arrays are not variables: `smpl` is a module attribute and enters the program as
constants (see `mbjax.models.smpl`); the official checkpoint's `head.smpl.*` buffers are
rebuilt from the user's SMPL files by `mbjax.convert`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mbjax.data import rotations
from mbjax.models.dstformer import DSTformer
from mbjax.models.heads import TorchBatchNorm, torch_linear
from mbjax.models.smpl import NUM_BETAS, NUM_JOINTS, SMPL, smpl_forward, smpl_from_axis_angle

POSE_6D = NUM_JOINTS * 6  # 144
THETA_DIM = NUM_JOINTS * 3 + NUM_BETAS  # 82
METRES_TO_MM = 1000.0
HEAD_GAIN = 0.01  # official: xavier_uniform_(head_pose.weight / head_shape.weight, gain=0.01)


def _xavier_linear(features: int, fan_in: int, logical_axes, name: str) -> nn.Dense:
  """`nn.Linear` re-initialised as officially: xavier-uniform weight with gain 0.01, the bias
  left at torch's default U(+-1/sqrt(fan_in))."""
  bound = HEAD_GAIN * (6.0 / (fan_in + features)) ** 0.5
  bias_bound = fan_in ** -0.5
  kernel = lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound,
                                                                    bound)
  bias = lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype,
                                                                  -bias_bound, bias_bound)
  return nn.Dense(features, kernel_init=nn.with_logical_partitioning(kernel, logical_axes),
                  bias_init=nn.with_logical_partitioning(bias, logical_axes[1:]), name=name)


def _mean_param(smpl: SMPL, field: str, size: int):
  value = getattr(smpl, field)
  if value is None:
    raise ValueError(f'MeshRegressor: the SMPL model has no {field} (load it with its extras: '
                     'smpl_mean_params.npz beside SMPL_NEUTRAL.pkl)')
  return jnp.asarray(value, jnp.float32).reshape(size)


def smpl_outputs(smpl: SMPL, betas, rotmats) -> dict:
  """(K, 10) betas, (K, 24, 3, 3) rotations -> flat official outputs: `verts` (K, V, 3) mm,
  `kp_3d` (K, 17, 3) mm (J_regressor_h36m @ verts), `theta` (K, 82) axis-angles + betas."""
  verts = smpl_forward(smpl, betas, rotmats)['vertices'] * METRES_TO_MM
  pose = rotations.rotmat_to_axis_angle(rotmats.reshape(-1, 3, 3)).reshape(-1, NUM_JOINTS * 3)
  theta = jnp.concatenate([pose, betas.astype(jnp.float32)], axis=-1)
  return {'theta': theta, 'verts': verts, 'kp_3d': smpl.joints_h36m(verts)}


class MeshRegressor(nn.Module):
  """The official `SMPLRegressor`: per-frame pose, per-clip shape, then SMPL.

  Attributes:
    smpl: the SMPL model (not a parameter; needs its extras: J_regressor_h36m, mean params).
    hidden_dim: width of fc1 / fc2.
    dropout_ratio: dropout on both branches' input features (train mode only).
  """

  smpl: SMPL
  hidden_dim: int = 2048
  dropout_ratio: float = 0.0

  def _branch(self, feat, suffix: str, out: int, train: bool):
    """dropout -> fc -> BatchNorm -> ReLU -> head (+ init added by the caller)."""
    fc, bn, head = {'pose': ('fc1', 'bn1', 'head_pose'), 'shape': ('fc2', 'bn2', 'head_shape')
                    }[suffix]
    h = nn.Dropout(self.dropout_ratio)(feat, deterministic=not train)
    h = torch_linear(self.hidden_dim, feat.shape[-1], ('rep', 'mlp'), fc)(h)
    h = jax.nn.relu(TorchBatchNorm(name=bn)(h, use_running_average=not train))
    return _xavier_linear(out, self.hidden_dim, ('mlp', 'smpl_params'), head)(h)

  @nn.compact
  def __call__(self, feat, *, train: bool = False) -> dict:
    """(N, T, J, C) representation -> {'theta' (N, T, 82), 'verts' (N, T, V, 3) mm,
    'kp_3d' (N, T, 17, 3) mm}."""
    if feat.ndim != 4:
      raise ValueError(f'MeshRegressor expects (N, T, J, C) features, got shape {feat.shape}')
    N, T, J, C = feat.shape
    init_pose = self.variable('constants', 'init_pose', _mean_param, self.smpl, 'mean_pose',
                              POSE_6D)
    init_shape = self.variable('constants', 'init_shape', _mean_param, self.smpl, 'mean_shape',
                               NUM_BETAS)
    feat = feat.astype(jnp.float32).reshape(N, T, J * C)
    pose = self._branch(feat.reshape(N * T, J * C), 'pose', POSE_6D, train) + init_pose.value
    # Betas once per clip, from the features averaged over time, repeated on every frame.
    betas = self._branch(feat.mean(axis=1), 'shape', NUM_BETAS, train) + init_shape.value
    betas = jnp.repeat(betas, T, axis=0)
    rotmats = rotations.rot6d_to_rotmat(pose).reshape(N * T, NUM_JOINTS, 3, 3)
    out = smpl_outputs(self.smpl, betas, rotmats)
    return {k: v.reshape((N, T) + v.shape[1:]) for k, v in out.items()}


class MeshNet(nn.Module):
  """The official `MeshRegressor`: DSTformer (`return_rep=True`) + `MeshRegressor` head.

  Input (N, T, 17, 3) 2D poses with confidence; output as `MeshRegressor`.
  """

  backbone: DSTformer
  smpl: SMPL
  hidden_dim: int = 2048
  dropout_ratio: float = 0.0
  num_joints: int = 17

  @nn.compact
  def __call__(self, x, *, train: bool = False) -> dict:
    if x.ndim != 4:
      raise ValueError(f'MeshNet expects (N, T, J, C) input, got shape {x.shape}')
    N, T = x.shape[:2]
    feat = self.backbone(x, train=train, return_rep=True).reshape(N, T, self.num_joints, -1)
    return MeshRegressor(smpl=self.smpl, hidden_dim=self.hidden_dim,
                         dropout_ratio=self.dropout_ratio, name='head')(feat, train=train)


def flip_back(smpl: SMPL, theta_of_flipped) -> dict:
  """Outputs of a mirrored clip mirrored back (train_mesh.py `validate` with `flip`).

  `flip_thetas_batch` on the axis-angles, then SMPL again through smplx's own Rodrigues
  (`pose2rot=True`), vertices x 1000 and the H36M regressor; betas unchanged.

  Args:
    smpl: the SMPL model.
    theta_of_flipped: (N, T, 82) theta of the model on the flipped input.

  Returns:
    {'theta', 'verts', 'kp_3d'} of the un-mirrored poses, (N, T, ...), mm.
  """
  N, T = theta_of_flipped.shape[:2]
  pose = rotations.flip_thetas_batch(theta_of_flipped[..., :NUM_JOINTS * 3]).reshape(N * T, -1)
  betas = theta_of_flipped[..., NUM_JOINTS * 3:].reshape(N * T, NUM_BETAS)
  verts = smpl_from_axis_angle(smpl, betas, pose)['vertices'] * METRES_TO_MM
  out = {'theta': jnp.concatenate([pose, betas], axis=-1), 'verts': verts,
         'kp_3d': smpl.joints_h36m(verts)}
  return {k: v.reshape((N, T) + v.shape[1:]) for k, v in out.items()}


def mesh_flip_test(model: MeshNet, variables, x) -> dict:
  """The official flip test: the model on x and on `flip_data(x)` (mirrored back), averaged.

  Args:
    model: a MeshNet (its `smpl` is used for the mirrored-back mesh).
    variables: its variables.
    x: (N, T, 17, 3) input.

  Returns:
    {'theta' (N, T, 82), 'verts' (N, T, V, 3), 'kp_3d' (N, T, 17, 3)}: each the mean of the
    plain and the flipped-back output (axis-angles averaged arithmetically, as officially).
  """
  from mbjax.data.transforms import flip_pose  # numpy/jax-agnostic official flip_data
  x = jnp.asarray(x)
  out = model.apply(variables, x)
  back = flip_back(model.smpl, model.apply(variables, flip_pose(x))['theta'])
  return {k: (out[k] + back[k]) * 0.5 for k in out}
