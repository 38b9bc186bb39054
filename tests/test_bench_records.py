"""The benches' shared harness and the docs written from their records: a figure a user reads in
docs/benchmarks.md or README is the one a bench recorded, and a missed goal fails the bench."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import tables  # noqa: E402


def test_the_docs_show_exactly_what_the_benches_recorded():
    records = tables.records()
    assert records, "bench/results/ holds no record"
    for path in tables.DOCUMENTS:
        text = path.read_text()
        assert tables.render(text, records) == text, f"{path.name} is out of date: run python bench/tables.py"
    page = (BENCH.parent / "docs" / "benchmarks.md").read_text()
    for name in records:
        assert f"<!-- bench:{name} -->" in page, f"docs/benchmarks.md has no section for the record {name}"


def test_a_record_is_rendered_with_its_provenance_figures_and_goals(tmp_path):
    record = harness.Record("demo", "ours against theirs", {"repeats": 3})
    record.table("Timings", ["side", "s"], [["ours", "1.0"], ["theirs", "2.0"]])
    record.goal("ours / theirs", 0.5, 0.8, at_least=False)
    assert record.finish(tmp_path) == 0
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert saved["machine"]["cores"] and saved["commit"] and saved["date"]
    text = "intro\n<!-- bench:demo -->\nstale figures\n<!-- /bench:demo -->\n<!-- bench:goals -->\n<!-- /bench:goals -->\n"
    out = tables.render(text, {"demo": saved})
    assert "stale figures" not in out and out.startswith("intro\n")
    assert "| ours | 1.0 |" in out and "repeats=3" in out and saved["commit"] in out
    assert "| `demo` | ours / theirs | 0.50 | <= 0.8 | met |" in out


def test_a_missed_goal_makes_the_bench_fail(tmp_path):
    record = harness.Record("demo", "ours against theirs", {})
    record.goal("speed-up", 1.2, 1.5)
    record.goal("overhead", 0.3, 0.5, at_least=False)
    assert record.finish(tmp_path) == 1
    assert [g["met"] for g in json.loads((tmp_path / "demo.json").read_text())["goals"]] == [False, True]


def test_repeats_are_interleaved_with_the_first_side_rotating():
    order = []
    sides = {name: (lambda name=name: order.append(name) or len(order)) for name in "ABC"}
    results = harness.interleaved(sides, 3)
    assert order == list("ABCBCACAB")
    assert results == {"A": [1, 6, 8], "B": [2, 4, 9], "C": [3, 5, 7]}
    assert harness.spread([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}


@pytest.mark.parametrize("args", [["--trials", "1"], ["--repeats", "0"]])
def test_a_bench_refuses_settings_it_cannot_measure_with(args):
    done = subprocess.run([sys.executable, str(BENCH / "overhead.py"), *args], capture_output=True, text=True)
    assert done.returncode == 2 and "must be at least" in done.stderr
