"""One trial in this process, the same for every in-process backend (Optuna, W&B).

`run_one` is the whole life of a trial: on_trial_start, the training run with every iteration
recorded (`TrialRecorder`: metric history, the trial's W&B run, on_trial_result, the final
checkpoint under ``output_dir/checkpoints/<trial>``, and an early stop when a health rule, the
backend's rule or the study's deadline says so), errors captured, on_trial_end. A backend keeps only its own
ask / early-stop rule / tell around it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..config import HPOConfig
from ..health import HealthMonitor
from ..results import HPOResult, trial_result, unusable_objective
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
class TrialRecorder:
    """The trial's ``report`` function (see `stateset_hpo.trial.Reporter`)."""

    checkpoint_folder: Optional[Path]  # where the final state goes (None: not kept)
    planned: int  # iterations the trial trains unless stopped
    trial_id: str
    notify: Notify
    early_stop: EarlyStop
    deadline: Optional[float] = None
    run: Optional[TrialRun] = None
    health: Optional[HealthMonitor] = None
    history: List[Dict[str, float]] = field(default_factory=list)
    stopped_by: Optional[str] = None
    stop_reason: Optional[str] = None
    checkpoint_path: Optional[str] = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def elapsed(self) -> float:
        """Seconds since the trial started."""
        return time.perf_counter() - self.started

    def __call__(self, metrics: Dict[str, float], trainer: Any) -> bool:
        self.history.append(metrics)
        if self.run is not None:
            self.run.log(metrics)
        self.notify("on_trial_result", self.trial_id, metrics)
        step = int(metrics["iteration"])
        if step >= self.planned:  # the trial is done: keep its final state, nothing left to stop
            if trainer is not None and self.checkpoint_folder is not None:  # (a custom objective has none)
                self.checkpoint_path = str(trainer.save_checkpoint(self.checkpoint_folder))
            return False
        unhealthy = self.health.check(metrics, trainer.config, trainer.history) \
            if self.health is not None and trainer is not None else None
        if unhealthy is not None:
            self.stopped_by, self.stop_reason = unhealthy
        elif self.deadline is not None and time.monotonic() > self.deadline:
            self.stopped_by, self.stop_reason = "timeout", f"stopped at the study's timeout, iteration {step}"
        else:
            self.stopped_by, self.stop_reason = "pruner", self.early_stop(metrics, step)
        return self.stop_reason is not None


def run_one(config: HPOConfig, spec: TrialSpec, trial_id: str, params: Dict[str, Any], notify: Notify = _silent,
            early_stop: EarlyStop = _go_on, deadline: Optional[float] = None, log_to_wandb: bool = False,
            wandb_run: Any = None, keep_checkpoint: bool = True) -> HPOResult:
    """Run one trial here and return its result; never raises for the trial's own failure
    (an exception, or a final objective that is missing or not finite, makes it FAILED).

    ``log_to_wandb`` logs it as a W&B run in the study's group (``wandb_run``: one a W&B
    sweep agent already started)."""
    notify("on_trial_start", trial_id, params)
    run = None
    if log_to_wandb or wandb_run is not None:
        run = TrialRun(config.wandb_config, config.resolved_study_name, f"trial-{trial_id}", params,
                       Path(config.output_dir) / "trials" / trial_id, run=wandb_run)
    folder = Path(config.output_dir).resolve() / "checkpoints" / trial_id if keep_checkpoint else None
    planned = planned_iterations(spec, params)
    record = TrialRecorder(folder, planned, trial_id, notify, early_stop, deadline, run,
                           HealthMonitor(spec.health) if spec.health is not None else None)
    error = None
    try:
        run_trial(spec, params, record)
    except Exception as exc:  # recorded as a failed trial; the study goes on
        error = f"{type(exc).__name__}: {exc}"
    if error is None and record.stop_reason is None:  # (a multi-objective study needs every objective)
        error = unusable_objective(record.history, [metric for metric, _ in config.objectives])
    result = trial_result(trial_id, params, record.history, config.objective_metric, planned, error=error,
                          checkpoint_path=record.checkpoint_path, training_time=record.elapsed,
                          stopped_by=record.stopped_by, stop_reason=record.stop_reason,
                          resources=in_process_resources(config))
    if run is not None:
        run.finish(result.status.value, error)
    notify("on_trial_end", result)
    return result


def run_points(config: HPOConfig, spec: TrialSpec, points: List[Dict[str, Any]]) -> List[HPOResult]:
    """Exactly these configurations, each trained to its end here, one after another, with
    nothing pruned and no checkpoint kept (the validation re-runs of an in-process backend)."""
    return [run_one(config, spec, f"validation-{i}", params, keep_checkpoint=False)
            for i, params in enumerate(points)]
