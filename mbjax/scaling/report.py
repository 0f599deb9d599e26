"""All the numbers of a sweep (the fit, its intervals, IsoFLOP exponents, the compute-optimal
split, leave-one-size-out errors) as one JSON-ready dict, and the lines `python -m mbjax.scaling`
prints."""

from __future__ import annotations

import math

import numpy as np

from mbjax.scaling import collect, fit, isoflop


def arrays(rows: list[dict]) -> dict:
  """Columns of the finished runs as arrays: N, D, C, loss, budget (floats) and size (str)."""
  done = collect.finished(rows)
  out = {c: np.array([r[c] for r in done], float) for c in ('N', 'D', 'C', 'loss', 'budget')}
  out['size'] = np.array([r['size'] for r in done])
  return out


def _optimum(best: dict, samples: np.ndarray, budget: float, k: float) -> dict:
  optimum = dict(budget=budget, **fit.compute_optimal(best, budget, k))
  points = [fit.compute_optimal(dict(zip(fit.PARAMS, s)), budget, k) for s in samples]
  table = np.array([[p['N'], p['D'], p['loss']] for p in points]).reshape(-1, 3)
  optimum['intervals'] = fit.intervals(table, ('N', 'D', 'loss'))
  return optimum


def analyse(rows: list[dict], *, budget: float, num_boot: int, seed: int) -> dict:
  """The analysis of the finished runs of `rows` (collect.collect); ScalingError when too few."""
  x = arrays(rows)
  if not len(x['N']):
    raise collect.ScalingError(f'no finished runs ({collect.summary_line(rows)})')
  fit.check_fittable(x['N'], x['D'])
  rng = np.random.default_rng(seed)
  k = fit.flops_constant(x['C'], x['N'], x['D'])
  best = fit.fit_loss(x['N'], x['D'], x['loss'])
  samples = fit.bootstrap(x['N'], x['D'], x['loss'], best, num_boot, rng)
  predicted = fit.predict(best, x['N'], x['D'])
  done = collect.finished(rows)
  return dict(
      metric=done[0]['metric'], runs=len(rows), finished=len(done), k=k,
      fit=best, intervals=fit.intervals(samples),
      bootstrap=dict(requested=num_boot, used=len(samples), seed=seed),
      compute_optimal=_optimum(best, samples, budget, k),
      isoflop=isoflop.analyse(x['budget'], x['N'], x['loss'], k, num_boot, rng),
      leave_one_size_out=fit.leave_one_size_out(x['size'], x['N'], x['D'], x['loss'],
                                                starts=fit.theta_of(best), num_starts=2),
      predicted=[dict(run=r['run'], measured=r['loss'], predicted=float(p))
                 for r, p in zip(done, predicted)])


def _ci(interval) -> str:
  return '' if interval is None else f'  [{interval[0]:.4g}, {interval[1]:.4g}]'


def _fit_lines(result: dict) -> list[str]:
  best, ci, boot = result['fit'], result['intervals'], result['bootstrap']
  spread = (f'5-95% over {boot["used"]} bootstrap refits' if boot['used']
            else 'no bootstrap intervals: --bootstrap 0 or no usable resample')
  lines = [f'L(N, D) = E + A / N^alpha + B / D^beta fitted to {result["metric"]} of '
           f'{result["finished"]} finished runs ({spread}):']
  lines += [f'  {p:5s} = {best[p]:.4g}{_ci(ci[p])}' for p in fit.PARAMS]
  opt = result['compute_optimal']
  lines.append(f'compute-optimal for C = {opt["budget"]:.3g} FLOPs (C = k N D, k = '
               f'{result["k"]:.4g}):')
  for name in ('N', 'D', 'loss'):
    lines.append(f'  {name:5s} = {opt[name]:.4g}{_ci(opt["intervals"][name])}')
  return lines


def _isoflop_lines(iso: dict) -> list[str]:
  lines = ['IsoFLOP profiles (approach 2):']
  for p in iso['profiles']:
    lines.append(f'  budget {p["budget"]:.3g}: {p["sizes"]} sizes, N_opt = {p["N_opt"]:.4g}, '
                 f'D_opt = {p["D_opt"]:.4g}, loss {p["loss_opt"]:.4g}')
  lines += [f'  note: {note}' for note in iso['notes']]
  if iso['exponents']:
    e, ci = iso['exponents'], iso['intervals'] or {}
    lines.append(f'  N_opt = {e["k_N"]:.4g} C^{e["a"]:.4f}{_ci(ci.get("a"))}')
    lines.append(f'  D_opt = {e["k_D"]:.4g} C^{e["b"]:.4f}{_ci(ci.get("b"))}')
  return lines


def _loso_lines(loso: list[dict]) -> list[str]:
  lines = ['leave-one-size-out (fit on the other sizes, relative error on the held-out one):']
  if len(loso) < 3:
    lines.append(f'  only {len(loso)} model sizes: too few to fit without one (need >= 3)')
  for entry in loso:
    if 'skipped' in entry:
      lines.append(f'  {entry["size"]:>12s}: skipped ({entry["skipped"]})')
    else:
      lines.append(f'  {entry["size"]:>12s}: mean {100 * entry["mean_rel_err"]:.2f}%, '
                   f'max {100 * entry["max_rel_err"]:.2f}% over {entry["runs"]} runs')
  return lines


def lines(result: dict) -> list[str]:
  """What the command line prints of `result` (analyse)."""
  return (_fit_lines(result) + _isoflop_lines(result['isoflop']) +
          _loso_lines(result['leave_one_size_out']))


def json_ready(value):
  """`value` with NaN / inf replaced by None and numpy scalars by Python numbers."""
  if isinstance(value, dict):
    return {k: json_ready(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_ready(v) for v in value]
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value
