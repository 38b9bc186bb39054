"""SIGTERM handled like Ctrl+C.

`ray job stop` and Kubernetes end a job with SIGTERM; every backend turns Ctrl+C (SIGINT) into
a saved, resumable study (Tune saves its experiment state, Optuna's storage has every finished
trial), so SIGTERM is handled as SIGINT would be: by the SIGINT handler in place (Tune's, which
saves the experiment, or Python's, which raises KeyboardInterrupt), or, where SIGINT is ignored
(a process started with ``cmd &`` from a non-interactive shell inherits that), by raising
KeyboardInterrupt all the same: re-sending SIGINT would be ignored too, and only SIGKILL, which
loses the study's saved state, would stop it. The CLI sets it for the whole run; the Ray backend
sets it again after ray.init, which installs Ray's own SIGTERM handler (that one ends the driver
at once), and restores what was there after the study.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def _forward(signum: int, frame: Any) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:  # SIG_IGN or SIG_DFL: what Ctrl+C does in a terminal
        raise KeyboardInterrupt


def sigterm_as_ctrl_c() -> Any:
    """Install the forwarding handler; the previous handler (to restore with
    `restore_sigterm`), or None outside the main thread, where handlers cannot be set."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _forward)


def restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
