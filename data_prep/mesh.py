"""SMPL mesh recovery clips from MotionBERT's `mesh_det_{h36m,pw3d,coco}.pkl`.

The dataset module of `mbjax.data.mesh` (published layout, official normalisation, clips),
registered here as mesh_h36m, mesh_pw3d and mesh_coco (ALIASES in data_prep/builder.py), e.g.
`python -m data_prep.build mesh_pw3d --source mesh_det_pw3d.pkl`.
"""

from mbjax.data.mesh import (FEATURES, NAME, OPTION_DEPENDENT_FEATURES,  # noqa: F401
                             OPTION_RANGES, SPLITS, generate, module_for)
