"""How many of a study's first trials a model-based searcher proposes at random.

Optuna's TPE, GP and CMA-ES samplers model nothing until 10 trials have finished, Ray's HyperOpt
searcher nothing until 20 and Ax until 5, whatever the study's size. A GRPO study is small (each
trial is a fine-tuning run): at those defaults a 12-trial "TPE" study is random search for 10
of its trials. Where the user sets no number (``optuna_config['n_startup_trials']``), we follow
SMAC's initial design: at most a quarter of the study's trials (SMAC's ``max_ratio=0.25``), at
least 2 (the space's defaults and one draw), and never more than the library's own number, so a
large study starts as the library would. A warm start's told observations and the trials run
first count towards it, as Optuna, HyperOpt and Ax count every finished trial they are given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ..trial import max_episodes
from .base import get_backend

SHARE = 0.25  # SMAC's initial design: at most this share of the study's trials
LEAST = 2


@dataclass(frozen=True)
class RandomStart:
    """A searcher that proposes its first trials at random before it models."""

    searcher: str  # named for a reader
    library_default: int  # the library's own number, whatever the study's size


def expected_trials(config, spec, space) -> int:
    """The trials the study expects to train to their end: ``n_trials``, or fewer where an
    episode budget (HPOConfig.budget['episodes']) holds fewer full-length trials. (A budget in
    hours or tokens says nothing before the first trial has run.)"""
    trials = config.n_trials
    episodes = (config.budget or {}).get("episodes")
    if episodes is not None:
        trials = min(trials, max(1, int(episodes // max_episodes(spec, space))))
    return trials


def random_start(config, spec, space) -> int:
    """The user's ``optuna_config['n_startup_trials']``, else a quarter of the expected trials,
    at least 2 and at most the library's own number (0 for a searcher that does not model)."""
    given = config.optuna_config["n_startup_trials"]
    start = get_backend(config.backend).random_start(config)
    if given is not None or start is None:
        return given or 0
    return min(start.library_default, max(LEAST, math.ceil(SHARE * expected_trials(config, spec, space))))


def describe(config, spec, space) -> Optional[str]:
    """The start-up line: how many trials this study's searcher proposes at random, and why."""
    given = config.optuna_config["n_startup_trials"]
    start = get_backend(config.backend).random_start(config)
    if start is None:  # (set in a config file for a searcher without one: said, not silently dropped)
        return None if given is None else (f"search: optuna_config['n_startup_trials']={given} is not used: this "
                                           "study's searcher has no random start")
    why = ("as set: --n-startup-trials, optuna_config['n_startup_trials']" if given is not None
           else f"a quarter of the {expected_trials(config, spec, space)} trials expected, at least 2, at most "
                f"the library's {start.library_default}; --n-startup-trials sets it")
    return (f"search: {start.searcher} proposes its first {random_start(config, spec, space)} trials at random, "
            f"then models the results ({why})")
