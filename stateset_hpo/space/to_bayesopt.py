"""Compile a SearchSpace to what `bayes_opt.BayesianOptimization` needs, and back.

Ray's BayesOptSearch cannot be used (it calls the removed `UtilityFunction` and rejects
integer and categorical dimensions, Ray issue 49845). bayesian-optimization 3.x itself
accepts ``(low, high)`` floats, ``(low, high, int)`` integers and tuples of string
categories, so we only add what it lacks: log scales (searched in log space) and
categories that are not strings (searched by label).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Tuple

from .dimension import SearchDimension, SearchSpaceType


def _labels(dim: SearchDimension) -> Tuple[str, ...]:
    labels = tuple(str(c) for c in dim.choices)
    if len(set(labels)) != len(labels):  # e.g. "1" and 1 among the choices
        labels = tuple(f"#{i}" for i in range(len(dim.choices)))
    return labels


class BayesOptSpace:
    """``pbounds`` for bayes_opt plus the mapping between its points and our params.

    A categorical with a single choice is not searched (bayes_opt needs two categories);
    `decode` fills it in.
    """

    def __init__(self, space) -> None:
        self.space = space
        self.pbounds: Dict[str, Any] = {}
        self.fixed: Dict[str, Any] = {}
        for dim in space:
            if dim.is_range and dim.is_log:
                self.pbounds[dim.name] = (math.log(dim.low), math.log(dim.high))
            elif dim.type is SearchSpaceType.INT:
                self.pbounds[dim.name] = (dim.low, dim.high, int)
            elif dim.is_range:
                self.pbounds[dim.name] = (dim.low, dim.high)
            elif len(dim.choices) == 1:
                self.fixed[dim.name] = dim.choices[0]
            else:
                self.pbounds[dim.name] = _labels(dim)

    def decode(self, point: Mapping[str, Any]) -> Dict[str, Any]:
        """A bayes_opt point -> our params, with each dimension's own type and bounds."""
        params: Dict[str, Any] = {}
        for dim in self.space:
            if dim.name in self.fixed:
                params[dim.name] = self.fixed[dim.name]
                continue
            raw = point[dim.name]
            if not dim.is_range:
                params[dim.name] = dim.choices[_labels(dim).index(raw)]
                continue
            value = math.exp(float(raw)) if dim.is_log else float(raw)
            value = min(dim.high, max(dim.low, value))
            params[dim.name] = int(round(value)) if dim.type is SearchSpaceType.INT else value
        return params

    def encode(self, params: Mapping[str, Any]) -> Dict[str, Any]:
        """Our params -> a bayes_opt point (to register known results such as the baseline)."""
        point: Dict[str, Any] = {}
        for dim in self.space:
            if dim.name in self.fixed:
                continue
            value = params[dim.name]
            if not dim.is_range:
                point[dim.name] = _labels(dim)[dim.choice_index(value)]
            elif dim.is_log:
                point[dim.name] = math.log(value)
            else:
                point[dim.name] = value
        return point
