"""stateset-hpo: hyperparameter optimisation for GRPO fine-tuning of conversational agents.

Data flow, one subpackage or module per step:
space (search-space language) -> search (backends) -> trial (GRPO engine) -> report -> summary.
"""

from .callbacks import HPOCallback
from .config import HPOConfig, get_hpo_config, list_hpo_profiles
from .results import HPOResult, HPOSummary, TrialStatus
from .search_spaces import get_search_space, list_search_spaces, register_search_space
from .space import SearchDimension, SearchSpace, SearchSpaceType

__version__ = "0.1.0"

__all__ = [
    "HPOCallback",
    "HPOConfig",
    "HPOResult",
    "HPOSummary",
    "SearchDimension",
    "SearchSpace",
    "SearchSpaceType",
    "TrialStatus",
    "get_hpo_config",
    "get_search_space",
    "list_hpo_profiles",
    "list_search_spaces",
    "register_search_space",
]
