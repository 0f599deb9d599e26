"""Real mocap (BVH, ASF/AMC) -> MotionBERT H36M-17 clips, seen from camera yaws.

The dataset module of `mbjax.data.mocap` (readers, forward kinematics, clips), registered here
for `python -m data_prep.build mocap --source FOLDER`. ASSETS: the real recordings shipped with
the repository, the default source (assets/mocap/SOURCES.md). Rigs without a built-in map are
mapped by their joint names (Mixamo, HumanIK, Rokoko, Daz Genesis, SMPL; the map is in the build
report); where that fails too, the build writes `<recording>.joint_map.json` beside the file to
fill in and pass back with `--opt joint_map=PATH`.
"""

import pathlib

from mbjax.data.mocap import (FEATURES, NAME, OPTION_DEPENDENT_FEATURES,  # noqa: F401
                              OPTION_RANGES, SPLITS, generate, module_for)

ASSETS = pathlib.Path(__file__).parent / 'assets' / 'mocap'
