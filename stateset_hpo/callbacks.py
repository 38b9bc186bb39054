"""Study callbacks: user objects told when the study and each trial start and end.

A callback implements any subset of `HPOCallback`'s methods; missing ones are skipped.
Every backend fires them on the driver (the process that called optimize), never inside
trial workers, so a callback may print, plot or write files freely.

A callback that raises does not end the study (hours of trials would be lost to a logging
slip, such as the guide's own ``f"{result.best_metric:.4f}"`` on a failed trial, whose
best_metric is None): the error is reported once per study, callback and hook, with the
callback's name, and the study goes on. A callback that sets ``errors_stop_the_study = True`` is strict:
its errors propagate and end the study (the project's own bookkeeping callbacks are).
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Iterable, Set, Tuple


class HPOCallback:
    """Base class with every hook as a no-op (subclassing it is optional)."""

    def on_hpo_start(self, search_space, n_trials: int) -> None: ...

    def on_trial_start(self, trial_id: str, params: Dict[str, Any]) -> None: ...

    def on_trial_result(self, trial_id: str, metrics: Dict[str, float]) -> None: ...

    def on_trial_end(self, result) -> None: ...

    def on_hpo_end(self, summary) -> None: ...


HOOKS = ("on_hpo_start", "on_trial_start", "on_trial_result", "on_trial_end", "on_hpo_end")


# (id(callback), hook) whose error this study reported; a study's start forgets its callbacks'
# entries, so the same callback in the next study (or a new one at a reused id) is reported again
_REPORTED: Set[Tuple[int, str]] = set()


def fire(callbacks: Iterable[Any], hook: str, *args: Any) -> None:
    """Call ``hook`` on each callback that has it (see the module docstring for errors)."""
    assert hook in HOOKS, hook
    callbacks = list(callbacks)
    if hook == "on_hpo_start":
        _REPORTED.difference_update((id(c), h) for c in callbacks for h in HOOKS)
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if method is None:
            continue
        try:
            method(*args)
        except Exception as exc:
            if getattr(callback, "errors_stop_the_study", False):
                raise
            if (id(callback), hook) not in _REPORTED:
                _REPORTED.add((id(callback), hook))
                warnings.warn(f"study callback {type(callback).__name__}.{hook} raised {type(exc).__name__}: "
                              f"{str(exc)[:200]}; the study goes on (reported once; set errors_stop_the_study = "
                              "True on the callback to stop instead)", stacklevel=2)
