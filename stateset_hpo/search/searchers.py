"""Ray Tune search algorithms from `ray_config`. The space's defaults go first.

optuna and hyperopt use Ray's integrations, which convert Tune domains themselves; bayesopt
uses `MixedBayesOptSearch` (see its module for why); random is Tune's own generator; grid is
a real grid (`SearchSpace.to_tune(grid_points=...)`), run once.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..space import SearchSpace


def build_search(name: str, space: SearchSpace, metric: str, mode: str, ray_config: Dict[str, Any],
                 max_concurrent: int, n_trials: int,
                 optuna_config: Dict[str, Any]) -> Tuple[Optional[Any], Dict[str, Any], int]:
    """(search_alg, param_space, num_samples) for tune.Tuner. search_alg "optuna" uses the
    sampler of ``optuna_config`` (TPE by default), seeded with ray_config['seed']."""
    seed = ray_config["seed"]
    baseline = [space.baseline()]
    if name == "grid":
        size = space.grid_size(ray_config["grid_points"])
        if size > n_trials:
            raise ValueError(f"the grid has {size} points but n_trials is {n_trials}; raise n_trials or lower "
                             "ray_config['grid_points']")
        return None, space.to_tune(grid_points=ray_config["grid_points"]), 1
    param_space = space.to_tune()
    if name == "random":
        from ray.tune.search import BasicVariantGenerator

        return BasicVariantGenerator(points_to_evaluate=baseline, random_state=seed), param_space, n_trials
    if name == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        from .optuna_samplers import build_sampler

        searcher = OptunaSearch(metric=metric, mode=mode, points_to_evaluate=baseline,
                                sampler=build_sampler(optuna_config, seed=seed))
    elif name == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        searcher = HyperOptSearch(metric=metric, mode=mode, points_to_evaluate=baseline, random_state_seed=seed)
    else:
        from .bayesopt_searcher import MixedBayesOptSearch

        searcher = MixedBayesOptSearch(space, metric=metric, mode=mode, points_to_evaluate=baseline,
                                       random_state=seed)
        param_space = {}  # the searcher proposes every value itself
    from ray.tune.search import ConcurrencyLimiter

    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent), param_space, n_trials
