"""Device meshes and logical-axis sharding rules.

Parameters carry logical names (`embed`, `mlp`, `qkv`, `heads`, ...), activations
`activation_<name>`; `logical_rules(config)` maps them onto the mesh axes (`data`, `fsdp`,
`tensor`). Pure data parallel by default; FSDP and tensor parallel are one switch each.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ('data', 'fsdp', 'tensor')


def make_mesh(shape: dict | None = None, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Mesh over all devices; `shape` maps axes to sizes, one of them may be -1 (fill)."""
  devices = list(devices if devices is not None else jax.devices())
  shape = dict(shape or {})
  sizes = [int(shape.get(a, -1 if a == 'data' else 1)) for a in MESH_AXES]
  if sizes.count(-1) > 1:
    raise ValueError(f'mesh {shape}: at most one axis may be -1')
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if len(devices) % known:
      raise ValueError(f'mesh {shape}: {len(devices)} devices are not divisible by {known}')
    sizes[sizes.index(-1)] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ValueError(f'mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, '
                     f'have {len(devices)}')
  try:
    from jax.experimental import mesh_utils
    grid = mesh_utils.create_device_mesh(sizes, devices=devices)
  except Exception:  # unusual topologies: plain order
    grid = np.asarray(devices).reshape(sizes)
  return Mesh(grid, MESH_AXES)


def check_parallelism(mesh: Mesh | Mapping[str, int], *, fsdp: bool, tensor: bool) -> None:
  """Raises if a parallelism switch is on but its mesh axis has one device (it would do nothing).

  Args:
    mesh: the built Mesh, or `config.mesh` (axis -> size; -1, sized from the devices later, passes).
    fsdp: `config.fsdp`.
    tensor: `config.tensor_parallel`.
  """
  shape = dict(mesh.shape) if isinstance(mesh, Mesh) else dict(mesh)
  checks = ((fsdp, 'fsdp', 'fsdp', 'parameters and optimiser state would not be sharded', 'fsdp'),
            (tensor, 'tensor_parallel', 'tensor', 'no layer would be split', 'tp'))
  for on, switch, axis, effect, variant in checks:
    size = int(shape.get(axis, 1))
    if on and size == 1:
      raise ValueError(f'config.{switch}=True but config.mesh.{axis}=1: {effect}; set '
                       f'--config.mesh.{axis}=N (N > 1 devices) or use the {variant}=N variant')


def logical_rules(*, fsdp: bool = False, tensor: bool = False) -> tuple[tuple[str, Any], ...]:
  """Logical name -> mesh axes. The batch is split over data (and fsdp) always."""
  rules = [('activation_batch', ('data', 'fsdp')), ('batch', ('data', 'fsdp'))]
  if fsdp:
    rules += [('embed', 'fsdp'), ('rep', 'fsdp')]
  if tensor:
    rules += [('mlp', 'tensor'), ('qkv', 'tensor'), ('embed_in', 'tensor'),
              ('activation_mlp', 'tensor'), ('activation_heads', 'tensor')]
  return tuple(rules)


def param_shardings(abstract_variables, mesh: Mesh, rules) -> Any:
  """NamedShardings for a (boxed) variable tree from its logical partitioning metadata."""
  specs = nn.get_partition_spec(abstract_variables)
  return nn.logical_to_mesh_sharding(specs, mesh, rules)


def opt_state_shardings(tx, abstract_opt_state, param_sh, default: NamedSharding):
  """Optimizer-state shardings: moments follow their parameters, the rest (counts) `default`.

  Frozen parameters (optax masking) have an empty `MaskedNode` in the state, kept as it is.
  """
  import optax
  masked = lambda x: isinstance(x, optax.MaskedNode)
  return optax.tree_map_params(tx, lambda p, s: p if masked(p) else s, abstract_opt_state,
                               param_sh, transform_non_params=lambda _: default, is_leaf=masked)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, ndim: int = 1) -> NamedSharding:
  return NamedSharding(mesh, P(('data', 'fsdp'), *([None] * (ndim - 1))))


def global_batch(host_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Per-process rows -> global arrays split over the batch axes of `mesh`."""
  return {k: jax.make_array_from_process_local_data(batch_sharding(mesh, v.ndim), v)
          for k, v in host_batch.items()}
