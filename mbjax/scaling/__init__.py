"""Scaling-law analysis of a sweep directory: `python -m mbjax.scaling DIR`.

collect.py reads one row per run (config.json + summary.json) into runs.csv; fit.py fits
L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, approach 3) and the compute-optimal
N and D for a budget; isoflop.py fits parabolas per compute budget (approach 2); plots.py draws
the pictures; report.py puts the numbers together. numpy / scipy / matplotlib only: no JAX.
"""
