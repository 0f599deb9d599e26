"""Models: the DSTformer motion encoder, its task heads, and the factory that builds them."""

from mbjax.models.dstformer import DSTformer, dstformer_from_variant, count_params, VARIANTS
from mbjax.models.heads import ActionNet
from mbjax.models.factory import from_config
