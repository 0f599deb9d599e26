"""The real recordings shipped with the mbjax checkout, in data_prep/assets: where to find them.

`data_prep/assets/mocap` holds small CMU and FAIR recordings (BVH, ASF/AMC) and
`data_prep/assets/wild` one AlphaPose results json; each folder's SOURCES.md says where they come
from. The demo and the input-pipeline benchmark build their datasets from them. They are not
installed with the package: a checkout (`pip install -e .`) has them next to `mbjax/`.
"""

from __future__ import annotations

import pathlib

# The checkout's data_prep/assets, found from this file (mbjax/data/shipped.py).
CHECKOUT_ASSETS = pathlib.Path(__file__).resolve().parents[2] / 'data_prep' / 'assets'
CONTENTS = {
    'mocap': 'BVH and ASF/AMC recordings',
    'wild': 'an AlphaPose results json',
}


def assets_dir(kind: str, root: str | pathlib.Path | None = None) -> pathlib.Path:
  """`root/kind` (root: the checkout's data_prep/assets if None), checked to exist.

  Raises:
    FileNotFoundError: naming the folder looked for, what it should hold and how to point at it.
  """
  if kind not in CONTENTS:
    raise ValueError(f'unknown asset kind {kind!r}; expected one of {", ".join(CONTENTS)}')
  root = pathlib.Path(root) if root is not None else CHECKOUT_ASSETS
  path = root / kind
  if not path.is_dir():
    raise FileNotFoundError(
        f'shipped {kind} recordings not found: looked for the folder {path} ({CONTENTS[kind]}; '
        f'data_prep/assets/{kind} of the mbjax checkout). Run from a checkout installed with '
        f'`pip install -e .`, or pass --assets DIR with DIR/{kind} in it.')
  return path
