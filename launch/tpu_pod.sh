#!/usr/bin/env bash
# Train on every host of a Cloud TPU VM pod slice: one `python -m mbjax.train` per host.
#
# Usage: TPU_NAME=NAME ZONE=ZONE launch/tpu_pod.sh [mbjax.train flags...]
#   TPU_NAME=mb-v4-32 ZONE=us-central2-b launch/tpu_pod.sh \
#     --config=configs/pretrain.py:release --workdir=/mnt/shared/runs/pretrain_release
#
# Runs the command on all workers through `gcloud compute tpus tpu-vm ssh --worker=all`. JAX
# detects the pod itself (coordinator, process count and id), so no distributed flags are given.
# Every host must have the repository at REPO_DIR with its environment installed, the datasets
# under the config's data_dir, and the workdir on storage all hosts share (checkpoints are
# written by every host into the same folder).
#
# Environment (defaults):
#   TPU_NAME, ZONE   required: the TPU VM and its zone
#   PROJECT          Google Cloud project (gcloud's configured one)
#   REPO_DIR         checkout on the hosts (~/mbjax)
#   PYTHON           interpreter on the hosts (.venv/bin/python inside REPO_DIR)
set -euo pipefail

missing=()
for var in TPU_NAME ZONE; do
  [[ -n "${!var:-}" ]] || missing+=("$var")
done
if [[ ${#missing[@]} -gt 0 || $# -eq 0 ]]; then
  sed -n '2,18p' "$0" >&2
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "launch/tpu_pod.sh: set ${missing[*]}" >&2
  else
    echo "launch/tpu_pod.sh: expected mbjax.train flags (--config=... --workdir=...)" >&2
  fi
  exit 2
fi
REPO_DIR="${REPO_DIR:-~/mbjax}"
PYTHON="${PYTHON:-.venv/bin/python}"

# Quote every flag for the remote shell; REPO_DIR stays unquoted so that ~ expands there.
remote_flags="$(printf ' %q' "$@")"
command="cd ${REPO_DIR} && ${PYTHON} -m mbjax.train${remote_flags}"

gcloud_args=(compute tpus tpu-vm ssh "$TPU_NAME" "--zone=$ZONE" --worker=all)
if [[ -n "${PROJECT:-}" ]]; then
  gcloud_args+=("--project=$PROJECT")
fi
echo "launch/tpu_pod.sh: on every worker of ${TPU_NAME}: ${command}" >&2
exec gcloud "${gcloud_args[@]}" "--command=${command}"
