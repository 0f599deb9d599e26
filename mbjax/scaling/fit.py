"""L(N, D) = E + A / N^alpha + B / D^beta fitted as Hoffmann et al. 2022 (Chinchilla), approach 3.

With E = exp(e), A = exp(a), B = exp(b), the fit minimises
  sum_i Huber_delta(LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i),  delta = 1e-3,
by L-BFGS-B from the best few points of a grid of starts. N: non-embedding parameters, D: training
frames seen, L: the final loss of a run. The compute-optimal split of a budget C = k N D minimises
L(N, C / (k N)): N_opt = G (C/k)^(beta/(alpha+beta)), G = (alpha A / (beta B))^(1/(alpha+beta)).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import optimize, special

from mbjax.scaling.collect import ScalingError

PARAMS = ('E', 'A', 'B', 'alpha', 'beta')
HUBER_DELTA = 1e-3
MIN_RUNS = 5
# Exponents of measured scaling laws lie well inside (0, 2); E lies between the lowest loss / 1e4
# and the lowest loss (an irreducible loss above a measured one cannot be).
_EXPONENT_BOUNDS = (1e-3, 2.0)
_E_RANGE = 1e4
# The grid of starts, scale-free: each term's share of the typical loss at the median N or D
# (Hoffmann et al. grid a, b in 0..25 and e in -1..1 assume losses in nats).
_GRID_EXPONENTS = (0.05, 0.15, 0.3, 0.5, 0.8, 1.2)
_GRID_TERM_SHARES = (0.03, 0.1, 0.3, 1.0, 3.0)
_GRID_E_SHARES = (0.05, 0.3, 0.6, 0.9)


def check_fittable(n: np.ndarray, d: np.ndarray) -> None:
  """ScalingError unless there are enough runs to fit five parameters."""
  if len(n) < MIN_RUNS or len(np.unique(n)) < 2 or len(np.unique(d)) < 2:
    raise ScalingError(f'too few finished runs to fit L(N, D): {len(n)} runs, '
                       f'{len(np.unique(n))} model sizes, {len(np.unique(d))} data amounts '
                       f'(need >= {MIN_RUNS} runs, >= 2 sizes and >= 2 data amounts)')


def _terms(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
  """(3, ..., R) log of the three terms for parameters theta (..., 5) = (a, b, e, alpha, beta)."""
  a, b, e, alpha, beta = (theta[..., i, None] for i in range(5))
  return np.stack([a - alpha * log_n, b - beta * log_d, e + 0 * log_n])


def _huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
  """Huber(r) / delta and its derivative (dividing by delta keeps L-BFGS well scaled)."""
  small = np.abs(r) <= delta
  value = np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)) / delta
  return value, np.where(small, r, delta * np.sign(r)) / delta


def objective(theta, log_n, log_d, log_l, delta=HUBER_DELTA):
  """(value, gradient) of the Huber loss of log-residuals at theta = (a, b, e, alpha, beta)."""
  terms = _terms(np.asarray(theta, float), log_n, log_d)
  value, slope = _huber(special.logsumexp(terms, axis=0) - log_l, delta)
  w = slope * special.softmax(terms, axis=0)  # d residual / d term, times Huber'
  grad = np.array([w[0].sum(), w[1].sum(), w[2].sum(), -(w[0] * log_n).sum(),
                   -(w[1] * log_d).sum()])
  return value.sum(), grad


def start_grid(log_n, log_d, log_l) -> np.ndarray:
  """(G, 5) starting points (a, b, e, alpha, beta) scaled to the data."""
  level, floor = np.median(np.exp(log_l)), np.exp(log_l).min()
  mid_n, mid_d = np.median(log_n), np.median(log_d)
  rows = []
  for alpha, beta, sa, sb, se in itertools.product(
      _GRID_EXPONENTS, _GRID_EXPONENTS, _GRID_TERM_SHARES, _GRID_TERM_SHARES, _GRID_E_SHARES):
    rows.append((np.log(sa * level) + alpha * mid_n, np.log(sb * level) + beta * mid_d,
                 np.log(se * floor), alpha, beta))
  return np.array(rows)


def _grid_values(grid, log_n, log_d, log_l) -> np.ndarray:
  residual = special.logsumexp(_terms(grid, log_n, log_d), axis=0) - log_l
  return _huber(residual, HUBER_DELTA)[0].sum(axis=-1)


def _minimise(theta0, log_n, log_d, log_l) -> optimize.OptimizeResult:
  floor = float(np.min(log_l))
  bounds = [(None, None)] * 2 + [(floor - np.log(_E_RANGE), floor)] + [_EXPONENT_BOUNDS] * 2
  theta0 = np.clip(theta0, [b[0] if b[0] is not None else -np.inf for b in bounds],
                   [b[1] if b[1] is not None else np.inf for b in bounds])
  return optimize.minimize(objective, theta0, args=(log_n, log_d, log_l), jac=True,
                           method='L-BFGS-B', bounds=bounds,
                           options=dict(maxiter=2000, ftol=1e-13, gtol=1e-10))


def fit_loss(n, d, loss, *, starts=None, num_starts: int = 6) -> dict:
  """The best fit of L(N, D) from `starts` (theta rows) plus the `num_starts` best grid points.

  Returns a dict of E, A, B, alpha, beta and `objective` (the Huber sum / delta at the optimum).
  """
  log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)
  grid = start_grid(log_n, log_d, log_l)
  candidates = grid[np.argsort(_grid_values(grid, log_n, log_d, log_l))[:num_starts]]
  if starts is not None:
    candidates = np.concatenate([np.atleast_2d(starts), candidates])
  best = min((_minimise(t, log_n, log_d, log_l) for t in candidates), key=lambda r: r.fun)
  a, b, e, alpha, beta = best.x
  return dict(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(alpha),
              beta=float(beta), objective=float(best.fun))


def theta_of(fit: dict) -> np.ndarray:
  return np.array([np.log(fit['A']), np.log(fit['B']), np.log(fit['E']), fit['alpha'],
                   fit['beta']])


def predict(fit: dict, n, d) -> np.ndarray:
  """L(N, D) of a fit."""
  n, d = np.asarray(n, float), np.asarray(d, float)
  return fit['E'] + fit['A'] / n**fit['alpha'] + fit['B'] / d**fit['beta']


def bootstrap(n, d, loss, fit: dict, num: int, rng: np.random.Generator) -> np.ndarray:
  """(num_ok, 5) refits (PARAMS order) on runs resampled with replacement; resamples with fewer
  than two sizes or data amounts are skipped. Each refit starts at `fit` and two grid points."""
  n, d, loss = (np.asarray(x, float) for x in (n, d, loss))
  samples = []
  for _ in range(num):
    pick = rng.integers(0, len(n), len(n))
    if len(np.unique(n[pick])) < 2 or len(np.unique(d[pick])) < 2:
      continue
    refit = fit_loss(n[pick], d[pick], loss[pick], starts=theta_of(fit), num_starts=2)
    samples.append([refit[p] for p in PARAMS])
  return np.array(samples).reshape(-1, len(PARAMS))


def intervals(samples: np.ndarray, names=PARAMS) -> dict:
  """{name: [5th, 95th percentile]} of bootstrap samples (columns in `names` order); None each
  without samples."""
  if len(samples) == 0:
    return {name: None for name in names}
  low, high = np.percentile(samples, [5, 95], axis=0)
  return {name: [float(lo), float(hi)] for name, lo, hi in zip(names, low, high)}


def flops_constant(c, n, d) -> float:
  """k of C = k N D: the median of C / (N D) over the runs."""
  return float(np.median(np.asarray(c, float) / (np.asarray(n, float) * np.asarray(d, float))))


def compute_optimal(fit: dict, budget: float, k: float) -> dict:
  """N_opt, D_opt and the predicted loss minimising L(N, C / (k N)) for C = `budget`."""
  alpha, beta = fit['alpha'], fit['beta']
  g = (alpha * fit['A'] / (beta * fit['B']))**(1 / (alpha + beta))
  n_opt = g * (budget / k)**(beta / (alpha + beta))
  d_opt = budget / (k * n_opt)
  return dict(N=float(n_opt), D=float(d_opt), loss=float(predict(fit, n_opt, d_opt)))


def leave_one_size_out(sizes, n, d, loss, *, starts=None, num_starts: int = 6) -> list[dict]:
  """Per model size: fit on the other sizes, the relative error |predicted - measured| / measured
  of the held-out size's runs (mean, max), or `skipped` saying why there is no fit. `starts` and
  `num_starts` as for fit_loss (the fit of all runs is a good start)."""
  sizes, n, d, loss = (np.asarray(x) for x in (sizes, n, d, loss))
  results = []
  for size in sorted(set(sizes.tolist()), key=lambda s: float(np.median(n[sizes == s]))):
    out, keep = sizes == size, sizes != size
    entry = dict(size=str(size), runs=int(out.sum()), N=float(np.median(n[out])))
    try:
      check_fittable(n[keep], d[keep])
    except ScalingError as e:
      results.append(dict(entry, skipped=str(e)))
      continue
    fit = fit_loss(n[keep], d[keep], loss[keep], starts=starts, num_starts=num_starts)
    rel = np.abs(predict(fit, n[out], d[out]) - loss[out]) / loss[out]
    results.append(dict(entry, mean_rel_err=float(rel.mean()), max_rel_err=float(rel.max())))
  return results
