#!/usr/bin/env bash
# The wheels bench/gpu_study.py needs on the GPU machine that its image lacks, for its Python,
# into .whl/ (git ignores it; the device tool carries it: carry [".whl"]). The GPU machines
# cannot reach a package index and take at most 64 MiB of working tree per call, and Ray's
# wheel alone is 76 MiB, 31 of them Java workers (ray/jars/ray_dist.jar) that a Python study
# never starts: the jar is taken out and the wheel repacked with its RECORD to match, so pip
# installs it as any wheel. The rest are what ray[default,tune,train] and the study import that
# the image does not hold (its package list: /work/.library/device/KINDS.md, read 2026-11-17).
# Fails if the bundle and the working tree come to 60 MiB or more.
#
#   bash bench/gpu_bundle.sh [--python-version 3.12] [--dest .whl]
#   (bench/gpu_study.sh installs it there with pip --no-index --no-deps --target)
set -euo pipefail
cd "$(dirname "$0")/.."

python_version=3.12 dest=.whl
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) python_version=$2; shift 2 ;;
    --dest) dest=$2; shift 2 ;;
    *) echo "usage: bash bench/gpu_bundle.sh [--python-version 3.12] [--dest .whl]" >&2; exit 2 ;;
  esac
done

# pinned to what the project is tested with here; py-spy (ray[default]'s profiler binary) is
# left out: nothing in a study runs it
WHEELS=(
  ray==2.60.0
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  aiohttp-cors==0.8.1 colorful==0.5.8 smart-open==9.0.4 tensorboardX==2.6.5
  virtualenv==21.15.14 distlib==0.4.4 platformdirs==4.14.9
  opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 opentelemetry-proto==1.45.2
  opentelemetry-semantic-conventions==0.66b2 opentelemetry-exporter-prometheus==0.66b2
  opencensus==0.11.4 opencensus-context==0.1.3 google-api-core==2.44.0 googleapis-common-protos==1.76.0
  proto-plus==1.29.0
)

rm -rf "$dest" && mkdir -p "$dest"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64 any; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$python_version" --implementation cp \
  "${platforms[@]}" -d "$dest" "${WHEELS[@]}" 2> >(grep -v "^WARNING: Location" >&2)

python3 - "$dest" <<'EOF'
"""Take ray/jars/ out of Ray's wheel, and its lines out of the wheel's RECORD."""
import glob, os, sys, zipfile

wheel = glob.glob(os.path.join(sys.argv[1], "ray-*.whl"))[0]
dropped = lambda name: name.startswith("ray/jars/")
with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(wheel + ".new", "w", zipfile.ZIP_DEFLATED) as target:
    for item in source.infolist():
        if dropped(item.filename):
            continue
        data = source.read(item)
        if item.filename.endswith(".dist-info/RECORD"):
            data = "".join(line for line in data.decode().splitlines(True) if not dropped(line)).encode()
        target.writestr(item, data)
os.replace(wheel + ".new", wheel)
print(f"{os.path.basename(wheel)}: ray/jars/ taken out, {os.path.getsize(wheel) / 2**20:.1f} MiB")
EOF

bundle=$(du -cb "$dest"/*.whl | tail -1 | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" { s += $1 } END { print s }')
total=$(( (bundle + tree) / 1048576 ))
echo "bundle: $(ls "$dest" | wc -l) wheels, $(( bundle / 1048576 )) MiB; with the working tree: $total MiB (limit 60)"
[ "$total" -lt 60 ] || { echo "too large for the device machine's 64 MiB" >&2; exit 1; }
