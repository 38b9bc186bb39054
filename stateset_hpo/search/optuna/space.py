"""Compile a SearchSpace to Optuna distributions, through Ray's own Tune->Optuna converter.

Using `OptunaSearch.convert_search_space` instead of a second hand-written converter keeps
the Ray and standalone Optuna backends on identical ranges (tests check the ranges).
"""

from __future__ import annotations

from typing import Any, Dict

from ..ray.space import to_tune


def to_optuna(space) -> Dict[str, Any]:
    """Optuna distributions by name."""
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch.convert_search_space(to_tune(space))
