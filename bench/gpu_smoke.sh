#!/usr/bin/env bash
# GPU smoke run (see bench/gpu_smoke.py). On a GPU machine: bash bench/gpu_smoke.sh
# To check the script on a CPU: bash bench/gpu_smoke.sh --tiny --steps 2
set -euo pipefail
cd "$(dirname "$0")/.."
exec python bench/gpu_smoke.py "$@"
