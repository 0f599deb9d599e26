"""mbjax.scaling: the L(N, D) fit, IsoFLOP profiles, collecting a sweep and the command line, on
synthetic losses and a fake sweep directory (JSON files only; no JAX)."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy import optimize

from mbjax.scaling import collect, fit, isoflop, plots

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAW = dict(E=1.7, A=400.0, B=4e3, alpha=0.34, beta=0.28)
K = 100.0  # C = K N D in the fake sweep
SIZES = {'d16_l1': 1e5, 'd32_l1': 3e5, 'd64_l2': 1e6, 'd128_l2': 3e6, 'd256_l4': 1e7}
BUDGETS = (1e17, 10**18.5, 1e20)  # analytic N_opt inside the sizes for all three


def _grid_losses(noise: float, seed: int = 0):
  n, d = (x.ravel() for x in np.meshgrid(np.logspace(4, 8, 5), np.logspace(9, 13, 5)))
  rng = np.random.default_rng(seed)
  return n, d, fit.predict(LAW, n, d) * np.exp(noise * rng.standard_normal(n.size))


def test_fit_recovers_the_law_without_noise():
  n, d, loss = _grid_losses(0.0)
  best = fit.fit_loss(n, d, loss)
  for name, value in LAW.items():
    assert best[name] == pytest.approx(value, rel=2e-3), name


def test_fit_recovers_the_law_from_losses_with_two_percent_noise():
  n, d, loss = _grid_losses(0.02)
  best = fit.fit_loss(n, d, loss)
  assert abs(best['alpha'] - LAW['alpha']) < 0.03 and abs(best['beta'] - LAW['beta']) < 0.03
  assert best['E'] == pytest.approx(LAW['E'], rel=0.2)
  assert abs(np.log(best['A'] / LAW['A'])) < 1.0 and abs(np.log(best['B'] / LAW['B'])) < 1.0
  assert np.abs(fit.predict(best, n, d) / fit.predict(LAW, n, d) - 1).max() < 0.02


def test_objective_gradient_matches_finite_differences():
  n, d, loss = _grid_losses(0.02)
  args = (np.log(n), np.log(d), np.log(loss))
  theta = np.array([5.0, 8.0, 0.4, 0.3, 0.3])
  err = optimize.check_grad(lambda t: fit.objective(t, *args)[0],
                            lambda t: fit.objective(t, *args)[1], theta, epsilon=1e-7)
  assert err < 1e-3 * np.linalg.norm(fit.objective(theta, *args)[1])


def test_compute_optimal_closed_form_matches_a_numeric_minimisation():
  for budget in (1e16, 1e19, 1e22):
    closed = fit.compute_optimal(LAW, budget, K)
    along = lambda log_n, c=budget: fit.predict(LAW, np.exp(log_n), c / (K * np.exp(log_n)))
    numeric = optimize.minimize_scalar(along, bounds=(0, 40), method='bounded',
                                       options=dict(xatol=1e-10))
    assert np.log(closed['N']) == pytest.approx(numeric.x, abs=1e-4)
    assert closed['N'] * closed['D'] * K == pytest.approx(budget)
    assert closed['loss'] == pytest.approx(numeric.fun, rel=1e-9)


def test_parabola_minimum_of_an_exact_parabola_and_none_when_concave():
  n = np.exp(np.linspace(10, 14, 5))
  best = isoflop.parabola_minimum(n, 0.5 * (np.log(n) - 12.3)**2 + 2.0)
  assert np.log(best['N_opt']) == pytest.approx(12.3) and best['loss_opt'] == pytest.approx(2.0)
  assert best['inside']
  assert isoflop.parabola_minimum(n, -(np.log(n) - 12.0)**2) is None


def test_isoflop_minima_land_near_the_analytic_optimum():
  budgets, n, loss = [], [], []
  for c in BUDGETS:
    centre = fit.compute_optimal(LAW, c, K)['N']
    sizes = centre * np.exp(np.linspace(-1.5, 1.5, 7))
    budgets += [c] * len(sizes)
    n += list(sizes)
    loss += list(fit.predict(LAW, sizes, c / (K * sizes)))
  result = isoflop.analyse(budgets, n, loss, K, 20, np.random.default_rng(0))
  assert len(result['profiles']) == 3 and result['notes'] == []
  for profile in result['profiles']:
    analytic = fit.compute_optimal(LAW, profile['budget'], K)
    assert abs(np.log(profile['N_opt'] / analytic['N'])) < 0.1
    assert abs(np.log(profile['D_opt'] / analytic['D'])) < 0.1
  slope = LAW['beta'] / (LAW['alpha'] + LAW['beta'])  # of the closed form N_opt ~ C^slope
  assert result['exponents']['a'] == pytest.approx(slope, abs=0.01)
  assert result['exponents']['b'] == pytest.approx(1 - slope, abs=0.01)
  low, high = result['intervals']['a']
  assert low <= result['exponents']['a'] + 1e-9 and high >= result['exponents']['a'] - 1e-9


def test_isoflop_skips_budgets_with_fewer_than_three_sizes():
  result = isoflop.analyse([1e18] * 2 + [1e19] * 3, [1e5, 1e6, 1e5, 1e6, 1e7],
                           [3.0, 2.9, 3.0, 2.5, 2.7], K, 5, np.random.default_rng(0))
  assert [p['budget'] for p in result['profiles']] == [1e19]
  assert any('budget 1e+18: 2 model size(s)' in note for note in result['notes'])
  assert result['exponents'] is None


def test_frontier_keeps_runs_that_beat_all_cheaper_ones():
  c = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
  assert plots.frontier(c, np.array([5.0, 6.0, 4.0, 4.5, 3.0])).tolist() == [0, 2, 4]
  tied = np.array([1.0, 1.0, 1.0, 2.0])  # runs of one budget: only the best is on the frontier
  assert plots.frontier(tied, np.array([5.0, 3.0, 4.0, 2.0])).tolist() == [1, 3]


# --- a fake sweep directory -------------------------------------------------------------------


def _write_run(sweep, name, size, n, budget, *, steps=100, loss=None, summary='full',
               data=None):
  d = data if data is not None else budget / (K * n)
  folder = sweep / name
  folder.mkdir(parents=True)
  scaling = dict(name=name, size=size, budget=budget, steps=steps, data_fraction=1.0,
                 metric='lifting/mpjpe_mm')
  config = dict(model=dict(dim_feat=16, depth=1, num_heads=2, mlp_ratio=2), lr=5e-4, seed=0,
                batch_size=8, scaling=scaling)
  (folder / 'config.json').write_text(json.dumps(config))
  if summary is None:
    return folder
  out = {'step': steps, 'total_steps': steps, 'preempted': summary == 'preempted',
         'compute/params': n * 1.1, 'compute/params_non_embedding': n,
         'compute/flops_per_step': K * n * d / steps, 'compute/flops': K * n * d,
         'compute/clips': d / 27, 'compute/frames': d, 'compute/wall_s': 12.5}
  if summary != 'preempted':
    out['lifting/mpjpe_mm'] = float(loss if loss is not None else fit.predict(LAW, n, d))
  (folder / 'summary.json').write_text(json.dumps(out))
  return folder


def _fake_sweep(sweep, sizes=SIZES, seed=0):
  rng = np.random.default_rng(seed)
  for c in BUDGETS:
    for size, n in sizes.items():
      loss = fit.predict(LAW, n, c / (K * n)) * np.exp(0.005 * rng.standard_normal())
      _write_run(sweep, f'{size}_c{c:.0e}', size, n, c, loss=loss)
  _write_run(sweep, 'd64_l2_unfinished', 'd64_l2', 1e6, 1e21, summary=None)
  _write_run(sweep, 'd64_l2_preempted', 'd64_l2', 1e6, 1e21, summary='preempted')
  return sweep


def test_collect_lists_unfinished_and_preempted_runs_and_writes_runs_csv(tmp_path):
  sweep = _fake_sweep(tmp_path / 'sweep')
  _write_run(sweep, 'd64_l2_nan', 'd64_l2', 1e6, 1e21, loss=float('nan'))
  rows = collect.collect(str(sweep))
  status = {r['run']: r['status'] for r in rows}
  assert status['d64_l2_unfinished'] == 'unfinished' and status['d64_l2_preempted'] == 'preempted'
  assert status['d64_l2_nan'] == 'diverged'  # listed, not fitted
  assert len(collect.finished(rows)) == 15
  assert all(np.isnan(r['loss']) for r in rows if not r['finished'])
  collect.write_csv(rows, str(tmp_path / 'runs.csv'))
  lines = (tmp_path / 'runs.csv').read_text().splitlines()
  assert lines[0].startswith('run,size,N,params,D,C,loss,budget,steps,data_fraction,lr,seed,')
  assert len(lines) == 19 and any(line.endswith(',False,unfinished') for line in lines)
  assert '18 runs: 15 finished' in collect.summary_line(rows)


@pytest.mark.parametrize('mistake, message', [
    ('json', 'summary.json: not valid JSON'),
    ('metric', "metric 'lifting/mpjpe_mm' (scaling.metric of config.json) is missing"),
    ('flops', "field 'compute/flops' is missing"),
    ('scaling', 'field "scaling" is missing'),
])
def test_collect_names_the_file_and_field_of_a_malformed_run(tmp_path, mistake, message):
  folder = _write_run(tmp_path, 'bad', 'd16_l1', 1e5, 1e17)
  summary, config = folder / 'summary.json', folder / 'config.json'
  if mistake == 'json':
    summary.write_text('{"step": 100,')
  elif mistake in ('metric', 'flops'):
    record = json.loads(summary.read_text())
    del record['lifting/mpjpe_mm' if mistake == 'metric' else 'compute/flops']
    summary.write_text(json.dumps(record))
  else:
    config.write_text(json.dumps(dict(lr=1e-3)))
  with pytest.raises(collect.ScalingError, match='bad') as e:
    collect.collect(str(tmp_path))
  assert message in str(e.value)


def test_collect_of_an_empty_or_missing_dir_says_so(tmp_path):
  with pytest.raises(collect.ScalingError, match='no runs'):
    collect.collect(str(tmp_path))
  with pytest.raises(collect.ScalingError, match='no such directory'):
    collect.collect(str(tmp_path / 'absent'))


def test_leave_one_size_out_reports_an_error_per_size():
  sizes, n, d, loss = [], [], [], []
  for c in BUDGETS:
    for size, value in SIZES.items():
      sizes.append(size)
      n.append(value)
      d.append(c / (K * value))
      loss.append(fit.predict(LAW, value, d[-1]))
  start = fit.theta_of(fit.fit_loss(n, d, loss))  # as the command line starts each refit
  loso = fit.leave_one_size_out(sizes, n, d, loss, starts=start, num_starts=2)
  assert [e['size'] for e in loso] == list(SIZES)
  for entry in loso:
    assert entry['runs'] == 3 and entry['max_rel_err'] >= entry['mean_rel_err']
    assert entry['max_rel_err'] < 0.05, entry
  two = fit.leave_one_size_out(sizes[:2] * 3, n[:2] * 3, d[:6], loss[:6], starts=start)
  assert len(two) == 2 and all('too few finished runs' in e['skipped'] for e in two)


def _cli(*args, cwd=ROOT):
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  return subprocess.run([sys.executable, '-m', 'mbjax.scaling', *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=120)


def test_cli_end_to_end_writes_the_table_the_fit_and_the_plots(tmp_path):
  sweep = _fake_sweep(tmp_path / 'sweep')
  out = tmp_path / 'out'
  done = _cli(str(sweep), '--budget', '1e21', '--bootstrap', '8', '--out', str(out),
              '--title_suffix', 'toy')
  assert done.returncode == 0, done.stderr
  for text in ('17 runs: 15 finished', 'alpha', 'N_opt = ', 'compute-optimal for C = 1e+21',
               'leave-one-size-out', 'd256_l4: mean'):
    assert text in done.stdout, (text, done.stdout)
  assert (out / 'runs.csv').read_text().count('\n') == 18
  result = json.loads((out / 'scaling_fit.json').read_text())
  assert abs(result['fit']['alpha'] - LAW['alpha']) < 0.05
  assert len(result['isoflop']['profiles']) == 3 and result['isoflop']['exponents']
  assert result['compute_optimal']['budget'] == 1e21 and len(result['leave_one_size_out']) == 5
  assert result['k'] == pytest.approx(K)
  for name in plots.FILES.values():
    data = (out / name).read_bytes()
    assert data.startswith(b'\x89PNG\r\n\x1a\n') and len(data) > 5000, name
  assert str(out / 'isoflop.png') in done.stdout


@pytest.mark.parametrize('case, message', [
    ('missing', 'no such directory'),
    ('unfinished', 'no finished runs'),
    ('few', 'too few finished runs to fit'),
])
def test_cli_user_mistakes_are_one_line_and_status_2(tmp_path, case, message):
  sweep = tmp_path / 'sweep'
  if case == 'unfinished':
    _write_run(sweep, 'a', 'd16_l1', 1e5, 1e17, summary=None)
  elif case == 'few':
    for i, n in enumerate((1e5, 1e6, 1e7)):
      _write_run(sweep, f'r{i}', f's{i}', n, 1e18)
  done = _cli(str(sweep), '--bootstrap', '0')
  assert done.returncode == 2, done.stderr
  assert message in done.stderr and 'Traceback' not in done.stderr
  assert len(done.stderr.strip().splitlines()) == 1, done.stderr
