"""Pictures for the demo (mbjax.infer.render's drawing): input 2D | front | side, predicted over
ground truth, of the held-out hop where it moves: demo.png (the frames that differ most in the
clip with the most motion, and the frame of largest error) and demo.gif (that clip and its
neighbours); losses.png (matplotlib)."""

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


def pose_spread(poses: np.ndarray) -> float:
  """How much (N, 17, 3) poses differ: the mean joint distance of each root-relative pose from
  their mean pose, averaged over the poses (in the poses' unit)."""
  rel = poses - poses[:, :1]
  return float(np.linalg.norm(rel - rel.mean(axis=0), axis=-1).mean())


def pick_frames(gt_mm: np.ndarray, err_mm: np.ndarray, n: int = STILLS) -> dict:
  """What the pictures show of the held-out clips (C, T, 17, 3) with per-frame errors (C, T):

  `clip`, the clip with the most motion (largest `pose_spread`); `stills`, (clip, frame) pairs:
  n - 1 frames of that clip that differ most (`motion_frames`) and the frame of largest error,
  wherever it is (a frame already chosen is replaced by the next most different one).
  """
  clip = int(np.argmax([pose_spread(c) for c in gt_mm]))
  worst = tuple(int(i) for i in np.unravel_index(np.argmax(err_mm), err_mm.shape))
  frames = motion_frames(gt_mm[clip], n)
  stills = [(clip, t) for t in frames if (clip, t) != worst][:n - 1]
  return dict(clip=clip, stills=stills + [worst], worst=worst)


def _held_out(spec: dict) -> dict:
  """The held-out clips of the lifting evaluator, in time order per camera yaw."""
  from mbjax.data import records
  source = records.load(spec['name'], spec['split'], data_dir=spec['data_dir'])
  rows = [source[i] for i in range(len(source))]
  order = sorted(range(len(rows)), key=lambda i: (float(rows[i]['yaw']),
                                                  int(rows[i]['start_frame'])))
  return dict(clips=np.stack([np.asarray(rows[i][spec['key']], np.float32) for i in order]),
              yaws=np.asarray([float(rows[i]['yaw']) for i in order]),
              starts=np.asarray([int(rows[i]['start_frame']) for i in order]))


def _predict(model, params, clips: np.ndarray) -> tuple:
  """(model input (C, T, 17, 3), truth and prediction in mm (C, T, 17, 3), error (C, T) mm).

  The model predicts root-relative 3D from each clip's crop-normalised 2D; both skeletons ride
  the true root, in mm, so the hop shows (the error is root-relative, as MPJPE)."""
  import jax
  from mbjax.evaluate import lifting
  norm, mm = lifting.normalise_clips(clips)
  x = np.concatenate([norm[..., :2], np.ones_like(norm[..., :1])], axis=-1)
  pred = np.asarray(jax.jit(model.apply)({'params': params}, x))
  pred_rel = (pred - pred[..., :1, :]) * mm[:, None, None, None]
  gt_rel = (norm - norm[..., :1, :]) * mm[:, None, None, None]
  err = np.linalg.norm(pred_rel - gt_rel, axis=-1).mean(axis=-1)
  gt = clips * (1000.0 / lifting.AMASS_UNITS_PER_METRE)
  return x, gt, pred_rel + gt[..., :1, :], err


def _stills(gt, pred, err, yaws, starts, chosen) -> np.ndarray:
  """demo.png: one row (2D input | front | side) per chosen (clip, frame), each less the mean
  root of its clip (rows of several clips share one view; the hop still lifts the root)."""
  stills = chosen['stills']
  root = {c: gt[c, :, 0].mean(axis=0) for c, _ in stills}
  g = np.stack([gt[c, t] - root[c] for c, t in stills])
  p = np.stack([pred[c, t] - root[c] for c, t in stills])
  captions = {i: f'yaw {yaws[c]:g}, frame {starts[c] + t}: MPJPE {err[c, t]:.0f} mm '
                 f'({"largest error" if (c, t) == chosen["worst"] else "most motion"})'
              for i, (c, t) in enumerate(stills)}
  return np.concatenate(list(_frames(g, p, g, range(len(g)), captions, size=384)), axis=0)


def _clip_window(yaws, clip: int, n: int = 3) -> list[int]:
  """`clip` and its neighbours in time from the same yaw: n consecutive clips when there are."""
  same = [c for c in range(len(yaws)) if yaws[c] == yaws[clip]]
  i = same.index(clip)
  lo = max(0, min(i - n // 2, len(same) - n))
  return same[lo:lo + n]


def _animation(gt, pred, err, yaws, starts, clip: int):
  """demo.gif frames: the clip with the most motion and its neighbours, every second frame."""
  window = _clip_window(yaws, clip)
  root = gt[window, :, 0].mean(axis=(0, 1))
  g, p = np.concatenate(gt[window]) - root, np.concatenate(pred[window]) - root
  e = np.concatenate(err[window])
  frame = np.concatenate([starts[c] + np.arange(gt.shape[1]) for c in window])
  captions = {i: f'yaw {yaws[clip]:g}, frame {frame[i]}: MPJPE {e[i]:.0f} mm'
              for i in range(len(g))}
  return _frames(g, p, g, range(0, len(g), 2), captions, size=256)


def write_pictures(workdir: str, config, model, params, metrics_path: str) -> dict[str, str]:
  """demo.png (STILLS frames), demo.gif (the clips with the most motion), losses.png; returns
  their paths."""
  held = _held_out(config.evals.lifting)
  _, gt, pred, err = _predict(model, params, held['clips'])
  chosen = pick_frames(gt, err)
  yaws, starts = held['yaws'], held['starts']
  paths = {'png': os.path.join(workdir, 'demo.png'), 'gif': os.path.join(workdir, 'demo.gif'),
           'losses': os.path.join(workdir, 'losses.png')}
  Image.fromarray(_stills(gt, pred, err, yaws, starts, chosen)).save(paths['png'])
  paths['gif'] = render.write_video(paths['gif'],
                                    _animation(gt, pred, err, yaws, starts, chosen['clip']), fps=12)
  _loss_curves(metrics_path, paths['losses'])
  return paths
