"""The W&B Sweeps backend: the study as a W&B sweep, with or without a W&B account.

The search space compiles to a sweep configuration, written as ``sweep.yaml`` (what
``wandb sweep sweep.yaml`` accepts). Offline, which is the default, trials are proposed in
this process by W&B's own open sweep engine (the ``sweeps`` package: grid, random, bayes,
and hyperband early termination), and each trial is logged as an offline W&B run under
the study folder. With WANDB_API_KEY set and W&B reachable, the same configuration is
registered as a real sweep and a W&B agent in this process runs the trials, so the runs
group in the W&B UI (W&B's server then proposes and early-terminates; that path needs an
account and is not exercised by the tests).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from ...callbacks import fire
from ...config import HPOConfig
from ...results import HPOResult, TrialStatus
from ...space import SearchSpace
from ...study_monitor import StudyControl
from ...trial import TrialSpec
from ...warm_start import first_points
from ...wandb_runs import wandb_mode
from ..trial_runner import run_one, study_deadline
from .space import to_wandb


def _sweeps():
    with warnings.catch_warnings():  # its pydantic v1-style config warns on import
        warnings.simplefilter("ignore")
        import sweeps
    return sweeps


def sweep_config(config: HPOConfig, space: SearchSpace) -> Dict[str, Any]:
    """The sweep configuration W&B and the `sweeps` engine accept; validated against
    W&B's own sweep schema (a ValueError names the violation)."""
    wc = config.wandb_config
    out: Dict[str, Any] = {
        "name": config.resolved_study_name,
        "method": wc["method"],
        "metric": {"name": config.objective_metric, "goal": config.direction},
        "parameters": to_wandb(space, wc["method"], config.grid_points),
    }
    if wc["early_terminate"]:
        out["early_terminate"] = dict(wc["early_terminate"])
    violations = _sweeps().schema_violations_from_proposed_config(out)
    if violations:
        raise ValueError(f"the W&B sweep configuration is invalid: {'; '.join(violations)}")
    return out


def write_sweep_yaml(sweep: Dict[str, Any], output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


class _SeededEngine:
    """The open sweep engine draws from Python's and numpy's global generators and takes no
    seed, so HPOConfig.seed is honoured by giving it streams of its own: each proposal runs with
    the study's streams in place of the global ones, which are put back after (nothing else in
    the process sees its draws, nor it theirs)."""

    def __init__(self, seed: Optional[int]) -> None:
        import random

        import numpy as np

        self.py = random.Random(seed).getstate() if seed is not None else None
        self.np = np.random.RandomState(seed).get_state() if seed is not None else None

    def next_run(self, sweeps, sweep: Dict[str, Any], runs: List[Any]):
        if self.py is None:  # unseeded: the global generators, as W&B's engine has them
            return sweeps.next_run(sweep, runs)
        import random

        import numpy as np

        saved = random.getstate(), np.random.get_state()
        random.setstate(self.py)
        np.random.set_state(self.np)
        try:
            return sweeps.next_run(sweep, runs)
        finally:
            self.py, self.np = random.getstate(), np.random.get_state()
            random.setstate(saved[0])
            np.random.set_state(saved[1])


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value  # numpy scalars from the engine


def run_wandb(config: HPOConfig, spec: TrialSpec, space: SearchSpace, callbacks: Sequence[Any], control: StudyControl,
              resume: bool = False) -> List[HPOResult]:
    if config.n_parallel_trials != 1:
        raise ValueError("the wandb backend runs one trial at a time in this process; set n_parallel_trials=1 "
                         "(online, start more `wandb agent` processes on the same sweep instead)")
    sweep = sweep_config(config, space)
    write_sweep_yaml(sweep, Path(config.output_dir))
    if wandb_mode() == "online":
        if config.seed is not None:
            raise ValueError("W&B's hosted sweep service takes no seed; leave seed unset for an online sweep, or run "
                             "it offline (WANDB_MODE=offline), where the seed drives the sweep engine")
        if config.budget:
            raise ValueError("a budget is not supported on an online W&B sweep yet (W&B's agent runs its count of "
                             "trials); run the sweep offline (WANDB_MODE=offline) or use backend 'optuna' or "
                             "'ray_tune'")
        return _run_online(config, spec, sweep, callbacks, control)
    return _run_offline(config, spec, space, sweep, callbacks, control)


def _run_offline(config: HPOConfig, spec: TrialSpec, space: SearchSpace, sweep: Dict[str, Any],
                 callbacks: Sequence[Any], control: StudyControl) -> List[HPOResult]:
    """W&B's open sweep engine proposes each trial from the finished ones and, with an
    early_terminate block, stops the running one by its hyperband rule."""
    sweeps = _sweeps()
    engine = _SeededEngine(config.seed)
    deadline = study_deadline(config)
    runs: List[Any] = []
    results: List[HPOResult] = []
    # the defaults first (the summary's baseline), then a warm start's earlier best (W&B's engine
    # takes no observations from elsewhere: they order the first trials only)
    first = first_points(config, space) if sweep["method"] != "grid" else []
    for number in range(config.n_trials):
        if (deadline is not None and time.monotonic() > deadline) or control.ended_early():
            break
        if number < len(first):
            proposal = sweeps.SweepRun(config={k: {"value": v} for k, v in first[number].items()})
        else:
            proposal = engine.next_run(sweeps, sweep, runs)
            if proposal is None:  # a finished grid
                break
        proposal.name, proposal.state = str(number), sweeps.RunState.running
        runs.append(proposal)

        def hyperband(metrics: Dict[str, float], step: int, proposal=proposal) -> Optional[str]:
            proposal.history.append(dict(metrics))
            if "early_terminate" in sweep and any(r is proposal for r in sweeps.stop_runs(sweep, runs)):
                return f"stopped by the sweep's hyperband rule at iteration {step}"
            return None

        params = {k: _plain(v["value"]) for k, v in proposal.config.items()}
        result = run_one(config, spec, str(number), params, _notify(callbacks), hyperband, deadline,
                         wandb=config.wandb_config)  # each trial a run of the sweep's project
        proposal.summary_metrics = dict(result.metrics)
        proposal.state = {TrialStatus.SUCCESS: sweeps.RunState.finished, TrialStatus.PRUNED: sweeps.RunState.killed,
                          TrialStatus.FAILED: sweeps.RunState.failed}[result.status]
        results.append(result)
    return results


def _notify(callbacks: Sequence[Any]):
    return lambda hook, *args: fire(callbacks, hook, *args)


def _run_online(config: HPOConfig, spec: TrialSpec, sweep: Dict[str, Any], callbacks: Sequence[Any],
                control: StudyControl) -> List[HPOResult]:
    """A real W&B sweep: W&B's server proposes (and early-terminates, by stopping the run);
    a W&B agent in this process runs up to ``n_trials`` trials of it, one agent call per trial,
    so that the study's patience, a callback's stop and the timeout end it between trials as
    offline (an agent asked for all of them at once would run its count whatever happens)."""
    import wandb

    wc = config.wandb_config
    sweep_id = wandb.sweep(sweep, project=wc["project"], entity=wc["entity"])
    deadline = study_deadline(config)
    results: List[HPOResult] = []

    def agent_trial() -> None:
        run = wandb.init(dir=str(Path(config.output_dir) / "trials"))
        params = {k: _plain(v) for k, v in dict(run.config).items()}
        results.append(run_one(config, spec, str(len(results)), params, _notify(callbacks), deadline=deadline,
                               wandb_run=run))

    for _ in range(config.n_trials):
        if (deadline is not None and time.monotonic() > deadline) or control.ended_early():
            break
        before = len(results)
        wandb.agent(sweep_id, function=agent_trial, project=wc["project"], entity=wc["entity"], count=1)
        if len(results) == before:  # the sweep gave no run (a finished grid, or the sweep was stopped)
            break
    return results
