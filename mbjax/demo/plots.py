"""Pictures for the demo: input 2D | predicted 3D | ground truth (PNG and animated GIF), losses."""

from __future__ import annotations

import io
import json
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from mbjax.losses import LIMBS  # noqa: E402

LEFT = {4, 5, 6, 11, 12, 13}


def _bone_colour(a: int, b: int) -> str:
  return 'tab:red' if (a in LEFT or b in LEFT) else 'tab:blue'


def _draw_2d(ax, pose):
  for a, b in LIMBS:
    ax.plot(pose[[a, b], 0], -pose[[a, b], 1], color=_bone_colour(a, b), lw=2)
  ax.set_aspect('equal')
  ax.set_xlim(-1.1, 1.1)
  ax.set_ylim(-1.1, 1.1)
  ax.set_xticks([])
  ax.set_yticks([])


def _draw_3d(ax, pose, title):
  # Camera-like axes (x right, y down, z depth) -> plot x, depth, up.
  for a, b in LIMBS:
    ax.plot(pose[[a, b], 0], pose[[a, b], 2], -pose[[a, b], 1], color=_bone_colour(a, b), lw=2)
  ax.set_xlim(-1, 1)
  ax.set_ylim(-1, 1)
  ax.set_zlim(-1, 1)
  ax.set_title(title, fontsize=9)
  ax.set_xticklabels([])
  ax.set_yticklabels([])
  ax.set_zticklabels([])
  ax.view_init(elev=12, azim=-70)


def _frame(inp, pred, gt, caption) -> Image.Image:
  fig = plt.figure(figsize=(9, 3.2), dpi=80)
  ax = fig.add_subplot(1, 3, 1)
  _draw_2d(ax, inp)
  ax.set_title('input 2D', fontsize=9)
  _draw_3d(fig.add_subplot(1, 3, 2, projection='3d'), pred, 'predicted 3D')
  _draw_3d(fig.add_subplot(1, 3, 3, projection='3d'), gt, 'ground truth 3D')
  fig.suptitle(caption, fontsize=9)
  buf = io.BytesIO()
  fig.savefig(buf, format='png')
  plt.close(fig)
  buf.seek(0)
  return Image.open(buf).convert('RGB')


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
  """demo.png (three frames), demo.gif (a clip), losses.png; returns their paths."""
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
  T = gt.shape[0]
  paths = {}
  stills = [_frame(x[0, t], pred[t], gt[t], f'held-out clip, frame {t}: MPJPE {err[t]:.0f} mm')
            for t in (0, T // 2, T - 1)]
  width, height = stills[0].size
  sheet = Image.new('RGB', (width, height * len(stills)), 'white')
  for i, im in enumerate(stills):
    sheet.paste(im, (0, i * height))
  paths['png'] = os.path.join(workdir, 'demo.png')
  sheet.save(paths['png'])
  frames = [_frame(x[0, t], pred[t], gt[t], f'frame {t}: MPJPE {err[t]:.0f} mm')
            for t in range(0, T, 3)]
  paths['gif'] = os.path.join(workdir, 'demo.gif')
  frames[0].save(paths['gif'], save_all=True, append_images=frames[1:], duration=120, loop=0)
  paths['losses'] = os.path.join(workdir, 'losses.png')
  _loss_curves(metrics_path, paths['losses'])
  return paths
