"""The driver: validate, run the chosen backend, assemble the HPOSummary, write the results.

run_study is what the CLI and GRPOHPOTrainer call. Bad input fails here, before any cluster
work: the config was validated on construction, and the space's baseline is turned into a
TrainingConfig (every parameter must map to something) before a backend starts.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

from .callbacks import fire
from .config import HPOConfig
from .grpo import TrainingConfig
from .results import HPOSummary
from .study_monitor import StudyMonitor
from .validation import run_validation
from .trial import TrialSpec


def default_spec(config: HPOConfig) -> TrialSpec:
    """The task when none is given: a domain space (customer_service, technical_support,
    sales_assistant) trains on its domain's scenarios against its domain's reward, so every
    reward component is one its space weighs; any other space uses all three domains and all
    seven reward components, equally weighted."""
    from .grpo import DOMAINS, ConversationEnvironment, domain_reward

    domain = config.search_space_name if config.search_space is None else None
    if domain in DOMAINS:
        return TrialSpec(environment=ConversationEnvironment(domain), reward=domain_reward(domain))
    return TrialSpec()


def spec_from_config(config: HPOConfig, spec: Optional[TrialSpec] = None) -> TrialSpec:
    """The trial spec with HPOConfig.base_training_config applied (a TrainingConfig, or a dict
    of TrainingConfig/AgentConfig fields such as the CLI's model_name)."""
    spec = spec or default_spec(config)
    base = config.base_training_config
    if isinstance(base, TrainingConfig):
        return dataclasses.replace(spec, base_config=base)
    if base:
        return TrialSpec.from_overrides(base, agent_config=spec.agent_config, environment=spec.environment,
                                        reward=spec.reward, base_config=spec.base_config,
                                        derived_metrics=spec.derived_metrics, objective=spec.objective)
    return spec


def run_study(config: HPOConfig, spec: Optional[TrialSpec] = None, callbacks: Sequence[Any] = (),
              resume: bool = False) -> HPOSummary:
    space = config.resolve_search_space()
    spec = spec_from_config(config, spec)
    spec.check_space(space)
    first = space.baseline()  # the space's defaults: the search's first trial
    space_name = None if config.search_space is not None else config.search_space_name
    monitor = StudyMonitor(config, space_name, write_outputs)
    callbacks = [*callbacks, monitor]
    fire(callbacks, "on_hpo_start", space, config.n_trials)
    start = time.perf_counter()
    if config.backend == "ray_tune":
        from .search.ray_tune import run_ray_tune

        results = run_ray_tune(config, spec, space, callbacks, resume=resume)
    elif config.backend == "optuna":
        from .search.optuna_study import run_optuna

        results = run_optuna(config, spec, space, callbacks, resume=resume)
    else:
        from .search.wandb_sweep import run_wandb

        results = run_wandb(config, spec, space, callbacks, resume=resume)
    monitor.finish(results)
    first_id = next((r.trial_id for r in results if _same_point(r.params, first)), None)
    summary = HPOSummary(config.objective_metric, config.direction, results, time.perf_counter() - start,
                         search_space_name=space_name,
                         baseline_trial_id=first_id, objective_metrics=config.objective_metrics,
                         directions=config.directions)
    write_outputs(summary, Path(config.output_dir))  # the search's results are safe before validation
    summary.validation = run_validation(config, spec, space, summary)
    if summary.validation is not None:
        write_outputs(summary, Path(config.output_dir))
    if config.save_plots:
        from .plots import save_plots

        save_plots(summary, space, Path(config.output_dir))
    from .report import write_report

    write_report(summary, space, Path(config.output_dir), title=config.study_name or space_name)
    shared = shared_results_location(config)
    if shared is not None:
        from .shared_storage import publish_results

        try:
            publish_results(Path(config.output_dir), shared)
        except OSError as exc:  # the study itself succeeded and its results are in output_dir
            warnings.warn(f"could not copy the results to {shared} ({exc}); they are in {config.output_dir}")
    fire(callbacks, "on_hpo_end", summary)
    return summary


def shared_results_location(config: HPOConfig) -> Optional[str]:
    """Where a Ray study with a storage_path (the cluster's shared storage) also gets its
    results; None for studies whose results stay in output_dir only."""
    storage_path = config.ray_config["storage_path"] if config.backend == "ray_tune" else None
    if not storage_path:
        return None
    from .shared_storage import results_location, storage_location

    return results_location(storage_location(storage_path, str(config.output_dir)), config.resolved_study_name)


def _same_point(a: dict, b: dict) -> bool:
    if set(a) != set(b):
        return False
    return all(math.isclose(a[k], b[k], rel_tol=1e-9) if isinstance(b[k], float) else a[k] == b[k] for k in b)


def write_outputs(summary: HPOSummary, output_dir: Path) -> None:
    """summary.json (strict JSON) and trials.csv (one row per trial) in output_dir."""
    output_dir.mkdir(parents=True, exist_ok=True)
    summary.save(output_dir / "summary.json")
    names = sorted({k for r in summary.all_results for k in r.params})
    metrics = sorted({k for r in summary.all_results for k in r.metrics})
    with open(output_dir / "trials.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial_id", "status", summary.objective_metric + " (objective)", "iterations",
                         "training_time", "error", "checkpoint_path"] + names + metrics)
        for r in summary.all_results:
            writer.writerow([r.trial_id, r.status.value, r.best_metric, len(r.history), r.training_time,
                             (r.error or "").splitlines()[0] if r.error else "", r.checkpoint_path or ""]
                            + [r.params.get(n, "") for n in names] + [r.metrics.get(m, "") for m in metrics])
