"""A Ray Tune searcher on bayesian-optimization 3.x that handles mixed spaces.

Ray's own BayesOptSearch calls `bayes_opt.UtilityFunction`, removed in bayesian-optimization
2.0, and rejects integer and categorical dimensions (Ray issue 49845), so the `full` space
could not use it. This searcher keeps bayes_opt's optimizer and only translates points with
`SearchSpace.to_bayesopt()` (log scales, categories, integers).
"""

from __future__ import annotations

import pickle
import warnings
from typing import Dict, List, Optional

from ray.tune.search import Searcher


class MixedBayesOptSearch(Searcher):
    def __init__(self, space, metric: Optional[str] = None, mode: Optional[str] = None,
                 points_to_evaluate: Optional[List[Dict]] = None, random_state: Optional[int] = None) -> None:
        super().__init__(metric=metric, mode=mode)
        from bayes_opt import BayesianOptimization

        self._space = space
        self._compiled = space.to_bayesopt()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Non-float parameters are experimental"
            self._optimizer = BayesianOptimization(f=None, pbounds=self._compiled.pbounds, random_state=random_state,
                                                   verbose=0, allow_duplicate_points=True)
        self._queued = list(points_to_evaluate or [])
        self._live: Dict[str, dict] = {}

    def suggest(self, trial_id: str) -> Optional[Dict]:
        if self._queued:
            params = self._queued.pop(0)
            self._live[trial_id] = self._compiled.encode(params)
            return dict(params)
        point = self._optimizer.suggest()
        self._live[trial_id] = point
        return self._compiled.decode(point)

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
        point = self._live.pop(trial_id, None)
        if point is None or error or not result or result.get(self.metric) is None:
            return
        value = float(result[self.metric])
        self._optimizer.register(params=point, target=value if self.mode == "max" else -value)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
