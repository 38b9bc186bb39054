"""Optuna samplers by name, used as Optuna ships them.

Shared by the standalone Optuna backend and Ray Tune's `OptunaSearch` (search_alg "optuna").
Each builder takes (optuna_config, seed, constraints_func) and imports Optuna itself, so the
names stay cheap to list; the samplers that model constraints (tpe, gp, nsga2) take
``constraints_func``, the others ignore it. A new sampler is one function and one entry in
``SAMPLERS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional


@dataclass(frozen=True)
class Sampler:
    build: Callable[[Dict[str, Any], Optional[int], Optional[Callable]], Any]
    multi_objective: bool  # can propose for several objectives at once
    constrained: bool = False  # steers away from trials that break the study's constraints


def _tpe(oc, seed, constraints_func):
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=oc["n_startup_trials"],
                                      constraints_func=constraints_func)


def _random(oc, seed, constraints_func):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _cmaes(oc, seed, constraints_func):
    import optuna

    # CMA-ES handles the continuous and integer dimensions; choices go to its independent
    # (random) sampler, as Optuna documents.
    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=oc["n_startup_trials"],
                                        warn_independent_sampling=False)


def _gp(oc, seed, constraints_func):
    import optuna

    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=oc["n_startup_trials"],
                                     warn_independent_sampling=False, constraints_func=constraints_func)


def _qmc(oc, seed, constraints_func):
    import optuna

    return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)


def _nsga2(oc, seed, constraints_func):
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints_func)


SAMPLERS: Dict[str, Sampler] = {
    "tpe": Sampler(_tpe, multi_objective=True, constrained=True),
    "random": Sampler(_random, multi_objective=True),
    "cmaes": Sampler(_cmaes, multi_objective=False),
    "gp": Sampler(_gp, multi_objective=True, constrained=True),
    "qmc": Sampler(_qmc, multi_objective=True),
    "nsga2": Sampler(_nsga2, multi_objective=True, constrained=True),
}


def build_sampler(optuna_config: Dict[str, Any], n_objectives: int = 1, seed: Optional[int] = None,
                  constraints_func: Optional[Callable] = None):
    """The configured sampler; ``seed`` overrides optuna_config['seed'] when given;
    ``constraints_func`` (frozen trial -> violations, <= 0 feasible) reaches the samplers that
    model constraints."""
    name = optuna_config["sampler"]
    if n_objectives > 1 and not SAMPLERS[name].multi_objective:
        raise ValueError(f"optuna sampler {name!r} optimises one objective; with {n_objectives} objectives use one "
                         f"of {', '.join(n for n, s in SAMPLERS.items() if s.multi_objective)}")
    return SAMPLERS[name].build(optuna_config, optuna_config["seed"] if seed is None else seed, constraints_func)
