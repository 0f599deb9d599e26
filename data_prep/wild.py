"""In-the-wild AlphaPose (Halpe-26) detections as 2D motion clips: pixels + detector score only.

The dataset module of `mbjax.data.wild` (AlphaPose reader, gap filling, clips), registered here
for `python -m data_prep.build wild --source JSON_OR_FOLDER`. ASSETS: the real sequence shipped
with the repository (assets/wild/SOURCES.md).
"""

import pathlib

from mbjax.data.wild import (FEATURES, NAME, OPTION_DEPENDENT_FEATURES,  # noqa: F401
                             OPTION_RANGES, SPLITS, generate, module_for)

ASSETS = pathlib.Path(__file__).parent / 'assets' / 'wild'
