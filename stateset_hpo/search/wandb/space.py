"""Compile a SearchSpace to the ``parameters`` block of a W&B sweep configuration.

W&B has no converter from Tune domains, so this one is ours. The block is what both the
hosted W&B sweep service and W&B's open `sweeps` engine accept.
"""

from __future__ import annotations

from typing import Any, Dict

from ...space.dimension import SearchDimension, SearchSpaceType

WANDB_METHODS = ("grid", "random", "bayes")


def wandb_parameter(dim: SearchDimension) -> Dict[str, Any]:
    if dim.type is SearchSpaceType.UNIFORM:
        return {"distribution": "uniform", "min": dim.low, "max": dim.high}
    if dim.type is SearchSpaceType.LOGUNIFORM:
        return {"distribution": "log_uniform_values", "min": dim.low, "max": dim.high}
    if dim.type is SearchSpaceType.INT and dim.log:
        # W&B has no log-int distribution; a log-uniform quantised to 1 is the same thing.
        return {"distribution": "q_log_uniform_values", "min": dim.low, "max": dim.high, "q": 1}
    if dim.type is SearchSpaceType.INT:
        return {"distribution": "int_uniform", "min": dim.low, "max": dim.high}
    return {"values": list(dim.choices)}


def to_wandb(space, method: str = "random", grid_points: int = 3) -> Dict[str, Any]:
    """``{name: spec}``. The grid method needs explicit values, so ranges are spread over
    ``grid_points`` values (log-spaced on a log scale)."""
    if method not in WANDB_METHODS:
        raise ValueError(f"unknown W&B sweep method {method!r}; valid methods: {', '.join(WANDB_METHODS)}")
    space.check_unconditional("a W&B sweep (its parameters block has no conditions)")
    if method == "grid":
        return {dim.name: {"values": dim.grid_values(grid_points)} for dim in space}
    return {dim.name: wandb_parameter(dim) for dim in space}
