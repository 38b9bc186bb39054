"""Where an Optuna study lives: memory, an SQLAlchemy database, or a journal file.

A persistent study is what makes warm starts and several worker processes work: every
process that opens the same storage and study name adds trials to one study.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Optional

from ...masking import masked

SQLITE_BUSY_S = 30  # how long a process waits for another's write to an SQLite study
HEARTBEAT_S = 60  # a running trial's heartbeat
GRACE_S = 180  # a trial without a heartbeat this long belonged to a process that died
SCHEMA_RACE_TRIES = 5


def open_storage(url: Optional[str]):
    """None (in memory) for None; an RDBStorage for a URL with a scheme (``sqlite:///hpo.db``,
    ``postgresql://...``); otherwise a journal file at that path (``hpo_journal.log``), which
    several processes on one file system can share without a database server. A storage that
    cannot be opened is a ValueError, raised before any trial runs."""
    import optuna

    if url is None:
        return None
    if "://" in url:
        # Several processes on one study: SQLite waits for a busy database instead of failing with
        # "database is locked", and a process killed mid-trial (kill -9, a lost node) leaves no trial
        # RUNNING forever: without its heartbeat the trial is failed after GRACE_S and run again once.
        engine = {"connect_args": {"timeout": SQLITE_BUSY_S}} if url.startswith("sqlite") else None
        for attempt in range(SCHEMA_RACE_TRIES):
            try:
                with warnings.catch_warnings():  # (heartbeats are "experimental" in Optuna's words)
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(
                        url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
            except Exception as exc:  # SQLAlchemy's errors: bad URL, missing driver, unreachable server
                # Two processes starting on a new database both create its tables; the one that
                # loses the race ("UNIQUE constraint failed: alembic_version", "table ... already
                # exists") finds them made when it tries again.
                if attempt + 1 < SCHEMA_RACE_TRIES and (type(exc).__name__ == "IntegrityError" or (
                        type(exc).__name__ == "OperationalError" and "already exists" in str(exc))):
                    time.sleep(0.5 * (attempt + 1))
                    continue
                detail = str(exc).replace(url, masked(url))
                raise ValueError(f"optuna storage {masked(url)!r} cannot be opened: {type(exc).__name__}: {detail}"
                                 ) from None
    path = Path(url).expanduser()
    if path.is_dir() or not path.parent.is_dir():
        raise ValueError(f"optuna storage {url!r} is neither a database URL (sqlite:///file.db) nor a journal file "
                         "path in an existing folder")
    from optuna.storages.journal import JournalFileBackend

    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except OSError as exc:
        raise ValueError(f"optuna journal file {url!r} cannot be opened: {exc}") from None
