"""A library's logger at another level for a block of code: Optuna's per-trial INFO lines
and "A new study created in memory" for studies the user never sees, Tune's tracebacks of
failed trials (ours says what failed), unless ``HPOConfig.library_logs`` asks for them."""

from __future__ import annotations

import contextlib
import logging
from typing import Optional


@contextlib.contextmanager
def logger_level(name: str, level: Optional[int]):
    """The logger ``name`` (and its children) at ``level`` for the block, then as it was; None
    leaves it as is. (Optuna's ``set_verbosity`` sets the level of its "optuna" logger.)"""
    logger = logging.getLogger(name)
    before = logger.level
    if level is not None:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
