"""Each trial as a W&B run: its config and every iteration's metrics.

Offline unless W&B can really be reached: with no WANDB_API_KEY, or WANDB_MODE set to
offline/disabled, runs are written under the study's folder (``wandb sync`` uploads them
later). The API key is read by wandb itself from the environment; it is never passed to
or written by this project.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from .checks import optional_str

# HPOConfig.wandb_logging: where ``log_to_wandb`` sends the trials of a study on any backend
# (the W&B backend's own sweep runs go to its wandb_config project)
LOGGING_SETTINGS = {
    "project": ("stateset-hpo", optional_str),
    "entity": (None, optional_str),
}


def wandb_mode() -> str:
    """"online" when a key is set and WANDB_MODE allows it, else "offline" (or "disabled")."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("disabled", "offline"):
        return mode
    if mode == "dryrun":
        return "offline"
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


class TrialRun:
    """A W&B run for one trial: ``log`` each iteration, ``finish`` with the outcome."""

    def __init__(self, where: Mapping[str, Any], group: str, name: str, params: Dict[str, Any],
                 folder: Path, run=None) -> None:
        import wandb

        folder.mkdir(parents=True, exist_ok=True)
        # `run` is given when a W&B sweep agent has already started it (the online sweep path).
        # `where` holds the W&B project and entity (wandb_logging, or the W&B backend's section).
        self.run = run or wandb.init(project=where["project"], entity=where["entity"], group=group,
                                     name=name, config=dict(params), dir=str(folder), mode=wandb_mode(),
                                     reinit="create_new", settings=wandb.Settings(silent=True))

    def log(self, metrics: Dict[str, float]) -> None:
        self.run.log(dict(metrics), step=int(metrics["iteration"]))

    def finish(self, status: str, error: Optional[str] = None) -> None:
        self.run.summary["trial_status"] = status
        if error:
            self.run.summary["error"] = error.splitlines()[0][:500]
        self.run.finish(exit_code=1 if status == "failed" else 0)


class TrialRunsToWandb:
    """A study callback that logs every trial as a W&B run from the driver (the Ray backend).

    Why not Ray's WandbLoggerCallback: it hands WANDB_API_KEY to its logging actors through a
    Ray runtime environment, which Ray's runtime-env agent writes to a world-readable log. Here
    the key never leaves the driver's process, and trials are logged as on the other backends."""

    def __init__(self, where: Mapping[str, Any], group: str, folder: Path) -> None:
        self.where, self.group, self.folder = where, group, folder
        self.runs: Dict[str, TrialRun] = {}

    def on_trial_start(self, trial_id: str, params: Dict[str, Any]) -> None:
        if trial_id not in self.runs:  # (a retried or resumed trial goes on in its run)
            self.runs[trial_id] = TrialRun(self.where, self.group, f"trial-{trial_id}", params,
                                           self.folder / trial_id)

    def on_trial_result(self, trial_id: str, metrics: Dict[str, float]) -> None:
        if trial_id in self.runs:
            self.runs[trial_id].log(metrics)

    def on_trial_end(self, result) -> None:
        run = self.runs.pop(result.trial_id, None)
        if run is not None:
            run.finish(result.status.value, result.error)

    def close(self) -> None:
        """Runs of trials the study left unfinished (interrupted) end as such."""
        for run in self.runs.values():
            run.finish("interrupted")
        self.runs.clear()
