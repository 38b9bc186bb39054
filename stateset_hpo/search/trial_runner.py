"""One trial in this process, the same for every in-process backend (Optuna, W&B).

`run_one` is the whole life of a trial: on_trial_start, the training run with every iteration
through the study's `lifecycle.TrialReporter` (health rules, the final checkpoint under
``output_dir/checkpoints/<trial>``) and then `InProcessSend` (the trial's W&B run,
on_trial_result, an early stop when the backend's rule or the study's deadline says so),
errors captured, on_trial_end. A backend keeps only its own ask / early-stop rule / tell
around it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..config import HPOConfig
from ..lifecycle import Report, TrialOutcome, TrialReporter, unusable_objective
from ..results import HPOResult
from ..trial import TrialSpec, planned_iterations, run_trial
from ..wandb_runs import TrialRun

# early_stop(metrics, iteration) -> why the trial stops here, or None to go on
EarlyStop = Callable[[Dict[str, float], int], Optional[str]]
# notify(hook, *args): fires a study callback hook (see stateset_hpo.callbacks)
Notify = Callable[..., None]


def study_deadline(config: HPOConfig) -> Optional[float]:
    """time.monotonic() at which the study's timeout runs out (None: no timeout)."""
    return time.monotonic() + config.timeout if config.timeout else None


def in_process_resources(config: HPOConfig) -> Tuple[float, float]:
    """(CPUs, GPUs) a trial in this process holds, for its cost: cpu_per_trial (default one),
    gpu_per_trial (default: one where the engine finds CUDA, as it then trains there)."""
    import torch

    gpus = config.gpu_per_trial if config.gpu_per_trial is not None else float(torch.cuda.is_available())
    return config.cpu_per_trial or 1.0, gpus


def _go_on(metrics: Dict[str, float], step: int) -> Optional[str]:
    return None


def _silent(hook: str, *args: Any) -> None:
    return None


@dataclass
class InProcessSend:
    """The trial's `lifecycle.Send` here: each iteration goes to the trial's W&B run and the
    study's callbacks, then the study's deadline and the backend's own rule (a pruner) may
    stop the trial."""

    trial_id: str
    notify: Notify
    early_stop: EarlyStop
    deadline: Optional[float] = None
    run: Optional[TrialRun] = None

    def __call__(self, report: Report) -> Optional[Tuple[str, str]]:
        if self.run is not None:
            self.run.log(report.metrics)
        self.notify("on_trial_result", self.trial_id, report.metrics)
        if report.final or report.stopped_by is not None:
            return None
        step = int(report.metrics["iteration"])
        if self.deadline is not None and time.monotonic() > self.deadline:
            return "timeout", f"stopped at the study's timeout, iteration {step}"
        why = self.early_stop(report.metrics, step)
        return ("pruner", why) if why is not None else None


def run_one(config: HPOConfig, spec: TrialSpec, trial_id: str, params: Dict[str, Any], notify: Notify = _silent,
            early_stop: EarlyStop = _go_on, deadline: Optional[float] = None,
            wandb: Optional[Mapping[str, Any]] = None, wandb_run: Any = None,
            keep_checkpoint: bool = True) -> HPOResult:
    """Run one trial here and return its result; never raises for the trial's own failure
    (an exception, or a final objective that is missing or not finite, makes it FAILED).

    ``wandb`` (a W&B project and entity) logs it as a W&B run in the study's group there
    (``wandb_run``: one a W&B sweep agent already started)."""
    notify("on_trial_start", trial_id, params)
    run = None
    if wandb is not None or wandb_run is not None:
        run = TrialRun(wandb or {}, config.resolved_study_name, f"trial-{trial_id}", params,
                       Path(config.output_dir) / "trials" / trial_id, run=wandb_run)
    folder = Path(config.output_dir).resolve() / "checkpoints" / trial_id if keep_checkpoint else None
    record = TrialReporter(InProcessSend(trial_id, notify, early_stop, deadline, run), spec.health,
                           checkpoint_folder=folder, checkpoints=keep_checkpoint)
    started = time.perf_counter()
    error = None
    try:
        run_trial(spec, params, record)
    except Exception as exc:  # recorded as a failed trial; the study goes on
        error = f"{type(exc).__name__}: {exc}"
    if error is None and record.stop_reason is None:  # (a multi-objective study needs every objective)
        error = unusable_objective(record.history, [metric for metric, _ in config.objectives])
    result = TrialOutcome(trial_id, params, record.history, planned_iterations(spec, params), error=error,
                          checkpoint_path=record.checkpoint_path, training_time=time.perf_counter() - started,
                          stopped_by=record.stopped_by, stop_reason=record.stop_reason,
                          resources=in_process_resources(config),
                          transcripts=record.transcripts, schedule=record.schedule).result(config.objective_metric)
    if run is not None:
        run.finish(result.status.value, error)
    notify("on_trial_end", result)
    return result


def run_points(config: HPOConfig, spec: TrialSpec, points: List[Dict[str, Any]]) -> List[HPOResult]:
    """Exactly these configurations, each trained to its end here, one after another, with
    nothing pruned and no checkpoint kept (the validation re-runs of an in-process backend)."""
    return [run_one(config, spec, f"validation-{i}", params, keep_checkpoint=False)
            for i, params in enumerate(points)]
