"""The predefined search spaces of the user guide, and a registry for users' own.

Names, types and ranges follow the guide (the StateSet Agents HPO guide) exactly;
tests/test_search_spaces.py holds them as the guide writes them. Each dimension
carries a default; together the defaults are the search's first trial, a known-reasonable
starting point (the baseline a study is judged against is the base training configuration:
see validation.py).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Union

from .dimension import SearchDimension as D
from .dimension import SearchSpaceType as T
from .search_space import SearchSpace


# -- algorithm spaces ------------------------------------------------------------------------
def create_grpo_search_space(include_value_function: bool = True, include_kl_penalty: bool = True,
                             include_ppo_clipping: bool = False) -> SearchSpace:
    """Core GRPO parameters; the flags add the value function, KL penalty and PPO clip knobs."""
    dims = [D("learning_rate", T.LOGUNIFORM, low=1e-6, high=1e-3, default=1e-5,
              description="policy learning rate")]
    if include_value_function:
        dims.append(D("value_lr_multiplier", T.UNIFORM, low=0.5, high=2.0, default=1.0,
                      description="value head learning rate = learning_rate x this"))
    dims += [
        D("per_device_train_batch_size", T.CHOICE, choices=[1, 2, 4, 8, 16], default=4),
        D("gradient_accumulation_steps", T.CHOICE, choices=[1, 2, 4, 8, 16], default=1),
        D("group_size", T.CHOICE, choices=[4, 8, 16, 32], default=8,
          description="completions sampled per prompt"),
    ]
    if include_value_function:
        dims += [
            D("gamma", T.UNIFORM, low=0.9, high=0.999, default=0.99, description="discount over turns"),
            D("gae_lambda", T.UNIFORM, low=0.9, high=0.99, default=0.95),
        ]
    if include_kl_penalty:
        dims.append(D("kl_penalty_coef", T.LOGUNIFORM, low=0.001, high=0.1, default=0.01,
                      description="weight of the KL penalty to the reference policy"))
    if include_ppo_clipping:
        dims.append(D("clip_range", T.UNIFORM, low=0.1, high=0.3, default=0.2))
    dims += [
        D("max_grad_norm", T.UNIFORM, low=0.5, high=2.0, default=1.0),
        D("num_episodes", T.CHOICE, choices=[100, 200, 500, 1000], default=100,
          description="training budget of a trial"),
        D("warmup_ratio", T.UNIFORM, low=0.0, high=0.2, default=0.05),
    ]
    return SearchSpace(dims)


def create_optimizer_search_space() -> SearchSpace:
    return SearchSpace([
        D("optimizer_type", T.CATEGORICAL, choices=["adamw", "adam", "sgd", "adafactor"], default="adamw"),
        D("adam_beta1", T.UNIFORM, low=0.85, high=0.95, default=0.9),
        D("adam_beta2", T.UNIFORM, low=0.95, high=0.999, default=0.99),
        D("adam_epsilon", T.LOGUNIFORM, low=1e-9, high=1e-7, default=1e-8),
        D("weight_decay", T.LOGUNIFORM, low=1e-4, high=1e-1, default=1e-2),
    ])


def create_model_architecture_search_space() -> SearchSpace:
    """LoRA adapter and value head shape."""
    return SearchSpace([
        D("lora_r", T.CHOICE, choices=[8, 16, 32, 64], default=16),
        D("lora_alpha", T.CHOICE, choices=[8, 16, 32, 64], default=32),
        D("lora_dropout", T.UNIFORM, low=0.0, high=0.2, default=0.05),
        D("value_head_hidden_size", T.CHOICE, choices=[128, 256, 512, 1024], default=256),
        D("value_head_dropout", T.UNIFORM, low=0.0, high=0.3, default=0.1),
    ])


def create_generation_search_space() -> SearchSpace:
    """Sampling parameters of the rollouts."""
    return SearchSpace([
        D("temperature", T.UNIFORM, low=0.7, high=1.5, default=1.0),
        D("top_p", T.UNIFORM, low=0.8, high=0.99, default=0.95),
        D("top_k", T.CHOICE, choices=[0, 10, 20, 50, 100], default=50, description="0 disables top-k"),
        D("max_new_tokens", T.CHOICE, choices=[128, 256, 512, 1024], default=256),
        D("repetition_penalty", T.UNIFORM, low=1.0, high=1.3, default=1.0),
    ])


def create_full_search_space(include_optimizer: bool = True, include_architecture: bool = True,
                             include_generation: bool = True) -> SearchSpace:
    """GRPO (value function and KL on) plus the optimizer, architecture and generation spaces."""
    space = create_grpo_search_space(include_value_function=True, include_kl_penalty=True)
    if include_optimizer:
        space = space | create_optimizer_search_space()
    if include_architecture:
        space = space | create_model_architecture_search_space()
    if include_generation:
        space = space | create_generation_search_space()
    return space


# -- domain spaces: GRPO plus the reward weights of the domain --------------------------------
def create_customer_service_search_space() -> SearchSpace:
    return create_grpo_search_space() | SearchSpace([
        D("helpfulness_weight", T.UNIFORM, low=0.2, high=0.5, default=0.35),
        D("safety_weight", T.UNIFORM, low=0.15, high=0.35, default=0.25),
        D("engagement_weight", T.UNIFORM, low=0.15, high=0.3, default=0.2),
        D("conciseness_weight", T.UNIFORM, low=0.15, high=0.3, default=0.2),
    ])


def create_technical_support_search_space() -> SearchSpace:
    return create_grpo_search_space() | SearchSpace([
        D("correctness_weight", T.UNIFORM, low=0.3, high=0.5, default=0.4),
        D("helpfulness_weight", T.UNIFORM, low=0.2, high=0.4, default=0.3),
        D("detail_level", T.CATEGORICAL, choices=["brief", "moderate", "detailed"], default="moderate"),
    ])


def create_sales_assistant_search_space() -> SearchSpace:
    return create_grpo_search_space() | SearchSpace([
        D("engagement_weight", T.UNIFORM, low=0.3, high=0.5, default=0.4),
        D("persuasiveness_weight", T.UNIFORM, low=0.2, high=0.4, default=0.3),
        D("task_completion_weight", T.UNIFORM, low=0.2, high=0.4, default=0.3),
    ])


# -- training profiles -------------------------------------------------------------------------
def create_conservative_search_space() -> SearchSpace:
    """Narrow ranges around safe values, for production runs where stability matters."""
    return SearchSpace([
        D("learning_rate", T.LOGUNIFORM, low=1e-6, high=1e-5, default=3e-6),
        D("kl_penalty_coef", T.UNIFORM, low=0.05, high=0.15, default=0.1),
        D("gamma", T.UNIFORM, low=0.95, high=0.99, default=0.98),
        D("max_grad_norm", T.UNIFORM, low=0.8, high=1.5, default=1.0),
    ])


def create_aggressive_search_space() -> SearchSpace:
    """Wide ranges, for exploring a new domain."""
    return SearchSpace([
        D("learning_rate", T.LOGUNIFORM, low=5e-6, high=1e-3, default=1e-4),
        D("kl_penalty_coef", T.LOGUNIFORM, low=0.001, high=0.05, default=0.01),
        D("gamma", T.UNIFORM, low=0.9, high=0.999, default=0.99),
        D("temperature", T.UNIFORM, low=0.5, high=2.0, default=1.0),
    ])


# -- TRL's GRPOTrainer (engine "trl": names are GRPOConfig fields) --------------------------------
def create_trl_search_space() -> SearchSpace:
    """The knobs GRPO papers show matter, by TRL's names: learning rate, KL weight (beta), the
    clip range and DAPO's higher upper clip (epsilon / epsilon_high: they act with
    num_iterations 2, several updates per generation), the loss aggregation
    (grpo / dr_grpo / dapo), reward scaling, group size and sampling temperature. Defaults are
    TRL's own (learning rate aside: 1e-5, the grpo space's default; TRL's 1e-6 barely moves a
    LoRA adapter). The ranges of epsilon and epsilon_high do not overlap, so every point keeps
    epsilon_high >= epsilon."""
    return SearchSpace([
        D("learning_rate", T.LOGUNIFORM, low=1e-6, high=1e-3, default=1e-5),
        D("beta", T.CHOICE, choices=[0.0, 0.001, 0.01, 0.04, 0.1], default=0.0,
          description="KL weight; 0 loads no reference model (TRL's default)"),
        D("epsilon", T.UNIFORM, low=0.1, high=0.25, default=0.2),
        D("epsilon_high", T.UNIFORM, low=0.25, high=0.4, default=0.28, description="DAPO's upper clip"),
        D("num_iterations", T.CHOICE, choices=[1, 2], default=1, description="updates per generation"),
        D("loss_type", T.CATEGORICAL, choices=["grpo", "dr_grpo", "dapo"], default="dapo"),
        D("scale_rewards", T.CATEGORICAL, choices=["group", "batch", "none"], default="group"),
        D("num_generations", T.CHOICE, choices=[4, 8], default=8, description="completions per prompt"),
        D("temperature", T.UNIFORM, low=0.7, high=1.2, default=1.0),
    ])


# -- registry ----------------------------------------------------------------------------------
SpaceFactory = Callable[[], SearchSpace]

_BUILTIN: Dict[str, SpaceFactory] = {
    "grpo": create_grpo_search_space,
    "optimizer": create_optimizer_search_space,
    "architecture": create_model_architecture_search_space,
    "generation": create_generation_search_space,
    "full": create_full_search_space,
    "customer_service": create_customer_service_search_space,
    "technical_support": create_technical_support_search_space,
    "sales_assistant": create_sales_assistant_search_space,
    "conservative": create_conservative_search_space,
    "aggressive": create_aggressive_search_space,
    "trl": create_trl_search_space,
}
_registry: Dict[str, SpaceFactory] = dict(_BUILTIN)


def list_search_spaces() -> List[str]:
    """Names that `get_search_space` accepts: the ten built-in ones and any registered."""
    return list(_registry)


def list_available_search_spaces() -> List[str]:
    """`list_search_spaces` (the replaced system's name for it)."""
    return list_search_spaces()


def get_search_space(name: str) -> SearchSpace:
    """A fresh copy of the named space."""
    if name not in _registry:
        raise ValueError(f"unknown search space {name!r}; valid names: {', '.join(_registry)}")
    space = _registry[name]()
    if not isinstance(space, SearchSpace):
        raise ValueError(f"search space factory for {name!r} returned {type(space).__name__}, not a SearchSpace")
    return space


def register_search_space(name: str, space: Union[SearchSpace, SpaceFactory], overwrite: bool = False) -> None:
    """Make ``name`` usable wherever a predefined space name is (HPOConfig, the CLI).

    ``space`` is a SearchSpace or a function returning one. Built-in names cannot be
    replaced; a registered name can with ``overwrite=True``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a search space name must be a non-empty string, got {name!r}")
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in search space and cannot be replaced; choose another name")
    if name in _registry and not overwrite:
        raise ValueError(f"search space {name!r} is already registered; pass overwrite=True to replace it")
    if isinstance(space, SearchSpace):
        frozen = space
        factory: SpaceFactory = lambda: frozen  # SearchSpace is immutable, sharing it is safe
    elif callable(space):
        factory = space
    else:
        raise ValueError(f"register a SearchSpace or a function returning one, got {space!r}")
    _registry[name] = factory


def unregister_search_space(name: str) -> None:
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in search space and cannot be removed")
    if name not in _registry:
        raise ValueError(f"search space {name!r} is not registered")
    del _registry[name]
