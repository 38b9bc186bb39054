"""Metric constraints: maximise the objective subject to e.g. ``kl <= 0.05`` (a KL budget).

A constraint bounds a metric's final value (the trial's last report): ``{"kl": {"max": 0.05}}``,
``{"reward_std": {"min": 0.01}}``. A trial that breaks one is infeasible: it stays in the
records, marked so, but is never the study's best nor on its Pareto front, on every backend.
Optuna's samplers that model constraints (tpe, gp, nsga2) also get each trial's violations
(``Trial.set_constraint``) and steer away from infeasible regions; the other samplers and the Ray
and W&B searchers propose without them, and only the choice of the best respects them.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .checks import check_section, number

Constraints = Dict[str, Dict[str, float]]


def check_constraints(value: Any) -> Optional[Constraints]:
    """HPOConfig.constraints, normalised ({metric: {"min"/"max": number}}), or ValueError."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"must be a mapping such as {{'kl': {{'max': 0.05}}}} or None, got {value!r}")
    out: Constraints = {}
    for metric, bounds in value.items():
        if not isinstance(metric, str) or not metric.strip():
            raise ValueError(f"names a metric {metric!r}; give metric names")
        if not isinstance(bounds, Mapping) or not bounds or set(bounds) - {"min", "max"}:
            raise ValueError(f"[{metric!r}] must be a mapping with 'min' and/or 'max', got {bounds!r}")
        finite = check_section(f"[{metric!r}]", bounds, {"min": (None, number(-math.inf, strict=True)),
                                                          "max": (None, number(-math.inf, strict=True))},
                               fill_defaults=False)
        if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
            raise ValueError(f"[{metric!r}] has min {bounds['min']} above max {bounds['max']}")
        out[metric] = finite
    return out


def parse_constraint(text: str) -> Constraints:
    """``"kl<=0.05"`` or ``"reward_std>=0.01"`` (the CLI's --constraint) as a constraints mapping."""
    for sign, key in (("<=", "max"), (">=", "min")):
        metric, found, bound = text.partition(sign)
        if found:
            try:
                return {metric.strip(): {key: float(bound)}}
            except ValueError:
                break
    raise ValueError(f"a constraint reads METRIC<=NUMBER or METRIC>=NUMBER, got {text!r}")


def _bounds(constraints: Optional[Constraints]) -> List[Tuple[str, str, float]]:
    return [(metric, key, bound) for metric, bounds in (constraints or {}).items() for key, bound in bounds.items()]


def constraint_names(constraints: Optional[Constraints]) -> List[str]:
    """A name per bound, in the order of `violations` (e.g. "kl<=0.05")."""
    return [f"{metric}{'<=' if key == 'max' else '>='}{bound:g}" for metric, key, bound in _bounds(constraints)]


def violations(metrics: Mapping[str, Any], constraints: Optional[Constraints]) -> List[float]:
    """One number per bound, positive where it is broken (Optuna's convention: <= 0 is feasible);
    a metric the trial did not report breaks its bounds (infinitely)."""
    out = []
    for metric, key, bound in _bounds(constraints):
        value = metrics.get(metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            out.append(math.inf)
        else:
            out.append(value - bound if key == "max" else bound - value)
    return out


def feasible(metrics: Mapping[str, Any], constraints: Optional[Constraints]) -> bool:
    return all(v <= 0 for v in violations(metrics, constraints))


def broken(metrics: Mapping[str, Any], constraints: Optional[Constraints]) -> List[str]:
    """The bounds a trial's final metrics break, in words (e.g. "kl 0.08 > 0.05")."""
    out = []
    for (metric, key, bound), violation in zip(_bounds(constraints), violations(metrics, constraints)):
        if violation > 0:
            value = metrics.get(metric)
            shown = f"{value:.4g}" if math.isfinite(violation) else "not reported"
            out.append(f"{metric} {shown} {'>' if key == 'max' else '<'} {bound:g}")
    return out


def describe(constraints: Optional[Constraints]) -> str:
    return ", ".join(f"{metric} {'<=' if key == 'max' else '>='} {bound:g}" for metric, key, bound in _bounds(constraints))
