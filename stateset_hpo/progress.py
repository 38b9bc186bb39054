"""What a study shows while it runs: trials finished of the total, the running ones with their
iteration and metric, pruned / failed counts, the best so far, elapsed time and an ETA.

`StudyProgress` is a study callback (run_study adds it when ``HPOConfig.verbose``; the CLI's
``--quiet`` turns it off). On a terminal it keeps one block up to date in place (rich's Live)
and prints a line above it as each trial ends; anywhere else (a CI log, ``ray job logs``, a
file) it prints only those lines, so a log stays one readable line per trial.

The ETA is the remaining trials at the rate trials have finished so far (which already counts
the trials running at once and the ones pruned early), capped by the study's timeout; a study
that patience or a budget ends early finishes before it.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Dict, Optional, TextIO

from .config import HPOConfig
from .results import HPOResult, TrialStatus, is_better


def duration(seconds: Optional[float]) -> str:
    """1h02m, 3m05s, 42s; "-" when unknown."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class StudyProgress:
    """The study's progress on ``stream`` (stdout): live on a terminal, plain lines elsewhere
    (``live`` forces either)."""

    def __init__(self, config: HPOConfig, stream: Optional[TextIO] = None, live: Optional[bool] = None) -> None:
        self.metric, self.direction = config.objective_metric, config.direction
        self.total, self.timeout = config.n_trials, config.timeout
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.lock = threading.Lock()
        self.started_at = time.monotonic()
        self.running: Dict[str, Dict[str, Any]] = {}  # trial id -> iteration, value, started
        self.ended: Dict[str, int] = {}
        self.best: Optional[float] = None
        self._live = None

    # -- the study's events --------------------------------------------------------------------
    def on_hpo_start(self, search_space, n_trials: int) -> None:
        self.total, self.started_at = n_trials, time.monotonic()
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._panel(), console=Console(file=self.stream), refresh_per_second=2,
                              get_renderable=self._panel, transient=True)
            self._live.start()

    def on_trial_start(self, trial_id: str, params: Dict[str, Any]) -> None:
        with self.lock:
            self.running[str(trial_id)] = {"iteration": 0, "value": None, "started": time.monotonic()}

    def on_trial_result(self, trial_id: str, metrics: Dict[str, Any]) -> None:
        with self.lock:
            trial = self.running.get(str(trial_id))
            if trial is not None:
                trial["iteration"] = metrics.get("iteration", trial["iteration"] + 1)
                trial["value"] = metrics.get(self.metric, trial["value"])

    def on_trial_end(self, result: HPOResult) -> None:
        with self.lock:
            self.running.pop(result.trial_id, None)
            self.ended[result.status.value] = self.ended.get(result.status.value, 0) + 1
            value = result.best_metric
            if result.status is TrialStatus.SUCCESS and value is not None and is_better(value, self.best,
                                                                                       self.direction):
                self.best = value
            line = self.trial_line(result)
        if self._live is not None:
            self._live.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=self.stream, flush=True)

    def on_hpo_end(self, summary) -> None:
        self.close()

    def close(self) -> None:
        """End the live view (the search is over, or stopped); plain lines need nothing."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- what is shown -------------------------------------------------------------------------
    @property
    def finished(self) -> int:
        return sum(self.ended.values())

    def eta(self) -> Optional[float]:
        """Seconds until the last trial ends at the rate so far; None before any trial ended."""
        elapsed = time.monotonic() - self.started_at
        if not self.finished:
            return None
        left = max(0, self.total - self.finished) * elapsed / self.finished
        return min(left, max(0.0, self.timeout - elapsed)) if self.timeout else left

    def counts(self) -> str:
        best = "-" if self.best is None else f"{self.best:.4f}"
        return (f"running {len(self.running)}  success {self.ended.get('success', 0)}  "
                f"pruned {self.ended.get('pruned', 0)}  failed {self.ended.get('failed', 0)}  best {best}  "
                f"elapsed {duration(time.monotonic() - self.started_at)}  eta {duration(self.eta())}")

    def trial_line(self, result: HPOResult) -> str:
        shown = "-" if result.best_metric is None else f"{result.best_metric:.4f}"
        return (f"[{self.finished}/{self.total}] trial {result.trial_id} {result.status.value} "
                f"{self.metric}={shown}  {self.counts()}" + (f"  ({result.stop_reason})" if result.stop_reason else ""))

    def _panel(self):
        from rich.table import Table

        with self.lock:
            table = Table(title=f"{self.finished}/{self.total} trials  {self.counts()}", title_justify="left",
                          show_edge=False, box=None)
            for column in ("running trial", "iteration", self.metric, "for"):
                table.add_column(column, justify="left" if column == "running trial" else "right")
            now = time.monotonic()
            for trial_id, trial in sorted(self.running.items(), key=lambda item: item[1]["started"]):
                value = "-" if trial["value"] is None else f"{trial['value']:.4f}"
                table.add_row(trial_id, str(trial["iteration"]), value, duration(now - trial["started"]))
        return table
