"""Start no new Tune trial once the study's budget is spent; the running ones finish.

Tune has no such control of its own: a Stopper's ``stop_all`` (what early_stopping_patience
uses) ends the running trials too, and ``time_budget_s`` counts wall time only. Tune stops
asking a search algorithm for trials once it says it is finished, so this wraps the study's
search algorithm and says so when the study's monitor finds the budget spent.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ray.tune.search import SearchAlgorithm, Searcher
from ray.tune.search.search_generator import SearchGenerator

from .live import control_of


class UntilBudgetSpent(SearchAlgorithm):
    """The wrapped search algorithm, finished once the study registered under ``key`` (live.py)
    spent its budget.

    Holds only the experiment key (the study's callbacks are looked up on the driver), so
    Tune can save and restore it with the experiment."""

    def __init__(self, search_alg: Any, key: str) -> None:
        self.inner = SearchGenerator(search_alg) if isinstance(search_alg, Searcher) else search_alg
        self.key = key

    def _spent(self) -> bool:
        return control_of(self.key).no_new_trials()

    @property
    def metric(self):
        return self.inner.metric

    @property
    def total_samples(self):
        return self.inner.total_samples

    @property
    def searcher(self):
        """The wrapped searcher: HyperBandForBOHB tells it which trials it pauses and resumes."""
        return self.inner.searcher

    def set_search_properties(self, metric: Optional[str], mode: Optional[str], config: Dict, **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def add_configurations(self, experiments) -> None:
        self.inner.add_configurations(experiments)

    def next_trial(self):
        return None if self._spent() else self.inner.next_trial()

    def on_trial_result(self, trial_id: str, result: Dict) -> None:
        self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
        self.inner.on_trial_complete(trial_id, result=result, error=error)

    def is_finished(self) -> bool:
        return self._spent() or self.inner.is_finished()

    def set_finished(self) -> None:
        self.inner.set_finished()

    def has_checkpoint(self, dirpath: str) -> bool:
        return self.inner.has_checkpoint(dirpath)

    def save_to_dir(self, dirpath: str, **kwargs) -> None:
        self.inner.save_to_dir(dirpath, **kwargs)

    def restore_from_dir(self, dirpath: str) -> None:
        self.inner.restore_from_dir(dirpath)
