#!/usr/bin/env bash
# Train on GPUs of a SLURM allocation: `srun` starts the processes, JAX detects SLURM itself
# (coordinator on the first node, process count and id from SLURM_NTASKS / SLURM_PROCID).
#
# Usage (submit with sbatch, or run inside an salloc allocation):
#   sbatch --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 launch/slurm_gpu.sh \
#     --config=configs/pretrain.py:release --workdir=/shared/runs/pretrain_release
#
# Two layouts, chosen by TASKS_PER:
#   gpu   (default) one task per GPU: allocate --ntasks-per-node equal to --gpus-per-node. Each
#         process takes the GPU numbered by its SLURM_LOCALID (JAX's SLURM default), so give the
#         tasks all of the node's GPUs (--gpus-per-node), not one each (--gpus-per-task).
#   node  one task per node driving all of its GPUs: allocate --ntasks-per-node=1; this script
#         sets JAX_LOCAL_DEVICE_IDS to every GPU of the node (SLURM_GPUS_ON_NODE).
# The workdir must be on a filesystem all nodes share.
#
# Environment (defaults):
#   TASKS_PER   gpu or node (gpu)
#   PYTHON      interpreter (python)
#   SRUN_ARGS   extra srun arguments (none)
set -euo pipefail

if [[ -z "${SLURM_JOB_ID:-}" ]]; then
  sed -n '2,20p' "$0" >&2
  echo "launch/slurm_gpu.sh: not inside a SLURM allocation (SLURM_JOB_ID is unset)" >&2
  exit 2
fi
if [[ $# -eq 0 ]]; then
  echo "launch/slurm_gpu.sh: expected mbjax.train flags (--config=... --workdir=...)" >&2
  exit 2
fi
TASKS_PER="${TASKS_PER:-gpu}"
PYTHON="${PYTHON:-python}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${SLURM_SUBMIT_DIR:-}" && -d "${SLURM_SUBMIT_DIR}/mbjax" ]]; then
  root="$SLURM_SUBMIT_DIR"  # sbatch runs a copy of this script from a spool folder
fi
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}"

case "$TASKS_PER" in
  gpu) ;;
  node)
    gpus="${SLURM_GPUS_ON_NODE:-}"
    if [[ -z "$gpus" ]]; then
      echo "launch/slurm_gpu.sh: TASKS_PER=node needs SLURM_GPUS_ON_NODE" \
           "(allocate with --gpus-per-node)" >&2
      exit 2
    fi
    JAX_LOCAL_DEVICE_IDS="$(seq -s, 0 $((gpus - 1)))"
    export JAX_LOCAL_DEVICE_IDS
    ;;
  *)
    echo "launch/slurm_gpu.sh: TASKS_PER must be gpu or node, got '${TASKS_PER}'" >&2
    exit 2
    ;;
esac

# shellcheck disable=SC2086  # SRUN_ARGS is a list of words
exec srun --kill-on-bad-exit=1 ${SRUN_ARGS:-} "$PYTHON" -m mbjax.train "$@"
