"""Pictures for the demo (mbjax.infer.render's drawing): input 2D | front | side, predicted over
ground truth, as demo.png (the frames that differ most) and demo.gif; losses.png (matplotlib)."""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from mbjax.infer import render  # noqa: E402

STILLS = 4  # rows of demo.png
PRED_COLOURS = render.track_colours(0)
VIEWS = (render.View('front: predicted (blue), truth (grey)'),
         render.View('side, depth to the right', azimuth=-90.0))


def motion_frames(poses: np.ndarray, n: int = STILLS) -> list[int]:
  """`n` frames of a (T, 17, 3) clip whose poses differ most, in time order.

  Farthest-point picking on the poses (root-relative, mean joint distance), starting from the pose
  farthest from the clip's mean: frames that show the motion, not near-copies of one pose.
  """
  rel = poses - poses[:, :1]
  dist = lambda ref: np.linalg.norm(rel - ref, axis=-1).mean(axis=-1)  # noqa: E731
  chosen = [int(np.argmax(dist(rel.mean(axis=0))))]
  nearest = dist(rel[chosen[0]])
  while len(chosen) < min(n, len(poses)):
    chosen.append(int(np.argmax(nearest)))
    nearest = np.minimum(nearest, dist(rel[chosen[-1]]))
  return sorted(chosen)


def _frames(inp, pred, gt, only, captions, size):
  """render.frames of the input 2D and predicted over true 3D (grey under blue)."""
  return render.frames({'input': inp[..., :2]}, {'truth': gt, 'predicted': pred}, size,
                       views=VIEWS, only=only, captions=captions,
                       colours={'input': PRED_COLOURS, 'predicted': PRED_COLOURS,
                                'truth': render.GREY})


def _loss_curves(metrics_path: str, out_path: str) -> None:
  rows = [json.loads(line) for line in open(metrics_path)] if os.path.exists(metrics_path) else []
  fig, ax = plt.subplots(figsize=(6, 3.2), dpi=90)
  for key, label in (('3d/loss_3d_pos', '3D MPJPE (normalised)'), ('2d/loss_2d_proj', '2D')):
    pts = [(r['step'], r[key]) for r in rows if key in r]
    if pts:
      ax.plot(*zip(*pts), label=label)
  ax.set_xlabel('step')
  ax.set_ylabel('loss')
  ax.set_yscale('log')
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(out_path)
  plt.close(fig)


def write_pictures(workdir: str, config, model, params, metrics_path: str) -> dict[str, str]:
  """demo.png (STILLS frames), demo.gif (the clip), losses.png; returns their paths."""
  from mbjax.data import records
  from mbjax.evaluate import lifting

  spec = config.evals.lifting
  source = records.load(spec['name'], spec['split'], data_dir=spec['data_dir'])
  clip = np.asarray(source[0][spec['key']], np.float32)[None]
  norm, mm = lifting.normalise_clips(clip)
  x = np.concatenate([norm[..., :2], np.ones_like(norm[..., :1])], axis=-1)
  pred = np.asarray(model.apply({'params': params}, x))[0]
  pred = pred - pred[:, :1]
  gt = norm[0] - norm[0, :, :1]
  err = np.linalg.norm(pred - gt, axis=-1).mean(axis=-1) * mm[0]
  # The model predicts root-relative 3D; both skeletons ride the true root so the hop shows
  # (the errors are root-relative, as MPJPE).
  pred, gt = pred + norm[0, :, :1], gt + norm[0, :, :1]
  paths = {}
  chosen = motion_frames(gt)
  captions = {t: f'held-out frame {t}: MPJPE {err[t]:.0f} mm' for t in range(len(gt))}
  rows = list(_frames(x[0], pred, gt, chosen, captions, size=384))
  paths['png'] = os.path.join(workdir, 'demo.png')
  Image.fromarray(np.concatenate(rows, axis=0)).save(paths['png'])
  paths['gif'] = render.write_video(
      os.path.join(workdir, 'demo.gif'),
      _frames(x[0], pred, gt, range(0, len(gt), 2), captions, size=256), fps=12)
  paths['losses'] = os.path.join(workdir, 'losses.png')
  _loss_curves(metrics_path, paths['losses'])
  return paths
