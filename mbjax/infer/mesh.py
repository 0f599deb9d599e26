"""A trained mesh model on lifted tracks: SMPL pose and shape per frame (`python -m mbjax.infer
... --mesh RUN`).

The track's model input (the same normalised 2D the lifting model gets) goes through the mesh
model in the official consecutive windows of its clip length (16; the last one shorter), as the
official in-the-wild mesh script cuts a video; betas are predicted once per window and repeated
on its frames, as the model does. The SMPL model is the run's (`model.head.smpl_dir` of its
config.json). Outputs per frame: `smpl_pose` (T, 72) axis-angles, `smpl_betas` (T, 10) and
`smpl_kp_3d` (T, 17, 3), the H36M joints of the mesh in mm (vertices are left out: SMPL gives
them from pose and betas).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from mbjax.infer import action as action_lib
from mbjax.infer import model as model_lib
from mbjax.infer import windows as windows_lib

OUTPUTS = ('smpl_pose', 'smpl_betas', 'smpl_kp_3d')


@dataclasses.dataclass
class MeshPredictor:
  """A loaded mesh model: `apply` (1, t, 17, C) -> its output dict, and its clip length."""

  apply: Callable
  clip_len: int
  channels: int
  source: str
  model: Any = None  # the MeshNet and its variables (a backbone shared with other heads:
  variables: Any = None  # mbjax/infer/shared.py)


def load(checkpoint: str) -> MeshPredictor:
  """The mesh model of a trainer workdir (its config.json), jitted."""
  import jax
  from mbjax.tasks.loading import load_model
  stored = action_lib.run_config(checkpoint)
  if stored is None or stored.get('task') != 'mesh':
    raise ValueError(f'--mesh={checkpoint}: expected the workdir of a mesh run (config.json with '
                     "task 'mesh')")
  import ml_collections
  config = ml_collections.ConfigDict(stored)
  _, model, variables = load_model(config, model_lib.checkpoint_dir(checkpoint))
  apply = jax.jit(lambda x: model.apply(variables, x))
  return MeshPredictor(apply=apply, clip_len=int(config.clip_len),
                       channels=2 if config.get('no_conf') else 3, source=checkpoint,
                       model=model, variables=variables)


def predict(predictor: MeshPredictor, inputs: np.ndarray) -> dict[str, np.ndarray]:
  """{OUTPUTS} of one track's (T, 17, 3) model input (module docstring)."""
  rows = {k: [] for k in OUTPUTS}
  for start, end in windows_lib.official_windows(len(inputs), predictor.clip_len):
    out = predictor.apply(np.asarray(inputs[None, start:end, :, :predictor.channels], np.float32))
    theta = np.asarray(out['theta'][0], np.float32)
    rows['smpl_pose'].append(theta[:, :72])
    rows['smpl_betas'].append(theta[:, 72:])
    rows['smpl_kp_3d'].append(np.asarray(out['kp_3d'][0], np.float32))
  return {k: np.concatenate(v) for k, v in rows.items()}
