"""Driver-side bookkeeping of a running study, the same for every backend.

`StudyMonitor` is a study callback that run_study adds. As trials end it
- saves the study so far (summary.json, trials.csv) every ``checkpoint_freq`` trials (the
  guide's name for it: results, not model checkpoints), so a crash loses at most that many
  trials' records (a failed save, e.g. a full disk, warns and the
  study goes on);
- keeps only the ``keep_best_n`` best trials' checkpoints on disk (the others are deleted as
  soon as they fall out of the top N, except where the backend defers it (PBT/PB2, whose
  running trials may still copy a finished trial's checkpoint): there it happens when the
  study ends);
- asks the study to stop after ``early_stopping_patience`` finished trials without a better
  objective (``should_stop``);
- asks the study to start no new trial once the next one would exceed ``budget``
  (``no_new_trials``: running trials finish).
Any callback with a true ``should_stop`` attribute stops the study the same way; ``ended_by``
says why it ended early, for the summary. Backends do not read these attributes themselves:
run_study hands each one a `StudyControl` to ask.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from typing import Any, Dict, Iterable, List, Optional, Set

from .config import HPOConfig
from .constraints import feasible
from .cost import budget_exceeded_by_next
from .masking import masked
from .results import HPOResult, HPOSummary, TrialStatus, is_better, ranked


class StudyControl:
    """What the study asks of a running search, handed to every backend (``Backend.run``):
    stop now (`should_stop`: early_stopping_patience, or a study callback that asks; the
    running trials end) and start no new trial (`no_new_trials`: the budget; the running trials
    finish). The one place that reads the study's callbacks for those requests."""

    def __init__(self, callbacks: Iterable[Any] = ()) -> None:
        self.callbacks = list(callbacks)

    def should_stop(self) -> bool:
        return any(getattr(callback, "should_stop", False) for callback in self.callbacks)

    def no_new_trials(self) -> bool:
        return any(getattr(callback, "no_new_trials", False) for callback in self.callbacks)

    def ended_early(self) -> bool:
        """Whether the study asked to end before its n_trials (either request)."""
        return self.should_stop() or self.no_new_trials()


def delete_checkpoint(path: str) -> None:
    """Remove a checkpoint folder, local or on cloud storage (s3://, gs://: through its
    filesystem); one that is gone already is no error. OSError when it cannot be deleted."""
    if "://" in path:
        import pyarrow.fs

        try:
            filesystem, inner = pyarrow.fs.FileSystem.from_uri(path)
            if filesystem.get_file_info(inner).type != pyarrow.fs.FileType.NotFound:
                filesystem.delete_dir(inner)
        except (OSError, ValueError) as exc:  # (pyarrow raises OSError for a storage error, ValueError for a URI)
            raise OSError(str(exc)) from None
    elif os.path.lexists(path):
        shutil.rmtree(path)


class StudyMonitor:
    errors_stop_the_study = True  # (callbacks.py: the study's own bookkeeping is strict)

    def __init__(self, config: HPOConfig, search_space_name: Optional[str], defer_retention: bool = False) -> None:
        self.config = config
        self.search_space_name = search_space_name
        self.finished: List[HPOResult] = []
        self.deleted: Set[str] = set()
        self.undeletable: Set[str] = set()  # checkpoints retention could not delete (reported once each)
        self.best: Optional[float] = None
        self.since_best = 0
        self.should_stop = False
        self.no_new_trials = False
        self.ended_by: Optional[str] = None
        self.defer_retention = defer_retention
        self.started = time.monotonic()
        self.ended_at: Dict[str, float] = {}  # trial id -> seconds from the start to its end
        self.running = 0

    def on_trial_start(self, trial_id: str, params: Any) -> None:
        self.running += 1

    def on_trial_end(self, result: HPOResult) -> None:
        self.ended_at[result.trial_id] = time.monotonic() - self.started
        self.finished.append(result)
        self.running = max(0, self.running - 1)
        if self.config.budget and not self.no_new_trials:
            reason = budget_exceeded_by_next(self.config.budget, [r.cost for r in self.finished], self.running,
                                             time.monotonic() - self.started)
            if reason is not None:
                self.no_new_trials, self.ended_by = True, reason
        ok = result.status is TrialStatus.SUCCESS and result.best_metric is not None and \
            feasible(result.metrics, self.config.constraints)
        if ok and is_better(result.best_metric, self.best, self.config.direction):
            self.best, self.since_best = result.best_metric, 0
        else:
            self.since_best += 1
        patience = self.config.early_stopping_patience
        if patience is not None and self.best is not None and self.since_best >= patience and not self.should_stop:
            self.should_stop = True
            self.ended_by = self.ended_by or (f"early_stopping_patience ended the study: {patience} finished trials "
                                              "without a better objective")
        if not self.defer_retention:
            self.retain(self.finished)
        freq = self.config.checkpoint_freq
        if freq is not None and len(self.finished) % freq == 0:
            so_far = HPOSummary(self.config.objective_metric, self.config.direction, list(self.finished),
                                search_space_name=self.search_space_name,
                                objective_metrics=self.config.objective_metrics, directions=self.config.directions,
                                constraints=self.config.constraints)
            try:
                so_far.write(self.config.output_dir)
            except OSError as exc:  # (a full disk): the study goes on; the end of the study writes again
                warnings.warn(f"could not save the study so far to {self.config.output_dir} ({exc}); the trials "
                              "go on and the results are written again when the study ends")

    def retain(self, results: List[HPOResult]) -> None:
        """Delete the checkpoints of all but the ``keep_best_n`` best successful trials. In a
        multi-objective study every trial on the Pareto front keeps its checkpoint (the front is
        the study's answer, and the best trial of each objective is on it), and then the
        ``keep_best_n`` best of the rest by the first objective."""
        keep = self.config.keep_best_n
        if keep is None:
            return
        # A deleted checkpoint is gone for good: rank only the ones still there (with tied
        # metrics, the finish order here and the creation order at the end can differ).
        there = [r for r in results if r.checkpoint_path not in self.deleted]
        front: Set[str] = set()
        if len(self.config.objectives) > 1:
            front = set(HPOSummary(self.config.objective_metric, self.config.direction, there,
                                   objective_metrics=self.config.objective_metrics,
                                   directions=self.config.directions, constraints=self.config.constraints).pareto_front)
        best = [r for r in ranked(there, self.config.direction, self.config.constraints) if r.trial_id not in front]
        kept = {r.checkpoint_path for r in best[:keep]} | {r.checkpoint_path for r in there if r.trial_id in front}
        for r in results:
            if r.checkpoint_path and r.checkpoint_path not in kept and r.checkpoint_path not in self.deleted | \
                    self.undeletable:
                try:
                    delete_checkpoint(r.checkpoint_path)
                    self.deleted.add(r.checkpoint_path)
                except OSError as exc:  # the checkpoint stays (and is still recorded): the storage keeps its cost
                    self.undeletable.add(r.checkpoint_path)
                    warnings.warn(f"keep_best_n: could not delete the checkpoint of trial {r.trial_id} at "
                                  f"{masked(r.checkpoint_path)} ({str(exc)[:200]}); it stays there, and in the "
                                  "results")

    def finish(self, results: List[HPOResult]) -> None:
        """At the study's end: apply retention to every trial (also trials recorded by earlier
        runs of a stored study), forget the paths that are gone, and note when each trial of
        this run ended."""
        self.retain(results)
        for r in results:
            r.ended_at = self.ended_at.get(r.trial_id, r.ended_at)
            if r.checkpoint_path in self.deleted:
                r.checkpoint_path = None
