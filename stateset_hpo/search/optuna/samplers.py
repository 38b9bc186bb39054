"""Optuna samplers by name, used as Optuna ships them.

Shared by the standalone Optuna backend and Ray Tune's `OptunaSearch` (search_alg "optuna").
Each builder takes (optuna_config, seed) and imports Optuna itself, so the names stay cheap
to list. A new sampler is one function and one entry in ``SAMPLERS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional


@dataclass(frozen=True)
class Sampler:
    build: Callable[[Dict[str, Any], Optional[int]], Any]
    multi_objective: bool  # can propose for several objectives at once
    random_start: bool = False  # proposes its first n_startup_trials at random (search/random_start.py)


def _tpe(oc, seed):
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=oc["n_startup_trials"])


def _random(oc, seed):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _cmaes(oc, seed):
    import optuna

    # CMA-ES handles the continuous and integer dimensions; choices go to its independent
    # (random) sampler, as Optuna documents.
    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=oc["n_startup_trials"],
                                        warn_independent_sampling=False)


def _gp(oc, seed):
    import optuna

    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=oc["n_startup_trials"],
                                     warn_independent_sampling=False)


def _qmc(oc, seed):
    import optuna

    return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)


def _nsga2(oc, seed):
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed)


SAMPLERS: Dict[str, Sampler] = {
    "tpe": Sampler(_tpe, multi_objective=True, random_start=True),
    "random": Sampler(_random, multi_objective=True),
    "cmaes": Sampler(_cmaes, multi_objective=False, random_start=True),
    "gp": Sampler(_gp, multi_objective=True, random_start=True),
    "qmc": Sampler(_qmc, multi_objective=True),
    "nsga2": Sampler(_nsga2, multi_objective=True),
}


def starts_at_random(optuna_config: Dict[str, Any], via: str = ""):
    """The configured sampler's RandomStart (random_start.py; Optuna's number is 10 for each),
    if it proposes its first trials at random before it models; else None."""
    from ..random_start import RandomStart

    name = optuna_config["sampler"]
    return RandomStart(f"Optuna's {name} sampler{via}", 10) if SAMPLERS[name].random_start else None


def check_sampler(optuna_config: Dict[str, Any], n_objectives: int = 1) -> None:
    """ValueError if the configured sampler cannot optimise ``n_objectives`` objectives."""
    name = optuna_config["sampler"]
    if n_objectives > 1 and not SAMPLERS[name].multi_objective:
        raise ValueError(f"optuna sampler {name!r} optimises one objective; with {n_objectives} objectives use one "
                         f"of {', '.join(n for n, s in SAMPLERS.items() if s.multi_objective)}")


def build_sampler(optuna_config: Dict[str, Any], random_start: int, n_objectives: int = 1,
                  seed: Optional[int] = None):
    """The configured sampler, seeded with ``seed`` (HPOConfig.seed), proposing its first
    ``random_start`` trials at random where it models (random_start.py decides how many)."""
    check_sampler(optuna_config, n_objectives)
    return SAMPLERS[optuna_config["sampler"]].build({**optuna_config, "n_startup_trials": random_start}, seed)
