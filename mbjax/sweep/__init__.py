"""Sweeps: many ordinary training runs from one sweep file (`spec`), started here, on SLURM or by
any scheduler (`launchers`); `python -m mbjax.sweep`. Their analysis: `mbjax.scaling`."""
