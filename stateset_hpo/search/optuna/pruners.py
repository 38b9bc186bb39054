"""Optuna pruners by name, used as Optuna ships them.

A pruner's step is the episode count (sampled conversations trained on), so trials with other
batch sizes are compared at equal compute; ``n_warmup_steps`` and ``min_resource`` are
episodes too, by default two and one iterations of the first trial (the space's defaults).
Each builder takes (optuna_config, max_episodes, iteration episodes). A multi-objective study
prunes nothing (Optuna cannot): HPOConfig sets its pruner to "none".
"""

from __future__ import annotations

from typing import Any, Callable, Dict


def _warmup(oc, iteration):
    return oc["n_warmup_steps"] if oc["n_warmup_steps"] is not None else 2 * iteration


def _median(oc, max_episodes, iteration):
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=oc["pruner_startup_trials"],
                                       n_warmup_steps=_warmup(oc, iteration), interval_steps=oc["interval_steps"])


def _percentile(oc, max_episodes, iteration):
    import optuna

    return optuna.pruners.PercentilePruner(oc["percentile"], n_startup_trials=oc["pruner_startup_trials"],
                                           n_warmup_steps=_warmup(oc, iteration), interval_steps=oc["interval_steps"])


def _hyperband(oc, max_episodes, iteration):
    import optuna

    least = oc["min_resource"] or iteration
    return optuna.pruners.HyperbandPruner(min_resource=least, max_resource=max(max_episodes, least),
                                          reduction_factor=oc["reduction_factor"])


def _successive_halving(oc, max_episodes, iteration):
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(min_resource=oc["min_resource"] or iteration,
                                                  reduction_factor=oc["reduction_factor"])


def _wilcoxon(oc, max_episodes, iteration):
    import optuna

    return optuna.pruners.WilcoxonPruner(p_threshold=oc["p_threshold"], n_startup_steps=_warmup(oc, iteration))


def _none(oc, max_episodes, iteration):
    import optuna

    return optuna.pruners.NopPruner()


PRUNERS: Dict[str, Callable[[Dict[str, Any], int, int], Any]] = {
    "median": _median,
    "percentile": _percentile,
    "hyperband": _hyperband,
    "successive_halving": _successive_halving,
    "wilcoxon": _wilcoxon,
    "none": _none,
}


def build_pruner(optuna_config: Dict[str, Any], max_episodes: int, iteration: int):
    """The configured pruner; ``max_episodes`` and ``iteration`` (one iteration of the first
    trial) are in episodes."""
    return PRUNERS[optuna_config["pruner"]](optuna_config, max_episodes, iteration)
