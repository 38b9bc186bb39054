"""Optuna samplers and pruners from `optuna_config`, used as Optuna ships them.

Shared by the standalone Optuna backend and Ray Tune's `OptunaSearch` (search_alg "optuna").
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Dict, Optional

import optuna

# Samplers that can propose for several objectives at once (CMA-ES is single-objective).
MULTI_OBJECTIVE_SAMPLERS = ("tpe", "random", "gp", "qmc", "nsga2")


@contextmanager
def optuna_verbosity(level: int):
    """Optuna's logging at ``level`` for the duration (restored after), e.g. WARNING to drop
    the "A new study created in memory" line of a study the user never sees."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(level)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def build_sampler(optuna_config: Dict[str, Any], n_objectives: int = 1,
                  seed: Optional[int] = None) -> optuna.samplers.BaseSampler:
    """The configured sampler; ``seed`` overrides optuna_config['seed'] when given."""
    name = optuna_config["sampler"]
    seed = optuna_config["seed"] if seed is None else seed
    startup = optuna_config["n_startup_trials"]
    if n_objectives > 1 and name not in MULTI_OBJECTIVE_SAMPLERS:
        raise ValueError(f"optuna sampler {name!r} optimises one objective; with {n_objectives} objectives use one "
                         f"of {', '.join(MULTI_OBJECTIVE_SAMPLERS)}")
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        # CMA-ES handles the continuous and integer dimensions; choices go to its
        # independent (random) sampler, as Optuna documents.
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
    return optuna.samplers.NSGAIISampler(seed=seed)


def build_pruner(optuna_config: Dict[str, Any], max_episodes: int, iteration: int) -> optuna.pruners.BasePruner:
    """The configured pruner. Its step is the episode count (sampled conversations trained on),
    so trials with other batch sizes are compared at equal compute; ``n_warmup_steps`` and
    ``min_resource`` are episodes too, by default two and one iterations of the first trial (the space's defaults)
    (``iteration`` episodes each). (HPOConfig sets the pruner to "none" for multi-objective
    studies, which Optuna cannot prune.)"""
    name = optuna_config["pruner"]
    interval = optuna_config["interval_steps"]
    warmup = optuna_config["n_warmup_steps"] if optuna_config["n_warmup_steps"] is not None else 2 * iteration
    min_resource = optuna_config["min_resource"] or iteration
    startup = optuna_config["pruner_startup_trials"]  # finished trials before median/percentile prune
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup, interval_steps=interval)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(optuna_config["percentile"], n_startup_trials=startup,
                                               n_warmup_steps=warmup, interval_steps=interval)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=max(max_episodes, min_resource),
                                              reduction_factor=optuna_config["reduction_factor"])
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_resource,
                                                      reduction_factor=optuna_config["reduction_factor"])
    if name == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=optuna_config["p_threshold"], n_startup_steps=warmup)
    return optuna.pruners.NopPruner()
