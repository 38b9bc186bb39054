"""What each trial consumed, and what the study spent.

A trial's cost comes from what it measured, never from an estimate: the episodes it trained
on, the tokens it generated (training and evaluation rollouts, all workers), its optimizer
steps (from the engine's last report) and its wall seconds times the resources held for it
(worker-seconds of CPU and GPU: Ray's reservation for the trial, or the in-process trial's).
The study adds them up (`HPOSummary.cost`), says what finding the recommendation cost (every
trial up to it, in the order they were created) and what each unit of improvement over the
baseline cost.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from .checks import check_section, number

COST_KEYS = ("episodes", "generated_tokens", "optimizer_steps", "wall_seconds", "cpu_seconds", "gpu_seconds")


def trial_cost(history: List[Mapping[str, Any]], wall_seconds: float, cpus: float, gpus: float) -> Dict[str, float]:
    """A trial's consumption from its metric history (the run that counts) and wall time."""
    last = history[-1] if history else {}
    return {"episodes": float(last.get("episodes", 0.0)),
            "generated_tokens": float(last.get("generated_tokens", 0.0)),
            "optimizer_steps": float(last.get("optimizer_steps", 0.0)),
            "wall_seconds": float(wall_seconds), "cpu_seconds": float(wall_seconds * cpus),
            "gpu_seconds": float(wall_seconds * gpus)}


def total(costs: List[Mapping[str, float]]) -> Dict[str, float]:
    return {key: float(sum(c.get(key, 0.0) for c in costs)) for key in COST_KEYS}


def per_unit(cost: Mapping[str, float], gain: Optional[float]) -> Optional[Dict[str, float]]:
    """Cost divided by a positive gain (None when there is no gain to divide by)."""
    if gain is None or gain <= 0:
        return None
    return {key: cost[key] / gain for key in COST_KEYS}


# HPOConfig.budget's keys: what each counts, in the units a user writes
BUDGET_KEYS = {"gpu_hours": ("gpu_seconds", 3600.0), "cpu_hours": ("cpu_seconds", 3600.0),
               "tokens": ("generated_tokens", 1.0), "episodes": ("episodes", 1.0), "wall_seconds": (None, 1.0)}


def check_budget(value: Any) -> Optional[Dict[str, float]]:
    """HPOConfig.budget ({key: positive number}), or ValueError naming the valid keys."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"must be a mapping such as {{'gpu_hours': 10}} or None, got {value!r}")
    return check_section("", value, {key: (None, number(0.0, strict=True)) for key in BUDGET_KEYS},
                         fill_defaults=False)


def budget_exceeded_by_next(budget: Mapping[str, float], costs: List[Mapping[str, float]], running: int,
                            elapsed: float) -> Optional[str]:
    """Why one more trial would exceed the budget, or None. The next trial (and each one still
    running) is expected to cost what the finished ones did on average; wall_seconds is the
    study's own clock, against which the next trial's average wall time is set."""
    if not costs:
        return None
    for key, limit in budget.items():
        field, unit = BUDGET_KEYS[key]
        mean = sum(c.get(field or "wall_seconds", 0.0) for c in costs) / len(costs) / unit
        spent = elapsed / unit if field is None else sum(c.get(field, 0.0) for c in costs) / unit
        expected = spent + mean * (1 if field is None else running + 1)
        if expected > limit:
            return (f"the budget ended the study: {key} {spent:.4g} spent of {limit:g}, and the next trial would "
                    f"bring it to about {expected:.4g}")
    return None


def describe(cost: Mapping[str, float]) -> str:
    hours = [f"{cost[k] / 3600:.3g} {k[:3]}-hours" for k in ("gpu_seconds", "cpu_seconds") if cost[k] > 0]
    return (f"{cost['episodes']:.0f} episodes, {cost['generated_tokens']:.0f} generated tokens, "
            f"{cost['optimizer_steps']:.0f} optimizer steps, {cost['wall_seconds']:.1f} trial-seconds"
            + (", " + ", ".join(hours) if hours else ""))
