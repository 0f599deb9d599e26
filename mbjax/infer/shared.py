"""One backbone pass for every head of an `infer` call (`--action`, `--mesh` beside the lifting
model) when their backbones carry the same weights, checked by content (`models.split`).

The paper's partial finetuning trains heads on a frozen backbone, so the pose, action and mesh
models then share its computation: each lifting window goes through the backbone once and every
head reads the representation (the flip test's mirrored pass feeds the pose head only). The heads
then run on the lifting windows (`--clip_len`, `--stride`), not on their own:
- mesh: SMPL pose, shape and joints of each frame from the window whose centre is nearest to it
  (betas once per window, as the model predicts them); apart, the mesh model cuts the track into
  its own consecutive clip_len windows (16 officially);
- action: the class probabilities averaged over the track's windows (each window one clip of one
  person); apart, the whole track is resampled to one clip of the action model's clip_len.
`--shared_backbone=false` runs them apart always. The run summary's `backbone` says which was
done and, when apart, why.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from mbjax.models import split

MESH_OUTPUTS = ('smpl_theta', 'smpl_kp_3d')


@dataclasses.dataclass
class Shared:
  """The lifting model's predict with the other heads added (`lift.lift(predict, ...,
  mirrored=, extras=)`), and the heads it runs."""

  predict: Callable  # (B, t, 17, C) -> {'pose', 'smpl_theta', 'smpl_kp_3d', 'action_logits'}
  mirrored: Callable  # (B, t, 17, C) -> (B, t, 17, 3): the pose head only
  heads: tuple[str, ...]


def plan(lifter, *, mesh=None, classifier=None, mode: str = 'crop', enabled: bool = True
         ) -> tuple[Shared | None, dict]:
  """(Shared or None, the report for the run summary) for a lifter and the mesh predictor /
  action classifier of the call (None where not asked for)."""
  others = {name: m for name, m in (('mesh', mesh), ('action', classifier)) if m is not None}
  heads = ('pose',) + tuple(others)
  why = _why_apart(lifter, others, mode, enabled)
  if why:
    return None, dict(shared=False, heads=list(heads), why=why)
  return _build(lifter, others, heads), dict(shared=True, heads=list(heads),
                                             backbone_passes_saved_per_window=len(others))


def _why_apart(lifter, others: dict, mode: str, enabled: bool) -> str | None:
  if not enabled:
    return '--shared_backbone=false'
  if getattr(lifter, 'model', None) is None:
    return 'the lifting model is not a DSTformer loaded from a checkpoint'
  for name, other in others.items():
    why = split.backbone_difference(lifter.model, lifter.variables, other.model, other.variables)
    if why:
      return f'{name}: {why}'
  if 'mesh' in others and others['mesh'].channels != (2 if lifter.no_conf else 3):
    return 'mesh: the model input differs (with / without confidence)'
  if 'action' in others:
    if others['action'].version != 'class':
      return 'action: an embedding model'
    if mode != 'crop':
      return 'action: its clips are crop-normalised; --pixel input is not'
  return None


def _build(lifter, others: dict, heads: tuple[str, ...]) -> Shared:
  import jax
  model, variables = lifter.model, lifter.variables

  @jax.jit
  def predict(x):
    rep = split.representation(model, variables, x)
    out = {'pose': split.head(model, variables, rep)}
    if 'mesh' in others:
      mesh = split.head(others['mesh'].model, others['mesh'].variables, rep)
      out.update(smpl_theta=mesh['theta'], smpl_kp_3d=mesh['kp_3d'])
    if 'action' in others:
      out['action_logits'] = split.head(others['action'].model, others['action'].variables, rep)
    return out

  return Shared(predict=predict, mirrored=lifter.predict, heads=heads)


def nearest_window(bounds: list[tuple[int, int]], length: int) -> np.ndarray:
  """(length,) index of the window whose centre is nearest to each frame (the first on ties)."""
  frames = np.arange(length)[:, None]
  starts, ends = (np.asarray([b[i] for b in bounds])[None] for i in (0, 1))
  distance = np.abs(frames - (starts + ends - 1) / 2)
  distance[(frames < starts) | (frames >= ends)] = np.inf
  return np.argmin(distance, axis=1)


def mesh_fields(windows: list[dict], bounds: list[tuple[int, int]], length: int) -> dict:
  """`smpl_pose` (T, 72), `smpl_betas` (T, 10), `smpl_kp_3d` (T, 17, 3) of a track from its
  windows' mesh outputs (module docstring)."""
  owner = nearest_window(bounds, length)
  theta = np.stack([windows[w]['smpl_theta'][f - bounds[w][0]] for f, w in enumerate(owner)])
  kp = np.stack([windows[w]['smpl_kp_3d'][f - bounds[w][0]] for f, w in enumerate(owner)])
  return dict(smpl_pose=theta[:, :72].astype(np.float32),
              smpl_betas=theta[:, 72:].astype(np.float32), smpl_kp_3d=kp.astype(np.float32))


def action_log_probs(windows: list[dict]) -> np.ndarray:
  """(K,) log of the class probabilities averaged over a track's windows."""
  from mbjax.infer import action
  return action.mean_log_probs([w['action_logits'] for w in windows])
