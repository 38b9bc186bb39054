"""The study's callbacks and its `StudyControl` by experiment, on the driver, for the objects
Tune pickles.

Tune pickles its stopper, callbacks and search algorithm with the experiment state, and a
user's callback need not be picklable (a lock, an open file, a logger): the Tune-side objects
hold only the experiment's key and look the live callbacks up here. A resumed study registers
its new callbacks under the same key, so the restored objects reach them, not unpickled copies
of the old ones.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from ...study_monitor import StudyControl

_LIVE: Dict[str, Tuple[List[Any], StudyControl]] = {}


def register(key: str, callbacks: Sequence[Any], control: StudyControl) -> None:
    _LIVE[key] = (list(callbacks), control)


def callbacks_of(key: str) -> List[Any]:
    """The callbacks registered under ``key`` ([] once the study has ended)."""
    return _LIVE.get(key, ([], None))[0]


def control_of(key: str) -> StudyControl:
    """The study's control registered under ``key`` (one that asks nothing once it has ended)."""
    return _LIVE.get(key, (None, StudyControl()))[1]


def forget(key: str) -> None:
    _LIVE.pop(key, None)
