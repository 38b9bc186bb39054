"""What every bench shares: repeats run interleaved, each figure the median of its repeats with
their range, goals that set the exit status, and one JSON record per bench (date, commit,
machine, settings, tables, goals) in bench/results/, from which bench/tables.py writes the
tables of docs/benchmarks.md and README, so that no figure a user reads is typed by hand."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def interleaved(sides: Dict[str, Callable[[], Any]], repeats: int) -> Dict[str, List[Any]]:
    """{side: its result in each round}. Every round runs each side once, and the round's first
    side rotates, so drift on the machine (heat, caches, other load) falls on all sides alike."""
    names = list(sides)
    results: Dict[str, List[Any]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            results[name].append(sides[name]())
    return results


def spread(values: Sequence[float]) -> Dict[str, float]:
    """The median of the repeats and their range."""
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1], "n": len(values)}


def shown(figure: Dict[str, float], digits: int = 2) -> str:
    """'median (min-max)' of a `spread`, or a plain number."""
    if not isinstance(figure, dict):
        return f"{figure:.{digits}f}"
    if figure["n"] == 1:
        return f"{figure['median']:.{digits}f}"
    return f"{figure['median']:.{digits}f} ({figure['min']:.{digits}f}-{figure['max']:.{digits}f})"


def spent_until(summary, target: float, clock: str = "iteration", metric: str = "eval_reward") -> float:
    """What a study run one trial at a time had spent, on ``clock`` (a history column counting
    up within a trial: "iteration", "episodes"), when some trial first reported ``metric`` >=
    ``target``: its trials in the order they ended, each up to its last report, the reaching
    one up to the report that reached it. All it spent when none did."""
    spent = 0.0
    for r in sorted(summary.all_results, key=lambda r: r.ended_at if r.ended_at is not None else 0.0):
        for step in r.history:
            if step.get(metric, float("-inf")) >= target:
                return spent + step[clock]
        spent += r.history[-1][clock] if r.history else 0.0
    return spent


def machine() -> Dict[str, Any]:
    """What the figures were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    # (records written by an earlier bench in the same checkout are outputs, not changes to what ran)
    return sha + ("+changes" if git("status", "--porcelain", "--untracked-files=no", "--", ".",
                                    ":(exclude)bench/results") else "")


@dataclass
class Record:
    """One bench run's figures. ``table`` and ``goal`` print as they go; ``finish`` writes the
    record and returns the exit status (1 when a goal was missed)."""

    bench: str
    summary: str  # one sentence: what was measured against what
    settings: Dict[str, Any]
    tables: List[Dict[str, Any]] = field(default_factory=list)
    goals: List[Dict[str, Any]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        rows = [[str(cell) for cell in row] for row in rows]
        self.tables.append({"title": title, "columns": list(columns), "rows": rows})
        print(f"\n{title}\n" + markdown_table(columns, rows))

    def goal(self, what: str, value: float, target: float, at_least: bool = True, digits: int = 2) -> bool:
        met = value >= target if at_least else value <= target
        self.goals.append({"what": what, "value": round(value, 6), "target": target, "at_least": at_least,
                           "digits": digits, "met": met})
        print(f"goal: {what}: {value:.{digits}f} ({'>=' if at_least else '<='} {target:g}) "
              f"{'met' if met else 'MISSED'}")
        return met

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(text)

    def finish(self, folder: Path = RESULTS) -> int:
        folder.mkdir(parents=True, exist_ok=True)
        record = dict(asdict(self), date=datetime.date.today().isoformat(), commit=commit(), machine=machine())
        path = folder / f"{self.bench}.json"
        path.write_text(json.dumps(record, indent=1) + "\n")
        missed = [g["what"] for g in self.goals if not g["met"]]
        print(f"\nrecord: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}; "
              + (f"goals missed: {'; '.join(missed)}" if missed else "every goal met"))
        return 1 if missed else 0


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
