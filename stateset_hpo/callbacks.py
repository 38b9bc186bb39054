"""Study callbacks: user objects told when the study and each trial start and end.

A callback implements any subset of `HPOCallback`'s methods; missing ones are skipped.
Every backend fires them on the driver (the process that called optimize), never inside
trial workers, so a callback may print, plot or write files freely.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable


class HPOCallback:
    """Base class with every hook as a no-op (subclassing it is optional)."""

    def on_hpo_start(self, search_space, n_trials: int) -> None: ...

    def on_trial_start(self, trial_id: str, params: Dict[str, Any]) -> None: ...

    def on_trial_result(self, trial_id: str, metrics: Dict[str, float]) -> None: ...

    def on_trial_end(self, result) -> None: ...

    def on_hpo_end(self, summary) -> None: ...


HOOKS = ("on_hpo_start", "on_trial_start", "on_trial_result", "on_trial_end", "on_hpo_end")


def fire(callbacks: Iterable[Any], hook: str, *args: Any) -> None:
    """Call ``hook`` on each callback that has it."""
    assert hook in HOOKS, hook
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if method is not None:
            method(*args)
