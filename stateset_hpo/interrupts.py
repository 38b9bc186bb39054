"""SIGTERM handled like Ctrl+C.

`ray job stop` and Kubernetes end a job with SIGTERM; every backend turns Ctrl+C (SIGINT) into
a saved, resumable study (Tune saves its experiment state, Optuna's storage has every finished
trial), so SIGTERM is forwarded as SIGINT. The CLI sets it for the whole run; the Ray backend
sets it again after ray.init, which installs Ray's own SIGTERM handler (that one ends the driver
at once), and restores what was there after the study.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any


def _forward(signum: int, frame: Any) -> None:
    os.kill(os.getpid(), signal.SIGINT)


def sigterm_as_ctrl_c() -> Any:
    """Install the forwarding handler; the previous handler (to restore with
    `restore_sigterm`), or None outside the main thread, where handlers cannot be set."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _forward)


def restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
