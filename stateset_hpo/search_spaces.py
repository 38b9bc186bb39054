"""The guide's import path for the predefined spaces (``from training.hpo.search_spaces import
...``); they live in `stateset_hpo.space.presets`, next to the space language."""

from .space.presets import (create_aggressive_search_space, create_conservative_search_space,
                            create_customer_service_search_space, create_full_search_space,
                            create_generation_search_space, create_grpo_search_space,
                            create_model_architecture_search_space, create_optimizer_search_space,
                            create_sales_assistant_search_space, create_technical_support_search_space,
                            get_search_space, list_available_search_spaces, list_search_spaces,
                            register_search_space, unregister_search_space)

__all__ = ["create_aggressive_search_space", "create_conservative_search_space",
           "create_customer_service_search_space", "create_full_search_space", "create_generation_search_space",
           "create_grpo_search_space", "create_model_architecture_search_space", "create_optimizer_search_space",
           "create_sales_assistant_search_space", "create_technical_support_search_space", "get_search_space",
           "list_available_search_spaces", "list_search_spaces", "register_search_space", "unregister_search_space"]
