"""The driver: validate, run the chosen backend, assemble the HPOSummary, write the results.

run_study is what the CLI and GRPOHPOTrainer call. Bad input fails here, before any cluster
work: the config was validated on construction, and the space's baseline is turned into a
TrainingConfig (every parameter must map to something) before a backend starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, List, Optional, Sequence

from .callbacks import fire
from .config import HPOConfig
from .dashboard import DashboardMirror, dashboard_storage, needs_mirror
from .grpo import TrainingConfig
from .grpo.judge import JudgeReward
from .health import HealthRules
from .progress import StudyProgress
from .racing import race
from .results import HPOSummary
from .search.base import get_backend
from .search.random_start import describe as describe_random_start
from .study_monitor import StudyControl, StudyMonitor
from .validation import run_validation
from .warm_start import of_study
from .trial import TrialSpec


def default_spec(config: HPOConfig) -> TrialSpec:
    """The task when none is given: a domain space (customer_service, technical_support,
    sales_assistant) trains on its domain's scenarios against its domain's reward, so every
    reward component is one its space weighs; any other space uses all three domains and all
    seven reward components, equally weighted."""
    from .grpo import DOMAINS, ConversationEnvironment, domain_reward

    domain = config.search_space_name if config.search_space is None else None
    spec = TrialSpec(environment=ConversationEnvironment(domain), reward=domain_reward(domain)) \
        if domain in DOMAINS else TrialSpec()
    return trl_spec(spec) if config.engine == "trl" else spec


def trl_spec(spec: TrialSpec) -> TrialSpec:
    """The spec's task (its scenarios and reward) trained with TRL (`TRLTask.from_environment`)."""
    from .trl_engine import TRLTask

    return TrialSpec.for_trl(TRLTask.from_environment(spec.environment, spec.reward), environment=spec.environment,
                             reward=spec.reward, agent_config=spec.agent_config)


def spec_from_config(config: HPOConfig, spec: Optional[TrialSpec] = None) -> TrialSpec:
    """The trial spec with HPOConfig.base_training_config applied (a TrainingConfig, or a dict
    of TrainingConfig/AgentConfig fields such as the CLI's model_name) and the study's health rules."""
    spec = dataclasses.replace(spec or default_spec(config), health=HealthRules.from_settings(config.health_rules))
    if config.engine == "trl" and spec.trl is None:  # (a spec with a TRLTask trains with TRL whatever the engine says)
        spec = trl_spec(spec)
    base = config.base_training_config
    if isinstance(base, TrainingConfig):
        return dataclasses.replace(spec, base_config=base)
    return spec.with_overrides(base) if base else spec


def check_output_dir(output_dir, create: bool = True) -> None:
    """The results folder must be writable before any trial runs (a study that trains for
    hours and then cannot write its summary loses everything): create it and write a probe.
    ``create=False`` (a dry run) leaves the disk alone and asks the nearest existing folder."""
    folder = Path(output_dir).expanduser()
    dangling = next((p for p in [folder, *folder.absolute().parents] if p.is_symlink() and not p.exists()), None)
    if dangling is not None:  # (mkdir would fail on it; a dry run's walk up the path would pass it by)
        raise ValueError(f"output_dir {str(output_dir)!r} goes through the symbolic link {str(dangling)!r}, whose "
                         f"target {os.readlink(dangling)!r} does not exist")
    if not create:
        existing = next(p for p in [folder, *folder.absolute().parents] if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"output_dir {str(output_dir)!r} is not a writable folder ({str(existing)!r} is not "
                             "a folder this process can write to)")
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"output_dir {str(output_dir)!r} is not a writable folder: {exc.strerror or exc}") from None


def check_study(config: HPOConfig, spec: TrialSpec, space, dry_run: bool = False, resume: bool = False) -> TrialSpec:
    """Every check that must pass before any trial or cluster work: the space can be trained
    (every choice and range end), the objectives are metrics the trials report, the results
    folder is writable, a resume has something to continue. ``dry_run`` builds nothing (the
    tiny model, the results folder)."""
    why = get_backend(config.backend).cannot_resume(config) if resume else None
    if why:
        raise ValueError(why)
    spec.check_space(space, model=not dry_run)
    get_backend(config.backend).check_spec(config, spec, space)
    if space.conditional:  # compiled as the study will: a search that cannot skip a dimension refuses here
        get_backend(config.backend).compiled(config, space)
    of_study(config, space)  # an earlier study that cannot be read, or fits nothing of this space, fails here
    spec.check_objectives([metric for metric, _ in config.objectives], space)
    spec.check_objectives(list(config.constraints or {}), space, what="constrained metric")
    check_output_dir(config.output_dir, create=not dry_run)
    if not dry_run and needs_mirror(config):  # a storage that cannot be opened fails here, not mid-study
        from .search.optuna.storage import open_storage

        try:
            open_storage(dashboard_storage(config))
        except ValueError as exc:
            raise ValueError(f"HPOConfig.dashboard_storage (--dashboard-storage): {exc}") from None
    return spec


def describe_study(config: HPOConfig, space, spec: TrialSpec) -> List[str]:
    """The settings a study runs with, one line each: the CLI prints them at the start and
    report.html shows them, so a report can be read on its own."""
    from .constraints import describe as describe_constraints

    name = "custom" if config.search_space is not None else config.search_space_name
    lines = [f"study: backend={config.backend} space={name} ({len(space)} dimensions) n_trials={config.n_trials} "
             f"output_dir={config.output_dir}" + (f" timeout={config.timeout:g}s" if config.timeout else ""),
             get_backend(config.backend).describe(config),
             "objective: " + ", ".join(f"{m} ({d})" for m, d in config.objectives)
             + (f"; validation: top {config.validation_top_k} and the baseline retrained with "
                f"{config.validation_seeds} seeds"
                + (f" (sequentially up to {config.validation_max_seeds}"
                   + (f", or until a gain of {config.min_effect:g} is ruled out" if config.min_effect else "") + ")"
                   if config.validation_max_seeds and config.validation_max_seeds > config.validation_seeds else "")
                + ", scored on the test scenarios" if config.validation_top_k
                else "; no validation")
             + (f"; racing: the top {config.race_top_k} trained again with {config.race_seeds} fresh seed(s) each "
                "before the recommendation is named" if config.race_seeds else "")]
    start = describe_random_start(config, spec, space)
    if start is not None:
        lines.insert(2, start)
    if spec.trl is not None:
        import trl

        weights = spec.base_config.arg("reward_weights") or [1.0] * len(spec.trl.reward_funcs)
        lines.append(f"engine: TRL {trl.__version__} GRPOTrainer on {spec.trl.name} ({len(spec.trl.train)} train / "
                     f"{len(spec.trl.selection)} selection / {len(spec.trl.test)} test prompts); reward functions: "
                     + ", ".join(f"{n} {w:g}" for n, w in zip(spec.trl.reward_names, weights))
                     + f"; held-out score: greedy replies of up to {spec.base_config.eval_max_new_tokens} tokens")
    elif spec.objective is None:
        lines.append("reward (its declared weights score every evaluation; a space's *_weight parameters "
                     "reweigh training only): " + ", ".join(
            f"{r.name} {w:g}" + (f" ({r.model})" if isinstance(r, JudgeReward) else "")
            for r, w in spec.reward.components))
    if spec.objective is None and spec.health is not None:
        lines.append(spec.health.describe())
    warm = of_study(config, space)
    if warm is not None:
        lines.append(warm.describe())
    if config.budget:
        lines.append("budget: " + ", ".join(f"{k} {v:g}" for k, v in config.budget.items())
                     + " (no new trial once the next would exceed it)")
    if config.constraints:
        lines.append(f"constraints: {describe_constraints(config.constraints)} (a trial that breaks one is never "
                     "the best)")
    if config.base_training_config:
        lines.append(f"training overrides: {config.base_training_config}")
    return lines


def run_study(config: HPOConfig, spec: Optional[TrialSpec] = None, callbacks: Sequence[Any] = (),
              resume: bool = False) -> HPOSummary:
    space = config.resolve_search_space()
    spec = check_study(config, spec_from_config(config, spec), space, resume=resume)
    first = space.baseline()  # the space's defaults: the search's first trial
    space_name = None if config.search_space is not None else config.search_space_name
    backend = get_backend(config.backend)
    monitor = StudyMonitor(config, space_name, defer_retention=backend.defers_retention(config))
    callbacks = [*callbacks, monitor]
    progress = StudyProgress(config) if config.verbose else None
    if progress is not None:
        callbacks.append(progress)
    if needs_mirror(config):
        callbacks.append(DashboardMirror(config, config.resolved_study_name, resume=resume))
    fire(callbacks, "on_hpo_start", space, config.n_trials)
    start = time.perf_counter()
    with library_output(config.library_logs):
        try:
            results = backend.run(config, spec, space, callbacks, StudyControl(callbacks), resume=resume)
        finally:
            if progress is not None:  # the live view is the search's: validation prints its own line
                progress.close()
        monitor.finish(results)
        first_id = next((r.trial_id for r in results if _same_point(r.params, first)), None)
        summary = HPOSummary(config.objective_metric, config.direction, results, time.perf_counter() - start,
                             search_space_name=space_name,
                             baseline_trial_id=first_id, objective_metrics=config.objective_metrics,
                             directions=config.directions, constraints=config.constraints, ended_by=monitor.ended_by,
                             warm_start=warm.record() if (warm := of_study(config, space)) else None)
        summary.write(config.output_dir)  # the search's results are safe before validation
        summary.racing = race(config, spec, space, summary)  # (may change which trial is recommended)
        summary.validation = run_validation(config, spec, space, summary)
    if summary.validation is not None or summary.racing is not None:
        summary.write(config.output_dir)
    if config.save_plots:
        from .plots import save_plots

        save_plots(summary, space, Path(config.output_dir))
    from .report import write_report

    write_report(summary, space, Path(config.output_dir), title=config.study_name or space_name,
                 settings=describe_study(config, space, spec))
    shared = backend.shared_results(config)
    if shared is not None:
        from .shared_storage import publish_results

        try:
            publish_results(Path(config.output_dir), shared)
        except OSError as exc:  # the study itself succeeded and its results are in output_dir
            warnings.warn(f"could not copy the results to {shared} ({exc}); they are in {config.output_dir}")
    fire(callbacks, "on_hpo_end", summary)
    return summary


@contextlib.contextmanager
def library_output(show: bool):
    """transformers' "Loading weights" bar per trial (in-process trials load the model on
    every trial) repeats nothing the progress view does not say: off during the search and
    the validation runs unless ``show``. (Optuna's per-trial log lines and Ray's raylet
    messages are each backend's.)"""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if not show:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _same_point(a: dict, b: dict) -> bool:
    if set(a) != set(b):
        return False
    return all(math.isclose(a[k], b[k], rel_tol=1e-9) if isinstance(b[k], float) else a[k] == b[k] for k in b)
