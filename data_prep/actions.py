"""The user's own action clips (one folder per label) -> an action dataset in the NTU layout.

The dataset module of `mbjax.data.actions`, registered here for
`python -m data_prep.build actions --source FOLDER [--opt format=coco]`.
"""

from mbjax.data.actions import (FEATURES, NAME, OPTION_RANGES, SPLITS,  # noqa: F401
                                generate, metadata)
