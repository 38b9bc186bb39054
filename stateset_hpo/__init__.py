"""stateset-hpo: hyperparameter optimisation for GRPO fine-tuning of conversational agents.

Data flow, one subpackage or module per step:
space (search-space language) -> search (backends) -> trial (GRPO engine) -> report -> summary.
"""

from .callbacks import HPOCallback
from .config import HPOConfig, get_hpo_config, list_hpo_profiles
from .results import HPOResult, HPOSummary, TrialStatus
from .space.presets import get_search_space, list_available_search_spaces, list_search_spaces, register_search_space
from .space import SearchDimension, SearchSpace, SearchSpaceType
from .library_logs import drop_known_noise

__version__ = "0.1.0"

drop_known_noise()  # (here, so that every process that imports any of our modules has it)


def __getattr__(name: str):
    """GRPOHPOTrainer and quick_hpo load the engine (torch), so they are imported on first use:
    `import stateset_hpo` and the CLI's input checks stay fast."""
    if name in ("GRPOHPOTrainer", "quick_hpo"):
        from . import hpo_trainer

        return getattr(hpo_trainer, name)
    raise AttributeError(f"module 'stateset_hpo' has no attribute {name!r}")


__all__ = [
    "GRPOHPOTrainer",
    "HPOCallback",
    "HPOConfig",
    "HPOResult",
    "HPOSummary",
    "SearchDimension",
    "SearchSpace",
    "SearchSpaceType",
    "TrialStatus",
    "get_hpo_config",
    "quick_hpo",
    "get_search_space",
    "list_available_search_spaces",
    "list_hpo_profiles",
    "list_search_spaces",
    "register_search_space",
]
