"""The sweep's pictures (matplotlib, PNG): loss vs compute per model size with the compute frontier,
IsoFLOP profiles with their parabolas, and the fitted vs the measured loss."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
import numpy as np  # noqa: E402

from mbjax.scaling import fit  # noqa: E402

FILES = dict(compute='loss_vs_compute.png', isoflop='isoflop.png', fit='fit_vs_measured.png')


def frontier(c, loss, rtol: float = 0.01) -> np.ndarray:
  """Indices of the runs on the compute frontier (no run with less compute has a lower loss),
  by compute. Computes within `rtol` of each other count as one (IsoFLOP runs spend their budget
  to within a step, not exactly)."""
  c = np.asarray(c, float)
  c = np.exp(np.round(np.log(c) / np.log1p(rtol)) * np.log1p(rtol))  # one grid value per budget
  order = np.lexsort((loss, c))  # by compute, the lowest loss first among equal compute
  best, keep = np.inf, []
  for i in order:
    if loss[i] < best:
      best = loss[i]
      keep.append(i)
  return np.array(keep, int)


def _title(ax, text: str, suffix: str) -> None:
  ax.set_title(f'{text}\n({suffix})' if suffix else text, fontsize=10)


def _plain_ticks(axis) -> None:
  """Log-axis ticks as 10, 20, 30 rather than 10^1, 2 x 10^1 (losses span a decade or two)."""
  axis.set_major_formatter(ticker.ScalarFormatter())
  axis.set_minor_formatter(ticker.FormatStrFormatter('%.3g'))


def _save(fig, path: str) -> str:
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return path


def loss_vs_compute(x: dict, metric: str, path: str, suffix: str = '') -> str:
  """One line per model size (its runs by compute), log-log, with the frontier marked."""
  fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
  for size in sorted(set(x['size']), key=lambda s: np.median(x['N'][x['size'] == s])):
    pick = np.flatnonzero(x['size'] == size)
    pick = pick[np.argsort(x['C'][pick])]
    ax.plot(x['C'][pick], x['loss'][pick], 'o-', ms=4, lw=1,
            label=f'{size} (N = {np.median(x["N"][pick]):.3g})')
  edge = frontier(x['C'], x['loss'])
  ax.plot(x['C'][edge], x['loss'][edge], 'k--', lw=1.5, marker='*', ms=9,
          label='frontier: lowest loss for the compute')
  ax.set_xscale('log')
  ax.set_yscale('log')
  _plain_ticks(ax.yaxis)
  ax.set_xlabel('training compute C (FLOPs)')
  ax.set_ylabel(f'final {metric}')
  _title(ax, 'Loss vs training compute per model size', suffix)
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3, which='both')
  return _save(fig, path)


def isoflop_profiles(x: dict, iso: dict, metric: str, path: str, suffix: str = '') -> str:
  """Loss vs N of the runs of each budget, the parabola in log N and its minimum."""
  fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
  fitted = {p['budget']: p for p in iso['profiles']}
  budgets = sorted(set(x['budget'][x['budget'] > 0].tolist()))
  colours = plt.cm.viridis(np.linspace(0, 0.9, max(len(budgets), 1)))
  for c, colour in zip(budgets, colours):
    pick = x['budget'] == c
    ax.plot(x['N'][pick], x['loss'][pick], 'o', color=colour, ms=5, label=f'C = {c:.2g}')
    if c in fitted:
      p = fitted[c]
      grid = np.linspace(np.log(x['N'][pick].min()), np.log(x['N'][pick].max()), 100)
      ax.plot(np.exp(grid), np.polyval(p['coeffs'], grid), '-', color=colour, lw=1)
      ax.plot(p['N_opt'], p['loss_opt'], '*', color=colour, ms=13, mec='k')
  if not budgets:
    ax.text(0.5, 0.5, 'no runs with a compute budget', ha='center', transform=ax.transAxes)
  ax.set_xscale('log')
  ax.set_xlabel('non-embedding parameters N')
  ax.set_ylabel(f'final {metric}')
  _title(ax, 'IsoFLOP profiles: loss vs N per budget, parabola minimum *', suffix)
  if budgets:
    ax.legend(fontsize=7)
  ax.grid(alpha=0.3, which='both')
  return _save(fig, path)


def fitted_vs_measured(x: dict, best: dict, metric: str, path: str, suffix: str = '') -> str:
  """The fitted L(N, D) of each finished run against its measured loss, with y = x."""
  fig, ax = plt.subplots(figsize=(4.8, 4.6), dpi=100)
  predicted = fit.predict(best, x['N'], x['D'])
  ax.scatter(x['loss'], predicted, c=np.log10(x['N']), cmap='viridis', s=18)
  lo, hi = min(x['loss'].min(), predicted.min()), max(x['loss'].max(), predicted.max())
  ax.plot([lo, hi], [lo, hi], 'k--', lw=1, label='y = x')
  ax.set_xscale('log')
  ax.set_yscale('log')
  _plain_ticks(ax.xaxis)
  _plain_ticks(ax.yaxis)
  ax.set_xlabel(f'measured {metric}')
  ax.set_ylabel('fitted E + A/N^alpha + B/D^beta')
  _title(ax, 'Fitted vs measured loss (colour: log10 N)', suffix)
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3, which='both')
  return _save(fig, path)


def write_all(x: dict, result: dict, out_dir: str, suffix: str = '') -> dict[str, str]:
  """The three PNGs in `out_dir`; {kind: path}."""
  path = {kind: os.path.join(out_dir, name) for kind, name in FILES.items()}
  metric = result['metric']
  return dict(compute=loss_vs_compute(x, metric, path['compute'], suffix),
              isoflop=isoflop_profiles(x, result['isoflop'], metric, path['isoflop'], suffix),
              fit=fitted_vs_measured(x, result['fit'], metric, path['fit'], suffix))
