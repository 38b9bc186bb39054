"""The standalone Optuna backend: trials in this process (or several processes sharing a
storage), Optuna's samplers and pruners as it ships them. `backend.py` runs it."""

from __future__ import annotations

from typing import Any, Mapping

from ...checks import boolean, integer, number, one_of, path_or_uri
from ..base import Backend, Flag, Settings
from .pruners import PRUNERS
from .samplers import SAMPLERS, starts_at_random

SETTINGS: Settings = {
    "sampler": ("tpe", one_of(tuple(SAMPLERS))),
    # A multi-objective study defaults to "none": Optuna prunes single-objective studies only.
    "pruner": ("median", one_of(tuple(PRUNERS))),
    # None: a quarter of the study's expected trials, at least 2, at most 10 (search/random_start.py)
    "n_startup_trials": (None, integer(0, optional=True)),
    "pruner_startup_trials": (5, integer(0)),
    # steps are episodes (see pruners.py); None: two / one iterations of the baseline
    "n_warmup_steps": (None, integer(0, optional=True)),
    "interval_steps": (1, integer(1)),
    "percentile": (25.0, number(0.0, strict=True, maximum=100.0)),
    "p_threshold": (0.1, number(0.0, strict=True, maximum=1.0)),
    "min_resource": (None, integer(1, optional=True)),
    "reduction_factor": (3, integer(2)),
    "storage": (None, path_or_uri),
    "load_if_exists": (True, boolean),
}

SAMPLER_FLAG = Flag("sampler", "sampler", "optuna sampler (backend optuna, or ray_tune with --search-alg optuna)",
                    choices=tuple(SAMPLERS), section="optuna_config")
def _no_random_start(config):
    from ..base import get_backend

    if get_backend(config.backend).random_start(config) is None:
        return ("sizes the random start of a searcher that models (optuna's tpe, gp or cmaes sampler; ray_tune's "
                "optuna, hyperopt or ax search_alg): this study's searcher has none")
    return None


STARTUP_FLAG = Flag("n_startup_trials", "n_startup_trials", "trials a model-based searcher (optuna tpe / gp / cmaes, "
                    "ray_tune hyperopt / ax) proposes at random before it models; default: a quarter of the study's "
                    "expected trials, at least 2, at most the library's own number", type=int,
                    section="optuna_config", unused=_no_random_start)
FLAGS = (
    SAMPLER_FLAG,
    STARTUP_FLAG,
    Flag("pruner", "pruner", "optuna pruner", choices=tuple(PRUNERS)),
    Flag("storage", "storage", "optuna: database URL (sqlite:///hpo.db) or journal file shared by runs and "
                               "processes; running again continues the study"),
)


def _check(config, given: Mapping[str, Any]) -> None:
    """A multi-objective study prunes nothing: the pruner defaults to "none" there, and any
    other pruner the user asked for is an error rather than silently ignored."""
    oc = config.optuna_config
    if len(config.objectives) > 1:
        pruner = given.get("pruner", "none")
        if pruner != "none":
            raise ValueError(f"optuna_config['pruner']={pruner!r} needs a single objective (Optuna cannot prune "
                             "multi-objective studies); set it to 'none' or leave it unset")
        oc["pruner"] = "none"


def _describe(config) -> str:
    oc = config.optuna_config
    from ...masking import masked

    return f"optuna: sampler={oc['sampler']} pruner={oc['pruner']} seed={config.seed} storage={masked(oc['storage'])}"


def _compiled(config, space) -> str:
    from .pruners import build_pruner
    from .samplers import check_sampler

    check_sampler(config.optuna_config, len(config.objectives))
    build_pruner(config.optuna_config, 1, 1)
    from .space import to_optuna

    return f"optuna distributions: {len(to_optuna(space))}"


def _optuna_storage(config):
    return config.optuna_config["storage"]


def _cannot_resume(config):
    if config.optuna_config["storage"] is None:
        return ("resuming an Optuna study needs a persistent optuna_config['storage'] (--storage "
                "sqlite:///hpo.db): a study in memory left nothing to continue")
    return None


def _told(config) -> bool:
    """An earlier study's trials are told to every sampler (the study's own finished trials:
    add_trials), as the sampler would have seen them had they run here."""
    return True


BACKEND = Backend(name="optuna", section="optuna_config", settings=SETTINGS,
                  runner="stateset_hpo.search.optuna.backend:run_optuna", describe=_describe, compiled=_compiled,
                  flags=FLAGS, check=_check, multi_objective=True, optuna_storage=_optuna_storage,
                  cannot_resume=_cannot_resume, takes_observations=_told,
                  random_start=lambda config: starts_at_random(config.optuna_config))
