"""The Ray Tune backend: each trial a Tune trial (in a Ray Train worker group or the trial
process), Tune's searchers and schedulers. `backend.py` runs it."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Optional

from ...checks import boolean, integer, one_of, optional_str, path_or_uri
from ...masking import masked
from ..base import Backend, Flag, Settings, check_grid_fits
from ..optuna import SAMPLER_FLAG, STARTUP_FLAG
from .connect import check_reachable
from .schedulers import SCHEDULERS
from .searchers import SEARCHERS, searcher_limit

EXECUTIONS = ("train", "direct")
# URI schemes pyarrow's filesystems (which Ray Tune's storage uses) understand.
STORAGE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs", "file")


def _storage_path(value: Any) -> Optional[str]:
    """A local path, or a URI with a scheme Ray Tune can write to (s3://, gs://, ...)."""
    value = path_or_uri(value)
    if value is not None and "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme not in STORAGE_SCHEMES:
            raise ValueError(f"URI scheme {scheme!r} is not one Ray Tune can write to; use one of "
                             f"{', '.join(s + '://' for s in STORAGE_SCHEMES)} or a local path, got {masked(value)!r}")
    return value


SETTINGS: Settings = {
    "scheduler": ("asha", one_of(tuple(SCHEDULERS))),
    "search_alg": ("optuna", one_of(tuple(SEARCHERS))),
    "max_concurrent": (None, integer(1, optional=True)),
    # in episodes (see schedulers.py); None: derived from one iteration of the first trial
    "grace_period": (None, integer(1, optional=True)),
    "reduction_factor": (3, integer(2)),
    "max_t": (None, integer(1, optional=True)),
    "perturbation_interval": (None, integer(1, optional=True)),
    "workers_per_trial": (1, integer(1)),
    "execution": ("train", one_of(EXECUTIONS)),
    # direct trials packed into one worker process each (on one loaded base model): see packed.py
    "trials_per_worker": (1, integer(1)),
    "storage_path": (None, _storage_path),
    "max_failures": (0, integer(0)),
    "address": (None, optional_str),
    # The cluster adds nodes on demand (cluster launcher / KubeRay autoscaling): resources that
    # are not running yet are no error (trials wait for the autoscaler).
    "autoscaling": (False, boolean),
}

def _sampler_unused(config) -> Optional[str]:
    alg = config.ray_config["search_alg"]
    return None if alg == "optuna" else (f"picks the sampler of ray_tune's optuna search; this study's search_alg is "
                                         f"{alg!r}: add --search-alg optuna, or leave --sampler out")


FLAGS = (
    Flag("scheduler", "scheduler", "ray_tune trial scheduler", choices=tuple(SCHEDULERS)),
    Flag("search_alg", "search_alg", "ray_tune search algorithm", choices=tuple(SEARCHERS)),
    dataclasses.replace(SAMPLER_FLAG, unused=_sampler_unused),
    STARTUP_FLAG,
    Flag("workers_per_trial", "workers_per_trial", "ray_tune: data-parallel workers per trial", type=int),
    Flag("execution", "execution", "ray_tune: run each trial in a Ray Train worker group (train, default) or in the "
                                   "Tune trial process (direct: faster start, one worker)", choices=EXECUTIONS),
    Flag("trials_per_worker", "trials_per_worker", "ray_tune, execution direct: train up to this many trials at "
                                                   "once in one worker process with one loaded base model "
                                                   "(each worker gets --cpu-per-trial / --gpu-per-trial)", type=int),
    Flag("storage_path", "storage_path", "ray_tune: where trials, checkpoints and a copy of the results go; on a "
                                         "multi-node cluster a location every node sees (s3://bucket/path, "
                                         "gs://bucket/path, NFS)"),
    Flag("autoscaling", "autoscaling", "ray_tune: the cluster starts nodes on demand, so resources not running yet "
                                       "are no error (needs --gpu-per-trial and --cpu-per-trial)", switch=True),
    Flag("max_failures", "max_failures", "ray_tune: retry a failed trial (e.g. a preempted spot node) from its last "
                                         "checkpoint up to this many times", type=int),
)


def _check(config, given: Mapping[str, Any]) -> None:
    """Settings given twice must agree, rather than one silently winning; what a Ray study
    cannot do fails here, before any cluster work."""
    rc = config.ray_config
    if rc["max_concurrent"] is not None and rc["max_concurrent"] != config.n_parallel_trials \
            and config.n_parallel_trials != 1:
        raise ValueError(f"n_parallel_trials={config.n_parallel_trials} and ray_config['max_concurrent']="
                         f"{rc['max_concurrent']} differ; set one of them")
    if rc["autoscaling"] and (config.gpu_per_trial is None or config.cpu_per_trial is None):
        # "auto" reads the resources running now; the nodes that would provide them may not exist yet
        raise ValueError("ray_config['autoscaling'] needs gpu_per_trial and cpu_per_trial set explicitly "
                         "(e.g. --gpu-per-trial 1 --cpu-per-trial 4): the nodes that provide them may not be "
                         "running yet")
    if config.backend == "ray_tune" and SCHEDULERS[rc["scheduler"]].exploits and rc["search_alg"] != "random":
        raise ValueError(f"scheduler {rc['scheduler']!r} explores by itself: use search_alg 'random' with it")
    # a scheduler that works with one searcher alone (BOHB's HyperBand), and that searcher, go together
    paired = {sched.searcher for sched in SCHEDULERS.values() if sched.searcher}
    wanted = rc["search_alg"] if rc["search_alg"] in paired else None
    if config.backend == "ray_tune" and SCHEDULERS[rc["scheduler"]].searcher != wanted:
        name = wanted or SCHEDULERS[rc["scheduler"]].searcher
        raise ValueError(f"search_alg {name!r} and scheduler {name!r} work together only (BOHB's HyperBand tells its "
                         f"searcher each rung's budget): give --search-alg {name} --scheduler {name}")
    if config.backend == "ray_tune":
        SEARCHERS[rc["search_alg"]].check_installed(rc["search_alg"])
        if rc["search_alg"] == "grid":
            check_grid_fits(config)
            if config.warm_start:
                raise ValueError("a grid runs every point of its grid, whatever an earlier study found: a warm start "
                                 "cannot order it; use another search_alg with warm_start")
    gpu = config.gpu_per_trial
    if gpu is not None and 0 < gpu < 1 and rc["workers_per_trial"] > 1:
        raise ValueError(f"gpu_per_trial={gpu:g} with workers_per_trial={rc['workers_per_trial']} would put several "
                         "ranks of one trial on one GPU (NCCL refuses that); use whole GPUs per worker, or one worker")
    k = rc["trials_per_worker"]
    if k > 1 and rc["execution"] != "direct":
        raise ValueError(f"ray_config['trials_per_worker']={k} packs trials into worker processes, which needs "
                         "execution='direct' (a Train-worker trial has a worker group of its own)")
    if k > config.max_concurrent_trials:
        raise ValueError(f"ray_config['trials_per_worker']={k} packs up to {k} of the trials running at once into "
                         f"one worker, but only {config.max_concurrent_trials} run at once; raise n_parallel_trials "
                         f"(ray max_concurrent) to at least {k}")
    if rc["execution"] == "direct" and rc["workers_per_trial"] != 1:
        raise ValueError("ray_config['execution']='direct' runs one worker per trial; use execution='train' for "
                         "workers_per_trial > 1")


def _describe(config) -> str:
    from .storage import storage_location

    rc = config.ray_config
    concurrent = searcher_limit(config) or \
        f"as the cluster's resources allow ({rc['scheduler']} pauses trials, and a limit would count them)"
    return (f"ray_tune: scheduler={rc['scheduler']} search_alg={rc['search_alg']} seed={config.seed} "
            f"max_concurrent={concurrent} workers_per_trial={rc['workers_per_trial']} "
            f"execution={rc['execution']}"
            + (f" trials_per_worker={rc['trials_per_worker']}" if rc["trials_per_worker"] > 1 else "")
            + f" storage={masked(storage_location(rc['storage_path'], str(config.output_dir)))}"
            + (" autoscaling" if rc["autoscaling"] else ""))


def _compiled(config, space) -> str:
    check_reachable(config.ray_config["address"] or os.environ.get("RAY_ADDRESS"))  # (a dry run checks it too)
    return SEARCHERS[config.ray_config["search_alg"]].compiled(config, space)


def _defers_retention(config) -> bool:
    return SCHEDULERS[config.ray_config["scheduler"]].exploits


def _shared_results(config) -> Optional[str]:
    """With a storage_path (the cluster's shared storage) the results are copied there too."""
    if not config.ray_config["storage_path"]:
        return None
    from .storage import results_location, storage_location

    location = storage_location(config.ray_config["storage_path"], str(config.output_dir))
    return results_location(location, config.resolved_study_name)


BACKEND = Backend(name="ray_tune", section="ray_config", settings=SETTINGS,
                  runner="stateset_hpo.search.ray.backend:run_ray_tune", describe=_describe, compiled=_compiled,
                  retrainer="stateset_hpo.search.ray.backend:retrain_ray_tune",
                  spec_checker="stateset_hpo.search.ray.backend:check_search",
                  flags=FLAGS, check=_check, defers_retention=_defers_retention, shared_results=_shared_results,
                  # Tune searches and schedules on the first objective; the summary's Pareto
                  # front comes from every trial's final metrics
                  multi_objective=True,
                  takes_observations=lambda config: SEARCHERS[config.ray_config["search_alg"]].takes_observations,
                  random_start=lambda config: SEARCHERS[config.ray_config["search_alg"]].random_start(config))
