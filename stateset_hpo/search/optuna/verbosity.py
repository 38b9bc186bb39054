"""Optuna's logging level for a block of code."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def optuna_verbosity(level: int):
    """Optuna's logging at ``level`` for the duration (restored after), e.g. WARNING to drop
    the "A new study created in memory" line of a study the user never sees."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(level)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)
