"""Compile a SearchSpace to a HyperOpt space, through Ray's own Tune->HyperOpt converter."""

from __future__ import annotations

from typing import Any, Dict


def to_hyperopt(space) -> Dict[str, Any]:
    from ray.tune.search.hyperopt import HyperOptSearch

    return HyperOptSearch.convert_search_space(space.to_tune())
