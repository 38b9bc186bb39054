#!/usr/bin/env bash
# GPU study (see bench/gpu_study.py). On the device machine, with the bundle that
# bench/gpu_bundle.sh made here carried along (carry [".whl"]):
#   bash bench/gpu_study.sh --record-dir $OUT
# The wheels install into /tmp/site (pip --no-index --no-deps: nothing can be fetched there) and
# the project runs from this checkout. To check the script on a CPU: bash bench/gpu_study.sh --tiny
set -euo pipefail
cd "$(dirname "$0")/.."
site=
if [ -d .whl ]; then
  site=/tmp/site
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
fi
export PYTHONPATH="${site:+$site:}$PWD" PYTHONUNBUFFERED=1
exec python3 bench/gpu_study.py "$@"
