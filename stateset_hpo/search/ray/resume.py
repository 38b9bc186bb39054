"""What a resumed Ray study must share with the run it continues, saved beside Tune's
experiment state and checked before any cluster work: Tune restores its searcher and scheduler
from the saved state, so other settings would silently mix two studies."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict

from ...shared_storage import read_text

if TYPE_CHECKING:
    from ...config import HPOConfig
    from ...space import SearchSpace

SETTINGS_FILE = "stateset_hpo_study.json"  # beside Tune's experiment state
# what a resumed study must share with the run it continues (Tune restores its searcher and
# scheduler from the saved state; other values would silently mix two studies)
RESUME_KEYS = ("scheduler", "search_alg", "execution", "workers_per_trial", "grace_period", "reduction_factor",
               "max_t", "perturbation_interval")


def study_settings(config: "HPOConfig", space: "SearchSpace") -> Dict[str, Any]:
    settings = {"search_space": space.to_dict(), "objective_metric": config.objective_metric,
                "direction": config.direction, "n_trials": config.n_trials, "grid_points": config.grid_points,
                "seed": config.seed, **{key: config.ray_config[key] for key in RESUME_KEYS}}
    return json.loads(json.dumps(settings))  # as stored


def check_resumable(experiment: str, settings: Dict[str, Any]) -> None:
    """Resuming with other settings than the study was started with is an error naming them."""
    saved = read_text(f"{experiment}/{SETTINGS_FILE}")
    if saved is None:  # (nothing to resume is Tune's own, clear, error)
        return
    before = json.loads(saved)
    changed = [key for key in settings if before.get(key) != settings[key]]
    if changed:
        said = ["the search space" if key == "search_space" else f"{key} (was {before.get(key)!r}, now "
                f"{settings[key]!r})" for key in changed]
        raise ValueError(f"the study at {experiment!r} was started with other settings: {', '.join(said)}; resume "
                         "it with the settings it was started with, or start a new study (another --study-name)")
