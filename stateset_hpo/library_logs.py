"""A library's logger at another level for a block of code: Optuna's per-trial INFO lines
and "A new study created in memory" for studies the user never sees, Tune's tracebacks of
failed trials (ours says what failed), unless ``HPOConfig.library_logs`` asks for them; and
one import-time warning no user can act on, dropped in every process (``drop_known_noise``)."""

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


# bitsandbytes, which peft (and so every engine process) imports whenever it is installed, warns
# at import on CPUs with AVX512-BF16 that it could not fetch an optional CPU 4-bit matmul kernel
# from the Hub ("Failed to load CPU gemm_4bit_forward from kernels-community: ... could not verify
# publisher trust status"). Nothing fails: bitsandbytes falls back to its own kernel, only a QLoRA
# trial on a CPU would use it, and every trial process printed the line into the study's output.
# Only that message is dropped; the logger's other warnings pass.
_NOISE = {"bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward from kernels-community"}


def _not_noise(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(_NOISE.get(record.name, "\0"))


def drop_known_noise() -> None:
    """Drop the messages of ``_NOISE`` from their loggers, in this process, before or after the
    library is imported (a logger is the same object either way). Idempotent."""
    for name in _NOISE:
        logger = logging.getLogger(name)
        if _not_noise not in logger.filters:
            logger.addFilter(_not_noise)
