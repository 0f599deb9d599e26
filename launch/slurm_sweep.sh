#!/usr/bin/env bash
# One run of a sweep per SLURM array task (written and submitted by
# `python -m mbjax.sweep --config=... --workdir=DIR --launcher=slurm`).
#
# Usage: sbatch --array=0-N launch/slurm_sweep.sh DIR/sweep_commands.txt
#   Line SLURM_ARRAY_TASK_ID (from 0) of the file holds the `mbjax.train` flags of one run; the
#   task runs them through launch/slurm_gpu.sh, so a run may span the GPUs (and nodes) the array
#   asks for per task (e.g. sbatch --gpus-per-node=8 --ntasks-per-node=8).
#
# Environment (defaults):
#   MBJAX_ROOT   the checkout (set by mbjax.sweep; else SLURM_SUBMIT_DIR)
#   and those of launch/slurm_gpu.sh (TASKS_PER, PYTHON, SRUN_ARGS)
set -euo pipefail

if [[ $# -ne 1 || ! -f "$1" ]]; then
  sed -n '2,12p' "$0" >&2
  echo "launch/slurm_sweep.sh: expected the sweep's commands file, got '${1:-}'" >&2
  exit 2
fi
if [[ -z "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  echo "launch/slurm_sweep.sh: not a SLURM array task (SLURM_ARRAY_TASK_ID is unset);" \
       "submit with sbatch --array=..." >&2
  exit 2
fi
root="${MBJAX_ROOT:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}}"
line="$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$1")"
if [[ -z "$line" ]]; then
  echo "launch/slurm_sweep.sh: $1 has no line $((SLURM_ARRAY_TASK_ID + 1))" \
       "(array task ${SLURM_ARRAY_TASK_ID})" >&2
  exit 2
fi
eval "args=(${line})"  # the line is shell-quoted by mbjax.sweep
exec "${root}/launch/slurm_gpu.sh" "${args[@]}"
