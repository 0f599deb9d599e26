"""Real mocap (BVH, ASF/AMC) -> MotionBERT H36M-17 clips, seen from camera yaws.

The dataset module of `mbjax.data.mocap` (readers, forward kinematics, clips), registered here
for `python -m data_prep.build mocap --source FOLDER`. ASSETS: the real recordings shipped with
the repository, the default source (assets/mocap/SOURCES.md).
"""

import pathlib

from mbjax.data.mocap import (FEATURES, NAME, OPTION_DEPENDENT_FEATURES,  # noqa: F401
                              OPTION_RANGES, SPLITS, generate, module_for)

ASSETS = pathlib.Path(__file__).parent / 'assets' / 'mocap'
