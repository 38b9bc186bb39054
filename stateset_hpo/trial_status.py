"""What a trial came to: the status every backend's trials end in (lifecycle.py derives it)."""

from __future__ import annotations

from enum import Enum


class TrialStatus(str, Enum):
    SUCCESS = "success"
    FAILED = "failed"
    PRUNED = "pruned"  # stopped early by a pruner, scheduler, health rule or the timeout
