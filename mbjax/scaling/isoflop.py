"""IsoFLOP profiles, Hoffmann et al. 2022 approach 2.

The runs of one nominal compute budget C (config.json's `scaling.budget` > 0) trade model size
against data. A parabola of the loss in log N gives that budget's N_opt(C) (and
D_opt = C / (k N_opt) with C = k N D); over two or more budgets, log-linear least squares gives
N_opt = k_N C^a and D_opt = k_D C^b (a + b = 1 when k is one constant).
"""

from __future__ import annotations

import numpy as np

MIN_SIZES = 3


def parabola_minimum(n, loss) -> dict | None:
  """The minimum of loss ~ c2 (log N)^2 + c1 log N + c0: N_opt, the loss there, the coefficients
  and whether N_opt lies inside the sizes run; None when the parabola opens downwards."""
  x, loss = np.log(np.asarray(n, float)), np.asarray(loss, float)
  coeffs = np.polyfit(x, loss, 2)
  if coeffs[0] <= 0:
    return None
  x_min = -coeffs[1] / (2 * coeffs[0])
  return dict(N_opt=float(np.exp(x_min)), loss_opt=float(np.polyval(coeffs, x_min)),
              coeffs=[float(c) for c in coeffs], inside=bool(x.min() <= x_min <= x.max()))


def group_by_budget(budget, n, loss) -> dict:
  """{budget: (N array, loss array)} of the runs with a budget > 0."""
  budget, n, loss = (np.asarray(v, float) for v in (budget, n, loss))
  return {float(c): (n[budget == c], loss[budget == c]) for c in np.unique(budget[budget > 0])}


def profiles(groups: dict, k: float) -> tuple[list[dict], list[str]]:
  """Per budget with >= MIN_SIZES sizes: its parabola minimum and D_opt; notes on the skipped."""
  found, notes = [], []
  for c, (n, loss) in sorted(groups.items()):
    sizes = len(np.unique(n))
    if sizes < MIN_SIZES:
      notes.append(f'budget {c:.3g}: {sizes} model size(s), need >= {MIN_SIZES}; skipped')
      continue
    best = parabola_minimum(n, loss)
    if best is None:
      notes.append(f'budget {c:.3g}: the loss is not convex in log N (no minimum); skipped')
      continue
    if not best['inside']:
      notes.append(f'budget {c:.3g}: N_opt {best["N_opt"]:.3g} lies outside the sizes run '
                   '(an extrapolation: not used for the exponents)')
    found.append(dict(best, budget=c, D_opt=c / (k * best['N_opt']), sizes=sizes))
  return found, notes


def exponents(budgets, n_opt, d_opt) -> dict:
  """a, k_N, b, k_D of N_opt = k_N C^a and D_opt = k_D C^b (least squares in log-log)."""
  log_c = np.log(np.asarray(budgets, float))
  a, log_kn = np.polyfit(log_c, np.log(np.asarray(n_opt, float)), 1)
  b, log_kd = np.polyfit(log_c, np.log(np.asarray(d_opt, float)), 1)
  return dict(a=float(a), k_N=float(np.exp(log_kn)), b=float(b), k_D=float(np.exp(log_kd)))


def _inside(found: list[dict]) -> list[dict]:
  """The profiles whose minimum lies inside the sizes run: the only ones the exponents use."""
  return [p for p in found if p['inside']]


def _exponents_of(found: list[dict]) -> dict:
  found = _inside(found)
  return exponents([p['budget'] for p in found], [p['N_opt'] for p in found],
                   [p['D_opt'] for p in found])


def bootstrap(groups: dict, k: float, num: int, rng: np.random.Generator) -> np.ndarray:
  """(num_ok, 2) exponents (a, b) refitted on runs resampled with replacement within each
  budget; resamples leaving fewer than two usable budgets are skipped."""
  samples = []
  for _ in range(num):
    resampled = {}
    for c, (n, loss) in groups.items():
      pick = rng.integers(0, len(n), len(n))
      resampled[c] = (n[pick], loss[pick])
    found, _ = profiles(resampled, k)
    if len(_inside(found)) >= 2:
      e = _exponents_of(found)
      samples.append([e['a'], e['b']])
  return np.array(samples).reshape(-1, 2)


def analyse(budget, n, loss, k: float, num_boot: int, rng: np.random.Generator) -> dict:
  """Profiles per budget, the exponents over budgets (None with a note when under two) and their
  bootstrap 5-95% intervals."""
  groups = group_by_budget(budget, n, loss)
  found, notes = profiles(groups, k)
  if not groups:
    notes.append('no runs with a compute budget (scaling.budget > 0): no IsoFLOP profiles')
  result = dict(profiles=found, notes=notes, exponents=None, intervals=None)
  if len(_inside(found)) < 2:
    if groups:
      notes.append(f'{len(_inside(found))} budget(s) with a minimum inside the sizes run, need '
                   '>= 2 for the IsoFLOP exponents')
    return result
  result['exponents'] = _exponents_of(found)
  samples = bootstrap(groups, k, num_boot, rng)
  if len(samples):
    low, high = np.percentile(samples, [5, 95], axis=0)
    result['intervals'] = dict(a=[float(low[0]), float(high[0])],
                               b=[float(low[1]), float(high[1])])
  return result
