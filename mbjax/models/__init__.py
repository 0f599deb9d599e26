"""Models: the DSTformer motion encoder, its task heads, and the factory that builds them."""

from mbjax.models.dstformer import DSTformer, dstformer_from_variant, count_params, VARIANTS
from mbjax.models.heads import ActionNet
from mbjax.models.factory import abstract_variables, from_config, init_input

# SMPL is imported on first use: `python -m mbjax.models.smpl` (its --to-npz tool) must find it
# not yet imported by this package.
_SMPL_NAMES = ('SMPL', 'smpl_forward', 'smpl_from_axis_angle')
_MESH_NAMES = ('MeshNet', 'MeshRegressor', 'mesh_flip_test')


def __getattr__(name):
  if name in _SMPL_NAMES:
    from mbjax.models import smpl  # pylint: disable=import-outside-toplevel
    return getattr(smpl, name)
  if name in _MESH_NAMES:  # imports smpl, so also on first use
    from mbjax.models import mesh_head  # pylint: disable=import-outside-toplevel
    return getattr(mesh_head, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
