"""A Ray Tune searcher on Ax's current ask/tell API (``ax.api.Client``, ax-platform 1.x).

Ray 2.60's own ``AxSearch`` is written against the AxClient service API of Ax 0.x: with Ax 1.3
it fails while setting up its experiment (``'Objective' object has no attribute
'objectives'``), so ``search_alg="ax"`` could not work through it. This searcher asks Ax's
`Client` for one trial at a time (BoTorch Bayesian optimisation after Ax's own
initialisation trials), attaches the space's defaults as the first trial, and tells Ax each
finished trial's objective. The space is translated here, one `SearchDimension` to one Ax
parameter: floats, integers (on a linear or log scale), ordered numeric choices and unordered
categories. A float on a log scale goes to Ax as its base-10 exponent: Ax refuses float ranges
narrower than about 1e-6 even on a log scale ("likely to cause numerical errors"), which
``adam_epsilon`` in [1e-9, 1e-7] is. ``seed`` fixes Ax's initialisation and its model's
randomness.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ray.tune.search import Searcher


def _quiet_ax() -> None:
    """Import Ax without its INFO lines on the console: it logs one on import ("Ax SQL storage
    initialized") and one for every trial it generates or completes, which the study's own
    progress lines say already. Its console handler gets WARNING, the way Ax documents."""
    before = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        importlib.import_module("ax")  # (its import configures the "ax" logger and handler)
    finally:
        logging.disable(before)
    for handler in logging.getLogger("ax").handlers:
        handler.setLevel(logging.WARNING)


def _exponent(dim) -> bool:
    """Is this dimension given to Ax as its base-10 exponent (a float on a log scale)?"""
    return dim.is_range and dim.is_log and dim.type.value != "int"


def ax_parameters(space) -> List[Any]:
    """The Ax parameter configs of a SearchSpace (validated by Ax when the experiment is made)."""
    space.check_unconditional("search_alg ax")
    _quiet_ax()
    from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

    out = []
    for dim in space:
        if _exponent(dim):
            out.append(RangeParameterConfig(name=dim.name, bounds=(math.log10(dim.low), math.log10(dim.high)),
                                            parameter_type="float"))
        elif dim.is_range:
            kind = "int" if dim.type.value == "int" else "float"
            out.append(RangeParameterConfig(name=dim.name, bounds=(dim.low, dim.high), parameter_type=kind,
                                            scaling="log" if dim.is_log else "linear"))
        else:
            values = list(dim.choices)
            kinds = {type(v) for v in values}
            if len(kinds) != 1 or kinds.pop() not in (int, float, str, bool):
                raise ValueError(f"search_alg 'ax': dimension {dim.name!r} mixes value types {values!r}; Ax takes "
                                 "choices of one type (int, float, str or bool)")
            kind = {int: "int", float: "float", str: "str", bool: "bool"}[type(values[0])]
            out.append(ChoiceParameterConfig(name=dim.name, values=values, parameter_type=kind,
                                             is_ordered=kind in ("int", "float")))
    return out


def to_ax(space, params: Dict[str, Any]) -> Dict[str, Any]:
    return {name: math.log10(value) if _exponent(space[name]) else value for name, value in params.items()}


def from_ax(space, params: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    for name, value in params.items():
        dim = space[name]
        out[name] = min(dim.high, max(dim.low, 10.0 ** value)) if _exponent(dim) else value
    return out


class AxClientSearch(Searcher):
    def __init__(self, space, metric: str, mode: str, points_to_evaluate: Optional[List[Dict]] = None,
                 seed: Optional[int] = None, told: Sequence[Tuple[Dict, float]] = (),
                 random_start: Optional[int] = None) -> None:
        """``told``: earlier (params, score) pairs, completed as Ax trials of the experiment
        before the first proposal (a comparable warm start, warm_start.py); ``random_start``:
        Ax's initialization budget (its Sobol trials; the trials attached here count towards it)."""
        super().__init__(metric=metric, mode=mode)
        _quiet_ax()
        self._space, self._seed = space, seed
        self._client = self._new_client()
        self._client.configure_experiment(parameters=ax_parameters(space), name="stateset_hpo")
        self._client.configure_optimization(objective=metric if mode == "max" else f"-{metric}")
        self._client.configure_generation_strategy(initialization_random_seed=seed,
                                                   initialization_budget=random_start)
        self._queued = list(points_to_evaluate or [])
        self._live: Dict[str, int] = {}  # Tune trial id -> Ax trial index
        for params, value in told:
            index = self._client.attach_trial(parameters=to_ax(space, params))
            self._client.complete_trial(trial_index=index, raw_data={metric: float(value)})

    def _new_client(self):
        from ax.api.client import Client

        return Client(random_seed=self._seed)

    def suggest(self, trial_id: str) -> Optional[Dict]:
        if self._queued:
            params = self._queued.pop(0)
            self._live[trial_id] = self._client.attach_trial(parameters=to_ax(self._space, params))
            return dict(params)
        proposed = self._client.get_next_trials(max_trials=1)
        if not proposed:  # Ax waits for data before it proposes more; Tune asks again later
            return None
        index, params = next(iter(proposed.items()))
        self._live[trial_id] = index
        return from_ax(self._space, params)

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
        index = self._live.pop(trial_id, None)
        if index is None:
            return
        value = None if error or not result else result.get(self.metric)
        if value is None:
            self._client.mark_trial_failed(trial_index=index)
        else:
            self._client.complete_trial(trial_index=index, raw_data={self.metric: float(value)})

    def save(self, checkpoint_path: str) -> None:
        """Ax's own JSON snapshot of the experiment, plus which Tune trial is which Ax trial."""
        with tempfile.TemporaryDirectory() as folder:
            snapshot = os.path.join(folder, "ax.json")
            self._client.save_to_json_file(filepath=snapshot)
            with open(snapshot) as f:
                ax_state = f.read()
        with open(checkpoint_path, "w") as f:
            json.dump({"ax": ax_state, "live": self._live, "queued": self._queued, "seed": self._seed,
                       "metric": self.metric, "mode": self.mode}, f)

    def restore(self, checkpoint_path: str) -> None:
        _quiet_ax()
        from ax.api.client import Client

        with open(checkpoint_path) as f:
            state = json.load(f)
        with tempfile.TemporaryDirectory() as folder:
            snapshot = os.path.join(folder, "ax.json")
            with open(snapshot, "w") as f:
                f.write(state["ax"])
            self._client = Client.load_from_json_file(filepath=snapshot)
        self._live, self._queued, self._seed = state["live"], state["queued"], state["seed"]
        self._metric, self._mode = state["metric"], state["mode"]
