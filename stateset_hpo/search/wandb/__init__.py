"""The W&B Sweeps backend: the study as a W&B sweep, offline by default (W&B's open `sweeps`
engine proposes in this process), online with an API key. `backend.py` runs it."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from ...checks import check_section, integer, one_of, optional_str
from .space import WANDB_METHODS
from ..base import Backend, Flag, Settings, check_grid_fits

EARLY_TERMINATE = ("hyperband",)  # the early-termination types W&B sweeps have

_EARLY_TERMINATE_SPEC: Settings = {
    "type": (None, one_of(EARLY_TERMINATE)),
    "min_iter": (None, integer(1)),
    "max_iter": (None, integer(1)),
    "eta": (None, integer(2)),
    "s": (None, integer(1)),
}


def _early_terminate(value: Any) -> Optional[Dict[str, Any]]:
    """W&B's early_terminate block: {type: hyperband, min_iter, eta} (min_iter/eta optional).
    Its clock is W&B's: the iteration (trial reports), not episodes."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a mapping such as {{'type': 'hyperband', 'min_iter': 3}}, got {value!r}")
    out = check_section("early_terminate", value, _EARLY_TERMINATE_SPEC, fill_defaults=False)
    if "type" not in out:
        raise ValueError(f"needs a 'type' ({', '.join(EARLY_TERMINATE)})")
    return out


SETTINGS: Settings = {
    "method": ("bayes", one_of(WANDB_METHODS)),
    "project": ("stateset-hpo", optional_str),
    "entity": (None, optional_str),
    "early_terminate": (None, _early_terminate),
}
FLAGS = (Flag("sweep_method", "method", "wandb: sweep method (default: bayes)", choices=WANDB_METHODS),)


def _check(config, given: Mapping[str, Any]) -> None:
    """W&B's grid enumerates every point up front: a grid larger than the study is refused
    here (a large one would exhaust memory), and so is a warm start of a grid (it runs every
    point whatever came before). A project or entity given for W&B on another
    backend's study is where its logged trials were meant to go: that is wandb_logging's,
    and silently logging elsewhere would lose them."""
    if config.backend == "wandb" and config.warm_start and config.wandb_config["method"] == "grid":
        raise ValueError("a grid runs every point of its grid, whatever an earlier study found: a warm start cannot "
                         "order it; use method random or bayes with warm_start")
    moved = [k for k in ("project", "entity") if k in given and given[k] != SETTINGS[k][0]]
    if config.backend != "wandb" and config.log_to_wandb and moved:
        raise ValueError(f"wandb_config[{moved[0]!r}] configures the W&B sweep backend; to log the trials of this "
                         f"{config.backend} study to W&B, set wandb_logging={{{moved[0]!r}: {given[moved[0]]!r}}}")
    if config.backend == "wandb" and config.wandb_config["method"] == "grid":
        check_grid_fits(config)


def _describe(config) -> str:
    from ...wandb_runs import wandb_mode

    wc = config.wandb_config
    return f"wandb: method={wc['method']} seed={config.seed} early_terminate={wc['early_terminate']} " \
           f"project={wc['project']} mode={wandb_mode()}"


def _compiled(config, space) -> str:
    from .backend import sweep_config

    sweep = sweep_config(config, space)  # validated against W&B's own sweep schema
    return f"W&B sweep parameters ({sweep['method']}): {len(sweep['parameters'])}"


def _cannot_resume(config):
    return ("the wandb backend cannot resume a study; start a new one (or use backend 'optuna' with a storage, or "
            "'ray_tune')")


BACKEND = Backend(name="wandb", section="wandb_config", settings=SETTINGS,
                  runner="stateset_hpo.search.wandb.backend:run_wandb", describe=_describe, compiled=_compiled,
                  flags=FLAGS, check=_check, cannot_resume=_cannot_resume)
