"""The study's records on disk: summary.json (strict JSON: `HPOSummary.load` reads it back) and
trials.csv (one row per trial: its outcome, cost, parameters and final metrics, with text cells
a spreadsheet would run as formulas neutralised), each replaced whole (atomic.py)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .atomic import write_atomically
from .constraints import broken
from .cost import COST_KEYS

if TYPE_CHECKING:
    from .results import HPOSummary


def read_json(path: Union[str, Path], what: str) -> Any:
    """A saved file's JSON, or ValueError saying it is missing or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} file {str(path)!r} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} file {str(path)!r} is not valid JSON: {exc}") from None


def _inert(cell: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (=, +, -, @ first: an error
    message or a categorical value can start so) is prefixed with a quote; numbers stay."""
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + cell
    return cell


def write_records(summary: "HPOSummary", output_dir: Path) -> None:
    """summary.json and trials.csv of ``summary`` in ``output_dir``."""
    summary.save(output_dir / "summary.json")
    names = sorted({k for r in summary.all_results for k in r.params})
    metrics = sorted({k for r in summary.all_results for k in r.metrics})
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["trial_id", "status", summary.objective_metric + " (objective)", "iterations",
                     "training_time", "ended_at", "error", "stopped_by", "stop_reason", "checkpoint_path",
                     "breaks_constraints"]
                    + [f"cost_{key}" for key in COST_KEYS] + names + metrics)
    for r in summary.all_results:
        writer.writerow([_inert(cell) for cell in
                         [r.trial_id, r.status.value, r.best_metric, len(r.history), r.training_time,
                          "" if r.ended_at is None else round(r.ended_at, 3),
                          (r.error or "").splitlines()[0] if r.error else "", r.stopped_by or "",
                          r.stop_reason or "", r.checkpoint_path or "", "; ".join(broken(r.metrics, summary.constraints))]
                         + [r.cost.get(key, "") for key in COST_KEYS]
                         + [r.params.get(n, "") for n in names] + [r.metrics.get(m, "") for m in metrics]])
    write_atomically(output_dir / "trials.csv", table.getvalue())
