"""The Ray Tune backend: search algorithm + scheduler + our trainable -> one HPOResult per trial.

Everything the study learns is assembled on the driver from Tune's own records (the
ResultGrid and the callback stream); nothing is appended inside trial workers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import warnings
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import ray
from ray import tune
from ray.tune.search import Searcher

from ...callbacks import fire
from ...config import HPOConfig
from ...interrupts import restore_sigterm, sigterm_as_ctrl_c
from ...library_logs import logger_level
from ...lifecycle import TrialOutcome, annotations_of
from ...results import HPOResult, StudyInterrupted
from ...shared_storage import write_text
from .resume import SETTINGS_FILE, check_resumable, study_settings
from .storage import checkpoint_location, multi_node_warning, storage_location
from ...space import SearchSpace
from ...study_monitor import StudyControl
from ...trial import TrialSpec, iteration_episodes, max_episodes, planned_iterations
from ...wandb_runs import TrialRunsToWandb
from ..random_start import random_start
from . import EXECUTIONS
from .budget import UntilBudgetSpent
from .connect import check_state_api, connect, environment, propagated_keys_warning
from .live import callbacks_of, control_of, forget, register
from .packed import TRIAL_PROCESS, packed_trial, start_hosts, stop_hosts
from .schedulers import SCHEDULERS, build_scheduler, checkpoint_interval, checkpoints_kept
from .searchers import build_search, searcher_limit
from .trainable import direct_trial, train_trial

STATE_SYNC_S = 60  # how often the driver uploads the experiment's state to cloud storage
DRIVER_CPU = 0.1  # the Tune trial process that drives a TorchTrainer needs almost nothing
# Keys Tune adds to every result; the rest are the engine's metrics.
_TUNE_KEYS = {"timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date",
              "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
              "iterations_since_restore", "experiment_tag", "should_checkpoint", "checkpoint_path"}


def engine_metrics(row: Dict[str, Any]) -> Dict[str, float]:
    return {k: v for k, v in row.items() if k not in _TUNE_KEYS and not k.startswith("config/")
            and isinstance(v, (int, float)) and not isinstance(v, bool)}


def grpo_trainable(spec: Optional[TrialSpec] = None, execution: str = "train", workers_per_trial: int = 1,
                   cpu_per_trial: float = 1.0, gpu_per_trial: float = 0.0, checkpoint_every: Optional[int] = None,
                   max_failures: int = 0, storage_path: Optional[str] = None):
    """A Tune trainable that runs one GRPO trial per sampled config, with its resources
    attached. Usable directly: ``tune.Tuner(grpo_trainable(...), param_space=to_tune(space), ...)``."""
    if execution not in EXECUTIONS:
        raise ValueError(f"unknown execution {execution!r}; valid: {', '.join(EXECUTIONS)}")
    if execution == "direct" and workers_per_trial != 1:
        raise ValueError("execution='direct' runs one worker per trial; use execution='train' for workers_per_trial > 1")
    spec = data_parallel(spec or TrialSpec(), workers_per_trial, execution)
    if execution == "direct":
        def trainable(params, spec):
            direct_trial(params, spec, cpu_per_trial, checkpoint_every)
        resources = {"cpu": cpu_per_trial, "gpu": gpu_per_trial}
    else:
        def trainable(params, spec):
            train_trial(params, spec, workers_per_trial, cpu_per_trial, gpu_per_trial, checkpoint_every, max_failures,
                        storage_path)
        resources = {"cpu": DRIVER_CPU}
    return tune.with_resources(tune.with_parameters(trainable, spec=spec), resources)


def packed_trainable(hosts, checkpoint_every: Optional[int]):
    """A Tune trainable whose trials train on trial hosts (``trials_per_worker`` > 1, see packed.py)."""
    def trainable(params):
        packed_trial(params, hosts, checkpoint_every)

    return tune.with_resources(trainable, TRIAL_PROCESS)


class StopWhenRequested(tune.Stopper):
    """Ends the whole Tune run once a study callback asks to stop (early_stopping_patience)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return control_of(self.key).should_stop()


def annotations(last_result: Optional[Dict[str, Any]], stoppers: str) -> Dict[str, Any]:
    """What the trial's last result carries besides metrics (`lifecycle.annotations_of`), and
    what stopped it (kept only for a pruned trial): the health rule and reason it carries,
    else Tune, in the words of ``stoppers`` (e.g. "the asha scheduler or the study's timeout";
    Tune does not say which one it was)."""
    last = last_result or {}
    out = annotations_of(last)
    if "stop_reason" not in out:
        out.update(stopped_by="scheduler", stop_reason=f"stopped by {stoppers} at iteration {last.get('iteration', '?')}")
    return out


class CallbackBridge(tune.Callback):
    """Forwards Tune's trial events to the study's callbacks, on the driver."""

    def __init__(self, key: str, spec: TrialSpec, metric: str, stoppers: str, resources: Tuple[float, float]) -> None:
        self.key, self.spec, self.metric, self.stoppers, self.resources = key, spec, metric, stoppers, resources
        self.histories: Dict[str, List[Dict[str, float]]] = {}

    @property
    def callbacks(self) -> List[Any]:
        return callbacks_of(self.key)

    def on_trial_start(self, iteration, trials, trial, **info):
        fire(self.callbacks, "on_trial_start", trial.trial_id, dict(trial.config))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        metrics = engine_metrics(result)
        self.histories.setdefault(trial.trial_id, []).append(metrics)
        fire(self.callbacks, "on_trial_result", trial.trial_id, metrics)

    def on_trial_complete(self, iteration, trials, trial, **info):
        fire(self.callbacks, "on_trial_end", self._result(trial, None))

    def on_trial_error(self, iteration, trials, trial, **info):
        fire(self.callbacks, "on_trial_end", self._result(trial, _error_text(trial)))

    def _result(self, trial, error: Optional[str]) -> HPOResult:
        params = dict(trial.config)
        return TrialOutcome(trial.trial_id, params, self.histories.get(trial.trial_id, []),
                            planned_iterations(self.spec, params), error=error,
                            checkpoint_path=checkpoint_location(trial.checkpoint),
                            training_time=float((trial.last_result or {}).get("time_total_s", 0.0)),
                            resources=self.resources,
                            **annotations(trial.last_result, self.stoppers)).result(self.metric)


def _error_text(trial) -> str:
    """The trial's latest error as Tune wrote it. Read from the trial's local folder: when Tune
    calls on_trial_error, the copy that ``trial.get_error()`` reads is not synced yet (it
    returned None, so every failed trial's callbacks said "None")."""
    try:
        text = Path(trial.error_file).read_text()
    except (OSError, TypeError):  # no local file (the status is what matters)
        return "trial failed"
    latest = text.rsplit("Failure # ", 1)[-1].partition("\n")[2].strip()
    return latest or "trial failed"


def resolve_resources(config: HPOConfig, execution: str, total: Dict[str, float]) -> Tuple[float, float]:
    """(cpu_per_trial, gpu_per_trial), with "auto" resolved against the cluster's resources
    ``total`` (ray.cluster_resources()), and a clear error when one trial could never be
    placed (instead of a trial pending forever).

    On an autoscaling cluster (``ray_config["autoscaling"]``) the nodes that trials need may
    not exist yet: the autoscaler starts them for pending trials, so missing resources are no
    error there (HPOConfig makes cpu_per_trial and gpu_per_trial explicit there)."""
    cpu_total, gpu_total = total.get("CPU", 0.0), total.get("GPU", 0.0)
    if config.ray_config["autoscaling"]:
        return config.cpu_per_trial, config.gpu_per_trial
    gpu = config.gpu_per_trial if config.gpu_per_trial is not None else (1.0 if gpu_total >= 1 else 0.0)
    workers = config.ray_config["workers_per_trial"]
    driver = DRIVER_CPU if execution == "train" else 0.0
    cpu = config.cpu_per_trial if config.cpu_per_trial is not None else \
        max(1.0, min(4.0, float(int((cpu_total - driver) / workers))))
    need_cpu, need_gpu = workers * cpu + driver, workers * gpu
    if need_cpu > cpu_total or need_gpu > gpu_total:
        raise ValueError(f"one trial needs {need_cpu:g} CPUs and {need_gpu:g} GPUs ({workers} worker(s) x "
                         f"{cpu:g} CPU, {gpu:g} GPU) but the Ray cluster has {cpu_total:g} CPUs and {gpu_total:g} "
                         "GPUs; lower cpu_per_trial / gpu_per_trial / workers_per_trial or add nodes")
    return cpu, gpu


def trial_resources(rc: Dict[str, Any], cpu: float, gpu: float, execution: str) -> Tuple[float, float]:
    """(CPUs, GPUs) Ray holds for one trial, for its cost: every worker's, plus the Train
    driver's CPU; a packed trial holds its share of its host's."""
    workers, share = rc["workers_per_trial"], rc["trials_per_worker"]
    driver = DRIVER_CPU if execution == "train" else 0.0
    return workers * cpu / share + driver, workers * gpu / share


def check_measured_every_iteration(config: HPOConfig, spec: TrialSpec, space: SearchSpace) -> None:
    """HyperBand ranks the trials at a rung by their latest result, which must hold the objective;
    an evaluation metric is measured only every ``eval_every`` iterations."""
    every = space["eval_every"] if "eval_every" in space else None
    most = max(spec.base_config.eval_every, (every.high if every.is_range else max(every.choices)) if every else 1)
    if most > 1 and any(m.startswith("eval_") or m in spec.derived_metrics for m, _ in config.objectives):
        raise ValueError(f"scheduler 'hyperband' needs the objective at every iteration, but trials evaluate every "
                         f"{most} iterations (eval_every); set eval_every=1 or use asha, median or pbt")


@dataclass
class TunePlan:
    """What one Tune experiment runs: the study's search (`search_plan`), or exactly some
    points, each trained to its end (`points_plan`: the validation and racing re-runs)."""

    name: str  # the experiment's name under the study's storage
    spec: TrialSpec
    scheduler: Any
    search_alg: Any
    param_space: Dict[str, Any]
    num_samples: int
    expected: int  # trials the experiment has when it is complete
    limit: Optional[int] = None  # concurrent trials
    checkpoint_every: Optional[int] = None
    time_budget: Optional[float] = None
    callbacks: Sequence[Any] = ()
    control: StudyControl = field(default_factory=StudyControl)  # the study's stop requests (none: re-runs)
    settings: Optional[Dict[str, Any]] = None  # saved beside the experiment, checked on a resume
    log_to_wandb: bool = False
    stoppers: str = "the scheduler"  # what may stop a trial, in words
    checkpoints_kept: int = 2  # a trial's latest checkpoints Tune keeps (schedulers.checkpoints_kept)


def study_storage(config: HPOConfig) -> str:
    """Where the study's Tune experiments live (``storage_path``, else under ``output_dir``)."""
    return storage_location(config.ray_config["storage_path"], str(config.output_dir))


def check_search(config: HPOConfig, spec: TrialSpec, space: SearchSpace) -> None:
    """What this search cannot do with these trials, refused before any cluster work (dry runs too)."""
    rc = config.ray_config
    if SCHEDULERS[rc["scheduler"]].exploits:
        space.check_unconditional(f"scheduler {rc['scheduler']!r} (it copies and perturbs every parameter of "
                                  "another trial)")
        if spec.objective is not None:
            raise ValueError(f"scheduler {rc['scheduler']!r} continues trials from other trials' checkpoints, and "
                             "a custom objective reports once, with no checkpoint; use asha, hyperband, median or fifo")
    if SCHEDULERS[rc["scheduler"]].clock is not None and spec.objective is None:
        check_measured_every_iteration(config, spec, space)
    if spec.trl is not None and rc["trials_per_worker"] > 1:
        raise ValueError("trials_per_worker packs trials on one loaded base model (our engine's warm trials); "
                         "each TRL trial loads its own: use trials_per_worker 1")


def data_parallel(spec: TrialSpec, workers: int, execution: str = "train") -> TrialSpec:
    """The spec as each of a trial's ``workers`` Train workers runs it. A TRL trial's clock
    counts the whole group's completions per optimizer step (TRL's global batch: every process
    generates its per-device batch), so its world size is part of its config: in the trainable
    (`grpo_trainable`, every trial and re-run), and on the driver, where `search_plan` sets the
    schedulers' clock. (Our engine counts its own.)"""
    if spec.trl is None or workers == 1 or execution != "train":
        return spec
    return dataclasses.replace(spec, base_config=dataclasses.replace(spec.base_config, world_size=workers))


def search_plan(config: HPOConfig, spec: TrialSpec, space: SearchSpace, experiment: str,
                callbacks: Sequence[Any], control: StudyControl) -> TunePlan:
    rc = config.ray_config
    spec = data_parallel(spec, rc["workers_per_trial"], rc["execution"])
    max_t = rc["max_t"] or max_episodes(spec, space)
    unit = iteration_episodes(spec, space)
    scheduler = build_scheduler(rc, space, max_t, unit)
    clock = SCHEDULERS[rc["scheduler"]].clock
    if clock is not None:
        spec = dataclasses.replace(spec, derived_metrics={**spec.derived_metrics, **clock(unit)})
    metric, mode = config.objective_metric, "max" if config.direction == "maximize" else "min"
    search_alg, param_space, num_samples = build_search(config, space, metric, mode,
                                                        random_start(config, spec, space))
    limit = searcher_limit(config)
    if config.budget:  # (the wrapped search algorithm holds the concurrency limit, if any)
        search_alg, limit = UntilBudgetSpent(search_alg, experiment), None
    expected = space.grid_size(config.grid_points) if rc["search_alg"] == "grid" else num_samples
    stoppers = " or ".join([f"the {rc['scheduler']} scheduler"] + (["the study's timeout"] if config.timeout else []) +
                           (["early_stopping_patience"] if config.early_stopping_patience else []))
    return TunePlan(config.resolved_study_name, spec, scheduler, search_alg, param_space, num_samples, expected,
                    limit, checkpoint_interval(rc), config.timeout, callbacks, control=control,
                    checkpoints_kept=checkpoints_kept(rc, unit),
                    settings=study_settings(config, space), log_to_wandb=config.log_to_wandb, stoppers=stoppers)


class FixedPoints(Searcher):
    """Proposes exactly these configurations, in order, then nothing (the re-runs of validation
    and racing). Tune's own generator would resolve each point against a param_space, sampling
    any key a point lacks, and a conditional space's points differ in their keys (an inactive
    dimension must stay absent)."""

    def __init__(self, points: List[Dict[str, Any]]) -> None:
        super().__init__()
        self.points = [dict(p) for p in points]

    def suggest(self, trial_id: str) -> Optional[Dict[str, Any]]:
        return self.points.pop(0) if self.points else Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
        pass


def points_plan(config: HPOConfig, spec: TrialSpec, points: List[Dict[str, Any]]) -> TunePlan:
    from ray.tune.schedulers import FIFOScheduler

    return TunePlan(config.resolved_study_name + "_validation", spec, FIFOScheduler(), FixedPoints(points), {},
                    len(points), len(points), limit=config.max_concurrent_trials)


def run_ray_tune(config: HPOConfig, spec: TrialSpec, space: SearchSpace, callbacks: Sequence[Any],
                 control: StudyControl, resume: bool = False) -> List[HPOResult]:
    """The study's trials (`check_search` passed before: study.check_study)."""
    experiment = os.path.join(study_storage(config), config.resolved_study_name)
    plan = search_plan(config, spec, space, experiment, callbacks, control)
    if resume:  # before any cluster work
        check_resumable(experiment, plan.settings)
    return run_plan(config, plan, resume)


def retrain_ray_tune(config: HPOConfig, spec: TrialSpec, points: List[Dict[str, Any]]) -> List[HPOResult]:
    """Exactly these configurations, each trained to its end (FIFO, no timeout, no callbacks), as
    a separate experiment ``<study>_validation`` with the study's resources."""
    return run_plan(config, points_plan(config, spec, points))


def run_plan(config: HPOConfig, plan: TunePlan, resume: bool = False) -> List[HPOResult]:
    """Run one Tune experiment on the cluster (connecting to it, or starting a local one)."""
    rc = config.ray_config
    execution = rc["execution"]
    storage = study_storage(config)
    experiment = os.path.join(storage, plan.name)
    started, wandb_runs, hosts = False, None, None
    address = rc["address"] or os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        connect(address, raylet_messages=config.library_logs)
        started = True
    sigterm = sigterm_as_ctrl_c()  # again: ray.init replaced it with Ray's own (see interrupts.py)
    try:
        if execution == "train":  # Train frees placement groups through the State API
            check_state_api()
        cpu, gpu = resolve_resources(config, execution, ray.cluster_resources())
        caution = multi_node_warning(storage, sum(1 for n in ray.nodes() if n["Alive"]), rc["autoscaling"])
        keys = propagated_keys_warning(agent_logs_info=bool(address) or not started)
        for text in (caution, keys):
            if text and plan.settings is not None:  # once per study, not again for its re-runs
                warnings.warn(text)
        spec = plan.spec
        if rc["trials_per_worker"] > 1:
            hosts = start_hosts(spec, config.max_concurrent_trials, rc["trials_per_worker"], cpu, gpu)
            trainable = packed_trainable(hosts, plan.checkpoint_every)
        else:
            trainable = grpo_trainable(spec, execution, rc["workers_per_trial"], cpu, gpu, plan.checkpoint_every,
                                       rc["max_failures"], experiment)
        if plan.log_to_wandb:
            wandb_runs = TrialRunsToWandb(config.wandb_logging, plan.name, Path(config.output_dir).resolve() / "trials")
        register(experiment, list(plan.callbacks) + ([wandb_runs] if wandb_runs else []), plan.control)
        metric, mode = config.objective_metric, "max" if config.direction == "maximize" else "min"
        resources = trial_resources(rc, cpu, gpu, execution)
        tune_callbacks = [CallbackBridge(experiment, spec, metric, plan.stoppers, resources)]
        if resume:
            if not tune.Tuner.can_restore(experiment):
                raise ValueError(f"nothing to resume at {experiment!r}")
            tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True,
                                       param_space=plan.param_space)
        else:
            if plan.settings is not None:
                write_text(f"{experiment}/{SETTINGS_FILE}", json.dumps(plan.settings, indent=1))
            # Under "train", Ray Train retries a trial's failed workers (max_failures times, from the
            # last checkpoint) but cannot help when the trial's driver is lost with its node (a
            # reclaimed spot node): Tune restarts a failed trial once for that. A trial that keeps
            # failing then runs at most 2 x (max_failures + 1) times, not (max_failures + 1)^2.
            retries = rc["max_failures"] if execution == "direct" else min(1, rc["max_failures"])
            tuner = tune.Tuner(
                trainable, param_space=plan.param_space,
                tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=plan.search_alg,
                                            scheduler=plan.scheduler, num_samples=plan.num_samples,
                                            max_concurrent_trials=plan.limit, time_budget_s=plan.time_budget,
                                            # a direct trial's process (Tune's trial actor) stays for the
                                            # next trial, with its loaded base model (grpo/model_pool.py)
                                            reuse_actors=execution == "direct"),
                run_config=tune.RunConfig(name=plan.name, storage_path=storage, callbacks=tune_callbacks,
                                          stop=StopWhenRequested(experiment),
                                          failure_config=tune.FailureConfig(max_failures=retries), verbose=0,
                                          # the experiment's state reaches the storage every minute
                                          # (Tune's default is 5), so a lost head loses at most that
                                          sync_config=tune.SyncConfig(sync_period=STATE_SYNC_S),
                                          # PBT donors' checkpoints must outlive their exploits
                                          checkpoint_config=tune.CheckpointConfig(num_to_keep=plan.checkpoints_kept)))
        start = time.monotonic()
        # Tune's newer console output prints its experiment banner even at verbose=0; the legacy
        # reporter is silent there. OptunaSearch's in-memory study would announce itself at INFO.
        # Tune would also refuse any result without the objective metric; the engine reports an
        # evaluation every eval_every iterations (the metric names were checked before any trial).
        # A failed trial is Tune's ERROR with its traceback in raw colour codes; the progress
        # view and the summary already say it failed and why: Tune's own lines only on request.
        with environment({"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1"}), \
                logger_level("optuna", logging.WARNING), \
                logger_level("ray.tune", None if config.library_logs else logging.CRITICAL):
            grid = tuner.fit()
        # Ctrl+C makes Tune save its state and return early: trials unfinished or never started
        # (a study that ran into its timeout is complete as far as it goes).
        unfinished = len(grid) - grid.num_terminated - grid.num_errors
        timed_out = plan.time_budget is not None and time.monotonic() - start >= plan.time_budget
        ended_early = plan.control.ended_early()
        if not timed_out and not ended_early and (unfinished or len(grid) < plan.expected):
            raise StudyInterrupted(f"the study was interrupted after {len(grid) - unfinished} of {plan.expected} "
                                   f"trials; its state is saved in {experiment!r}: run it again with --resume "
                                   "(run_study(..., resume=True)) to continue")
        # Trials that never reported nor failed never ran (e.g. queued when patience ended the study)
        return [result for _, result in sorted(_from_result(r, spec, metric, plan.stoppers, resources) for r in grid)
                if result.history or result.error]
    finally:
        stop_hosts(hosts)
        forget(experiment)
        if wandb_runs:
            wandb_runs.close()
        restore_sigterm(sigterm)
        if started:
            ray.shutdown()


def _from_result(result, spec: TrialSpec, metric: str, stoppers: str,
                 resources: Tuple[float, float]) -> Tuple[int, HPOResult]:
    """(creation index, HPOResult) of one Tune result; the index keeps the study's order."""
    params = dict(result.config or {})
    frame = result.metrics_dataframe
    rows = frame.to_dict("records") if frame is not None else []
    # Tune's table fills a metric an iteration did not report (an evaluation every eval_every
    # iterations) with NaN (v != v); the last row, where the engine always evaluates, is kept as reported
    history = [engine_metrics({k: v for k, v in row.items() if v == v}) for row in rows[:-1]] + \
        [engine_metrics(row) for row in rows[-1:]]
    metrics = result.metrics or {}
    # Tune names a trial's folder <trainable>_<trial id>_<creation index>_<params>
    parts = Path(result.path).name.split("_")
    index = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
    trial_id = str(metrics.get("trial_id") or parts[1])
    return index, TrialOutcome(trial_id, params, history, planned_iterations(spec, params),
                               error=str(result.error) if result.error else None,
                               checkpoint_path=checkpoint_location(result.checkpoint),
                               training_time=float(metrics.get("time_total_s", 0.0)), resources=resources,
                               **annotations(metrics, stoppers)).result(metric)
