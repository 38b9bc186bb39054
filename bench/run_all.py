"""Run the CPU benches one after another, each writing its record to bench/results/, then write
the docs' tables from the records (bench/tables.py). Settings are chosen so that the whole run
takes under an hour on 2 CPU cores; each bench's own defaults may run longer. Exits 1 when a
bench missed a goal or failed (the others still run, and the tables show every record).

    pip install -e '.[bench]'; python bench/run_all.py [--only trl_throughput overhead]

Not run here, each writing its own record when run alone: gpu_smoke.sh (it needs a GPU),
study_throughput.py (about 40 minutes: `python bench/study_throughput.py --trials 8 --repeats 5`),
racing.py (about 15 minutes), faults.py (about 3 minutes) and multinode_sim.py (about 4
minutes), which would take the whole run past the hour; the tests run the last two at a small
size.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

# (bench, its arguments): the benches that write a record, in a cheap-first order
BENCHES = [
    ("reward_battery", []),
    ("trl_throughput", ["--repeats", "5", "--steps", "10"]),
    ("overhead", ["--trials", "8", "--train-trials", "2", "--repeats", "5"]),
    ("time_to_target", ["--seeds", "5"]),
    ("memory", ["--trials", "100", "--tune-trials", "400"]),
    ("learning", ["--seconds", "90", "--seeds", "2"]),
    ("validity", ["--engine-aa-studies", "40"]),
    ("asha_savings", ["--seeds", "5", "--trials", "10", "--episodes", "256"]),
    ("health_pruning", ["--seeds", "5"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[name for name, _ in BENCHES], help="run these benches alone")
    args = parser.parse_args()
    outcome = []
    for name, arguments in BENCHES:
        if args.only and name not in args.only:
            continue
        print(f"\n=== {name} {' '.join(arguments)}", flush=True)
        start = time.perf_counter()
        code = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *arguments], cwd=BENCH.parent).returncode
        outcome.append((name, code, time.perf_counter() - start))
    print("\n=== tables", flush=True)
    tables = subprocess.run([sys.executable, str(BENCH / "tables.py")], cwd=BENCH.parent).returncode
    print(f"\n{'bench':16s} {'exit':>4s} {'seconds':>8s}")
    for name, code, seconds in outcome:
        print(f"{name:16s} {code:4d} {seconds:8.0f}")
    print(f"total {sum(s for _, _, s in outcome) / 60:.1f} min")
    return 1 if tables or any(code for _, code, _ in outcome) else 0


if __name__ == "__main__":
    sys.exit(main())
