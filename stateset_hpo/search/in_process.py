"""What the in-process backends (Optuna, W&B) do around `run_trial`, in one place.

`TrialRecorder` is the trial's ``report`` function: it keeps the metric history, logs each
iteration to the trial's W&B run (if any), fires on_trial_result, saves the trial's final
checkpoint under ``output_dir/checkpoints/<trial>``, and stops the trial early when the
backend's rule (a pruner, W&B's hyperband) or the study's deadline says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..config import HPOConfig
from ..wandb_runs import TrialRun

# early_stop(metrics, iteration) -> why the trial stops here, or None to go on
EarlyStop = Callable[[Dict[str, float], int], Optional[str]]


def study_deadline(config: HPOConfig) -> Optional[float]:
    """time.monotonic() at which the study's timeout runs out (None: no timeout)."""
    return time.monotonic() + config.timeout if config.timeout else None


@dataclass
class TrialRecorder:
    config: HPOConfig
    trial_id: str
    planned: int  # iterations the trial trains unless stopped
    notify: Callable[..., None]  # fires a study callback hook
    early_stop: EarlyStop
    deadline: Optional[float] = None
    run: Optional[TrialRun] = None
    history: List[Dict[str, float]] = field(default_factory=list)
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
            if trainer is not None:  # (a custom objective has no trainer and no checkpoint)
                folder = Path(self.config.output_dir).resolve() / "checkpoints" / self.trial_id
                self.checkpoint_path = str(trainer.save_checkpoint(folder))
            return False
        self.stop_reason = self.early_stop(metrics, step)
        if self.stop_reason is None and self.deadline is not None and time.monotonic() > self.deadline:
            self.stop_reason = f"stopped at the study's timeout, iteration {step}"
        return self.stop_reason is not None
