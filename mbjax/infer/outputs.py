"""What `python -m mbjax.infer` writes: DIR/results.npz and DIR/results.json, every track.

results.npz, per track id N:
  `N/frames` (T,) int64 frame numbers; `N/detected` (T,) bool (False: a filled gap);
  `N/keypoints_px` (T, 17, 3) the H36M-17 2D input in pixels (x, y, confidence);
  `N/input_2d` (T, 17, 3) the normalised model input; `N/joints3d` (T, 17, 3) the 3D output in
  model units (official X3D.npy); `N/joints3d_px` (T, 17, 3) the 3D in pixels (with --pixel the
  official conversion; with crop normalisation the inverse of the crop box).
results.json: the run (input, format, model, options, windows, skipped tracks, notes) and per
track the same arrays as nested lists, joints in H36M-17 order (`joints`).
BVH (--bvh): DIR/track_<id>.bvh per track (mbjax/infer/bvh.py), listed under `bvh` (track id ->
path) in results.json. With --action, each track has `actions`: its top-5 [{label, probability}]
from the action model. With --trajectory, `N/root_m` (T, 3) and `N/joints3d_m` (T, 17, 3): the
camera-frame trajectory and pose in metres (mbjax/infer/trajectory.py). With --mesh,
`N/smpl_pose` (T, 72) axis-angles, `N/smpl_betas` (T, 10) and `N/smpl_kp_3d` (T, 17, 3) mm.
"""

from __future__ import annotations

import json
import os

import numpy as np

from mbjax.data import skeletons
from mbjax.files import atomic

FILES = ('results.npz', 'results.json')
ARRAYS = ('frames', 'detected', 'keypoints_px', 'input_2d', 'joints3d', 'joints3d_px')
# --trajectory (mbjax/infer/trajectory.py), --mesh (mbjax/infer/mesh.py)
OPTIONAL_ARRAYS = ('root_m', 'joints3d_m', 'smpl_pose', 'smpl_betas', 'smpl_kp_3d')


def _listed(x) -> list:
  x = np.asarray(x)
  return (np.round(x.astype(np.float64), 6) if x.dtype.kind == 'f' else x).tolist()


def write(out_dir: str, run: dict, tracks: dict[int, dict]) -> dict:
  """Writes results.npz and results.json into `out_dir` (each atomically, replacing any there:
  the caller decides that, `pipeline.check_outputs`); returns their paths.

  Args:
    out_dir: created if missing.
    run: JSON-ready description of the run.
    tracks: track id -> {name in ARRAYS (and any of OPTIONAL_ARRAYS): array, plus JSON-ready
      scalars}.
  """
  os.makedirs(out_dir, exist_ok=True)
  arrays, listed = {}, []
  for person, fields in tracks.items():
    missing = [k for k in ARRAYS if k not in fields]
    if missing:
      raise ValueError(f'outputs.write: track {person} lacks {missing}')
    names = ARRAYS + tuple(k for k in OPTIONAL_ARRAYS if k in fields)
    arrays.update({f'{person}/{k}': np.asarray(fields[k]) for k in names})
    listed.append(dict({k: v for k, v in fields.items() if k not in names}, id=int(person),
                       **{k: _listed(fields[k]) for k in names}))
  npz = os.path.join(out_dir, FILES[0])
  with atomic.replacing(npz) as tmp, open(tmp, 'wb') as f:
    np.savez(f, **arrays)
  summary = dict(run, joints=list(skeletons.H36M_JOINTS), tracks=listed)
  path = os.path.join(out_dir, FILES[1])
  atomic.write_text(path, json.dumps(summary))
  return dict(npz=npz, json=path)
