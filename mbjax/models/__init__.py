"""Models: the DSTformer motion encoder and its task heads."""

from mbjax.models.dstformer import DSTformer, dstformer_from_variant, count_params, VARIANTS
from mbjax.models.heads import ActionNet
