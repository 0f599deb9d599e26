#!/usr/bin/env bash
# Several JAX processes on this machine, joined by jax.distributed (multi-process tests, debugging).
#
# Usage: launch/local.sh NUM_PROCESSES [mbjax.train flags...]
#   launch/local.sh 2 --config=configs/pretrain.py:tiny,runlocal --workdir=/tmp/pretrain_2proc
#
# Starts NUM_PROCESSES copies of `python -m mbjax.train FLAGS --coordinator=localhost:PORT
# --num_processes=N --process_id=i`, waits for all of them and exits with the first non-zero
# status (the other processes are then stopped: they would otherwise block in a collective).
# SIGINT/SIGTERM are forwarded, so a preempted launcher lets every process save and exit.
#
# Environment (defaults):
#   PORT            coordinator port on localhost (a free port)
#   PYTHON          interpreter (python)
#   JAX_PLATFORMS   backend of every process (cpu)
#   JAX_CPU_COLLECTIVES_IMPLEMENTATION   cross-process CPU collectives (gloo, JAX's default)
#   LOG_DIR         if set, process i writes LOG_DIR/process_i.log instead of this terminal
set -euo pipefail

if [[ $# -lt 1 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  sed -n '2,17p' "$0" >&2
  echo "launch/local.sh: expected NUM_PROCESSES (a positive integer) first, got '${1:-}'" >&2
  exit 2
fi
num_processes="$1"
shift

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}"
PYTHON="${PYTHON:-python}"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
export JAX_CPU_COLLECTIVES_IMPLEMENTATION="${JAX_CPU_COLLECTIVES_IMPLEMENTATION:-gloo}"
if [[ -z "${PORT:-}" ]]; then
  PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("localhost", 0))
print(s.getsockname()[1])')"
fi
if [[ -n "${LOG_DIR:-}" ]]; then
  mkdir -p "$LOG_DIR"
fi

pids=()
stop_all() {
  local signal="$1"
  for pid in "${pids[@]}"; do
    kill "-${signal}" "$pid" 2>/dev/null || true
  done
}
trap 'stop_all TERM; wait; trap - EXIT; exit 143' INT TERM
trap 'stop_all KILL' EXIT  # never leave a process behind, whatever happens here

for ((i = 0; i < num_processes; i++)); do
  cmd=("$PYTHON" -m mbjax.train "$@" "--coordinator=localhost:${PORT}"
       "--num_processes=${num_processes}" "--process_id=${i}")
  if [[ -n "${LOG_DIR:-}" ]]; then
    "${cmd[@]}" >"${LOG_DIR}/process_${i}.log" 2>&1 &
  else
    "${cmd[@]}" &
  fi
  pids+=("$!")
done

status=0
for ((i = 0; i < num_processes; i++)); do
  if wait -n; then
    continue
  else
    status=$?
  fi
  echo "launch/local.sh: a process exited with status ${status}; stopping the others" >&2
  break
done
exit "$status"
