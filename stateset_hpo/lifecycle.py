"""One trial's life, the same on every backend: what happens after each iteration, and what the
trial came to.

After each iteration `TrialReporter` applies the rules in one order: a health rule may end the
trial (never on its last planned iteration), else a checkpoint is saved when one is due, then
the iteration goes to the backend (``send``), whose scheduler, pruner or deadline may stop the
trial there. Backends differ only in ``send``: Optuna's reports to its pruner in this process,
Ray's hands the report to Tune from a trial worker.

What a backend observed of a finished trial is one `TrialOutcome`; its status (success,
pruned, failed) is derived from it here, never assumed, and the same way on every backend.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .cost import trial_cost
from .health import HealthMonitor, HealthRules
from .results import HPOResult, TrialStatus

# The report's parts that are not metrics, under these keys where a backend can carry only one
# flat dict of results (Ray Tune's): strings, which every Tune logger writes as they are.
STOPPED_BY, STOP_REASON, TRANSCRIPTS, SCHEDULE = "stopped_by", "stop_reason", "test_transcripts", "schedule"


@dataclass
class Report:
    """One iteration as the backend receives it."""

    metrics: Dict[str, float]
    final: bool  # the trial's last planned iteration
    checkpoint: Optional[str] = None  # a folder with the trainer's state, when one is due
    stopped_by: Optional[str] = None  # a health rule that ends the trial here ...
    stop_reason: Optional[str] = None  # ... and why, in words
    transcripts: Optional[List[Dict[str, Any]]] = None  # a run scored on the test split: a few of its conversations
    schedule: Optional[List[Dict[str, Any]]] = None  # the last iteration of a run whose settings changed (`schedule_of`)

    def flat(self) -> Dict[str, Any]:
        """The metrics with the other parts under their keys (`annotations_of` reads them back)."""
        row: Dict[str, Any] = dict(self.metrics)
        if self.stopped_by is not None:
            row.update({STOPPED_BY: self.stopped_by, STOP_REASON: self.stop_reason})
        if self.transcripts:
            row[TRANSCRIPTS] = json.dumps(self.transcripts)
        if self.schedule:
            row[SCHEDULE] = json.dumps(self.schedule)
        return row


def annotations_of(row: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """{stopped_by, stop_reason, transcripts, schedule} of a flat result row (`Report.flat`), where present."""
    row = row or {}
    out: Dict[str, Any] = {}
    if row.get(STOP_REASON):
        out.update(stopped_by=row.get(STOPPED_BY), stop_reason=row[STOP_REASON])
    for key, name in ((TRANSCRIPTS, "transcripts"), (SCHEDULE, "schedule")):
        if isinstance(row.get(key), str):
            out[name] = json.loads(row[key])
    return out


def schedule_of(config_schedule: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """[{iteration, params}]: the settings that changed along a run (a PBT trial's exploits and
    explorations, its donors' included), each stretch from its first iteration on, with the
    values of every setting that changes anywhere along it; [] for a run trained with one
    configuration throughout. ``config_schedule``: the trainer's, [{iteration, config}]."""
    first = config_schedule[0]["config"]
    varying = sorted({k for entry in config_schedule for k, v in entry["config"].items() if v != first.get(k)})
    if not varying:
        return []
    return [{"iteration": entry["iteration"], "params": {k: entry["config"].get(k) for k in varying}}
            for entry in config_schedule]


def continued_schedule(config_schedule: List[Dict[str, Any]], step: int,
                       config: Dict[str, Any]) -> List[Dict[str, Any]]:
    """A restored run's [{iteration, config}] (`schedule_of`'s input): the checkpoint's, then
    ``config`` from ``step`` on where it differs (a PBT exploit: the donor's past, then the
    trial's own settings); a stretch that trained nothing is dropped."""
    schedule = list(config_schedule)
    if schedule[-1]["config"] != config:
        if schedule[-1]["iteration"] == step:
            schedule.pop()
        if not schedule or schedule[-1]["config"] != config:
            schedule.append({"iteration": step, "config": config})
    return schedule


# send(report) -> (who, why) when the backend stops the trial after this iteration, else None
Send = Callable[[Report], Optional[Tuple[str, str]]]


@dataclass
class ObjectiveProgress:
    """What `TrialReporter` reads of a custom objective that reports every step
    (`trial.run_reporting_objective`): how many reports it plans and what it reported. It has
    no checkpoint to save and none of GRPO's signals for the health rules."""

    planned: int
    step: int = 0
    history: List[Dict[str, float]] = field(default_factory=list)

    @property
    def config(self) -> Any:
        return SimpleNamespace(total_iterations=self.planned)


def checkpoint_due(iteration: int, total: int, every: Optional[int]) -> bool:
    """A checkpoint at the end, and every ``every`` iterations (None: only at the end)."""
    return iteration == total or (every is not None and iteration % every == 0)


class TrialReporter:
    """`stateset_hpo.trial.Reporter` for every backend: health, then checkpoint, then the backend.

    ``checkpoint_folder``: where checkpoints go and stay (in-process trials keep their final
    state there); None saves each into a temporary folder that lives while ``send`` runs (Ray
    copies it into its own storage). ``checkpoints=False`` saves none (a validation run, or a
    worker other than rank 0)."""

    def __init__(self, send: Send, health: Optional[HealthRules] = None, checkpoint_every: Optional[int] = None,
                 checkpoint_folder: Optional[Path] = None, checkpoints: bool = True) -> None:
        self.send = send
        self.monitor = HealthMonitor(health) if health is not None else None
        self.checkpoint_every = checkpoint_every
        self.checkpoint_folder = checkpoint_folder
        self.checkpoints = checkpoints
        self.history: List[Dict[str, float]] = []
        self.stopped_by: Optional[str] = None
        self.stop_reason: Optional[str] = None
        self.checkpoint_path: Optional[str] = None  # the last kept checkpoint (with checkpoint_folder)
        self.transcripts: List[Dict[str, Any]] = []
        self.schedule: List[Dict[str, Any]] = []

    def __call__(self, metrics: Dict[str, float], trainer: Any) -> bool:
        """True when the trial is to stop after this iteration."""
        self.history.append(metrics)
        step = int(metrics["iteration"])
        total = trainer.config.total_iterations if trainer is not None else step  # (a custom objective reports once)
        report = Report(metrics, final=step >= total)
        if isinstance(trainer, ObjectiveProgress):  # (a custom objective's steps: no schedule, health or checkpoint)
            return self._deliver(report)
        if report.final and trainer is not None:
            report.schedule = self.schedule = schedule_of(trainer.config_schedule)
            if trainer.test_at_end:
                report.transcripts = self.transcripts = list(trainer.test_transcripts)
        if not report.final and self.monitor is not None and trainer is not None:
            unhealthy = self.monitor.check(metrics, trainer.config, trainer.history)  # (a restored trial's past too)
            if unhealthy is not None:
                report.stopped_by, report.stop_reason = unhealthy
        if report.stopped_by is None and trainer is not None and self.checkpoints and \
                checkpoint_due(step, total, self.checkpoint_every):
            if self.checkpoint_folder is not None:
                report.checkpoint = self.checkpoint_path = str(trainer.save_checkpoint(self.checkpoint_folder))
            else:
                with tempfile.TemporaryDirectory() as folder:
                    trainer.save_checkpoint(folder)
                    report.checkpoint = folder
                    return self._deliver(report)
        return self._deliver(report)

    def _deliver(self, report: Report) -> bool:
        stop = self.send(report)
        if report.stopped_by is None and stop is not None and not report.final:
            report.stopped_by, report.stop_reason = stop
        self.stopped_by, self.stop_reason = report.stopped_by, report.stop_reason
        return report.stopped_by is not None


@dataclass
class TrialOutcome:
    """What a backend observed of one trial, from which its `HPOResult` is derived."""

    trial_id: str
    params: Dict[str, Any]
    history: List[Dict[str, Any]]
    planned_iterations: int
    error: Optional[str] = None
    checkpoint_path: Optional[str] = None
    training_time: float = 0.0
    stopped_by: Optional[str] = None
    stop_reason: Optional[str] = None
    resources: Tuple[float, float] = (0.0, 0.0)  # (CPUs, GPUs) held, which turn wall time into worker-seconds
    transcripts: List[Dict[str, Any]] = field(default_factory=list)
    schedule: List[Dict[str, Any]] = field(default_factory=list)

    def result(self, objective_metric: str) -> HPOResult:
        """The trial's result. The status is derived, never assumed: failed if the trial raised
        or its final objective is missing or not finite (NaN is no measurement), pruned if the
        run that counts (see `by_iteration`) ended before its planned iteration (a scheduler,
        pruner or health rule stopped it: ``stopped_by`` and ``stop_reason``, kept for pruned
        trials only, say which and why), success otherwise."""
        history = by_iteration(self.history)
        reached = int(history[-1]["iteration"]) if history and "iteration" in history[-1] else len(history)
        error = self.error
        if not error and reached >= self.planned_iterations:
            error = unusable_objective(history, [objective_metric])
        if error:
            status = TrialStatus.FAILED
        elif reached < self.planned_iterations:
            status = TrialStatus.PRUNED
        else:
            status = TrialStatus.SUCCESS
        last = dict(history[-1]) if history else {}
        pruned = status is TrialStatus.PRUNED
        return HPOResult(trial_id=self.trial_id, params=self.params, metrics=last, history=history,
                         best_metric=last.get(objective_metric), training_time=self.training_time, status=status,
                         error=error, checkpoint_path=self.checkpoint_path,
                         stopped_by=self.stopped_by if pruned else None,
                         stop_reason=(self.stop_reason or f"stopped early at iteration {reached}") if pruned else None,
                         cost=trial_cost(history, self.training_time, *self.resources),
                         transcripts=list(self.transcripts), schedule=list(self.schedule))


def unusable_objective(history: List[Dict[str, Any]], metrics: List[str]) -> Optional[str]:
    """Why a finished trial's final objective values cannot be scored, or None."""
    last = history[-1] if history else {}
    for metric in metrics:
        value = last.get(metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"the trial's final {metric!r} is {value!r}, not a finite number"
    return None


def by_iteration(history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The history of the run that counts, one entry per iteration: a trial retried or resumed
    reports again from where it restarted (the iteration after its checkpoint, or 1 without
    one), and everything the abandoned run reported from that point on is dropped, so rows of
    two runs never mix and a run that died early is not taken for one that finished."""
    if not all("iteration" in step for step in history):
        return list(history)
    kept: List[Dict[str, Any]] = []
    for step in history:
        while kept and int(kept[-1]["iteration"]) >= int(step["iteration"]):
            kept.pop()
        kept.append(step)
    return kept
