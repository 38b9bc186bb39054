"""How many of a study's first trials a model-based searcher proposes at random.

Optuna's TPE, GP and CMA-ES samplers model nothing until 10 trials have finished, and Ray's
HyperOpt searcher nothing until 20, whatever the study's size. A GRPO study is small (each
trial is a fine-tuning run): at those defaults a 12-trial "TPE" study is random search for 10
of its trials. Where the user sets no number (``optuna_config['n_startup_trials']``), we follow
SMAC's initial design: at most a quarter of the study's trials (SMAC's ``max_ratio=0.25``), at
least 2 (the space's defaults and one draw), never more than Optuna's 10, so a study of 40
trials or more starts as Optuna's samplers do. A warm start's told observations and the trials
run first count towards it, as Optuna counts every finished trial of its study.
"""

from __future__ import annotations

import math
from typing import Optional

from ..trial import max_episodes

MOST = 10  # Optuna's samplers' own default: the most a study starts at random unless asked
SHARE = 0.25  # SMAC's initial design: at most this share of the study's trials
LEAST = 2


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
    """The user's ``optuna_config['n_startup_trials']``, else a quarter of the expected trials
    (between 2 and 10)."""
    given = config.optuna_config["n_startup_trials"]
    if given is not None:
        return given
    return min(MOST, max(LEAST, math.ceil(SHARE * expected_trials(config, spec, space))))


def describe(config, spec, space, searcher: Optional[str]) -> Optional[str]:
    """The start-up line for a study whose ``searcher`` starts at random, else None."""
    given = config.optuna_config["n_startup_trials"]
    if searcher is None:  # (set in a config file for a searcher without one: said, not silently dropped)
        return None if given is None else (f"search: optuna_config['n_startup_trials']={given} is not used: this "
                                           "study's searcher has no random start")
    why = ("as set: --n-startup-trials, optuna_config['n_startup_trials']" if given is not None
           else f"a quarter of the {expected_trials(config, spec, space)} trials expected, 2 to 10; "
                "optuna_config['n_startup_trials'] sets it")
    return (f"search: {searcher} proposes its first {random_start(config, spec, space)} trials at random, then "
            f"models the results ({why})")
