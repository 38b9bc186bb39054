"""Compile a SearchSpace to a Ray Tune ``param_space``, and to a HyperOpt space.

``to_tune`` is the one hand-written converter for the Tune-compatible searchers: the Optuna
(search/optuna/space.py) and HyperOpt forms are derived from it with the converters Ray already
ships, so all three agree on every range by construction. Like each Ray searcher's own
``convert_search_space``, the compilation lives with the backend that needs it.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ...space.dimension import SearchDimension, SearchSpaceType


def tune_domain(dim: SearchDimension) -> Any:
    """The Tune sampling domain of one dimension (Tune's int bounds are upper-exclusive)."""
    from ray import tune

    if dim.type is SearchSpaceType.UNIFORM:
        return tune.uniform(dim.low, dim.high)
    if dim.type is SearchSpaceType.LOGUNIFORM:
        return tune.loguniform(dim.low, dim.high)
    if dim.type is SearchSpaceType.INT:
        return (tune.lograndint if dim.log else tune.randint)(dim.low, dim.high + 1)
    return tune.choice(list(dim.choices))


def to_tune(space, grid_points: Optional[int] = None) -> Dict[str, Any]:
    """``{name: domain}``. With ``grid_points`` set, every dimension becomes a
    ``tune.grid_search``: all choices of a categorical/choice dimension and ``grid_points``
    values spread over a range (log-spaced on a log scale). The domains carry no conditions
    (``when``): the searchers that take conditional spaces get them in their own form
    (searchers.py: define-by-run, ConfigSpace conditions)."""
    from ray import tune

    if grid_points is None:
        return {dim.name: tune_domain(dim) for dim in space}
    space.check_unconditional("a grid (search_alg grid)")
    return {dim.name: tune.grid_search(dim.grid_values(grid_points)) for dim in space}


def to_hyperopt(space) -> Dict[str, Any]:
    """A HyperOpt space by name, through Ray's own Tune->HyperOpt converter."""
    from ray.tune.search.hyperopt import HyperOptSearch

    # (HyperOpt's own nested hp.choice could express conditions, but Ray's converter, whose
    # ranges the other backends share, has no form for them)
    space.check_unconditional("search_alg hyperopt")
    return HyperOptSearch.convert_search_space(to_tune(space))
