"""The ten predefined spaces match the user guide exactly; the registry works and fails clearly."""

import pytest

from stateset_hpo import SearchDimension as D
from stateset_hpo import SearchSpace, get_search_space, list_search_spaces, register_search_space
from stateset_hpo import SearchSpaceType as T
from stateset_hpo import search_spaces as ss

LU, U, C, CAT = "loguniform", "uniform", "choice", "categorical"
# Transcribed from the StateSet Agents HPO guide's predefined spaces: name -> (type, low, high) or (type, choices).
GRPO = {
    "learning_rate": (LU, 1e-6, 1e-3), "value_lr_multiplier": (U, 0.5, 2.0),
    "per_device_train_batch_size": (C, [1, 2, 4, 8, 16]), "gradient_accumulation_steps": (C, [1, 2, 4, 8, 16]),
    "group_size": (C, [4, 8, 16, 32]), "gamma": (U, 0.9, 0.999), "gae_lambda": (U, 0.9, 0.99),
    "kl_penalty_coef": (LU, 0.001, 0.1), "max_grad_norm": (U, 0.5, 2.0),
    "num_episodes": (C, [100, 200, 500, 1000]), "warmup_ratio": (U, 0.0, 0.2),
}
OPTIMIZER = {
    "optimizer_type": (CAT, ["adamw", "adam", "sgd", "adafactor"]), "adam_beta1": (U, 0.85, 0.95),
    "adam_beta2": (U, 0.95, 0.999), "adam_epsilon": (LU, 1e-9, 1e-7), "weight_decay": (LU, 1e-4, 1e-1),
}
ARCHITECTURE = {
    "lora_r": (C, [8, 16, 32, 64]), "lora_alpha": (C, [8, 16, 32, 64]), "lora_dropout": (U, 0.0, 0.2),
    "value_head_hidden_size": (C, [128, 256, 512, 1024]), "value_head_dropout": (U, 0.0, 0.3),
}
GENERATION = {
    "temperature": (U, 0.7, 1.5), "top_p": (U, 0.8, 0.99), "top_k": (C, [0, 10, 20, 50, 100]),
    "max_new_tokens": (C, [128, 256, 512, 1024]), "repetition_penalty": (U, 1.0, 1.3),
}
EXPECTED = {
    "grpo": GRPO,
    "optimizer": OPTIMIZER,
    "architecture": ARCHITECTURE,
    "generation": GENERATION,
    "full": {**GRPO, **OPTIMIZER, **ARCHITECTURE, **GENERATION},
    "customer_service": {**GRPO, "helpfulness_weight": (U, 0.2, 0.5), "safety_weight": (U, 0.15, 0.35),
                         "engagement_weight": (U, 0.15, 0.3), "conciseness_weight": (U, 0.15, 0.3)},
    "technical_support": {**GRPO, "correctness_weight": (U, 0.3, 0.5), "helpfulness_weight": (U, 0.2, 0.4),
                          "detail_level": (CAT, ["brief", "moderate", "detailed"])},
    "sales_assistant": {**GRPO, "engagement_weight": (U, 0.3, 0.5), "persuasiveness_weight": (U, 0.2, 0.4),
                        "task_completion_weight": (U, 0.2, 0.4)},
    "conservative": {"learning_rate": (LU, 1e-6, 1e-5), "kl_penalty_coef": (U, 0.05, 0.15),
                     "gamma": (U, 0.95, 0.99), "max_grad_norm": (U, 0.8, 1.5)},
    "aggressive": {"learning_rate": (LU, 5e-6, 1e-3), "kl_penalty_coef": (LU, 0.001, 0.05),
                   "gamma": (U, 0.9, 0.999), "temperature": (U, 0.5, 2.0)},
}


def as_table(space):
    return {d.name: (d.type.value, d.low, d.high) if d.is_range else (d.type.value, list(d.choices)) for d in space}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_predefined_space_matches_the_guide(name):
    space = get_search_space(name)
    assert as_table(space) == EXPECTED[name]
    space.validate_point(space.baseline())  # every dimension has a usable default


def test_the_ten_names_are_listed():
    assert list_search_spaces()[:10] == list(EXPECTED)


def test_grpo_flags_add_and_remove_their_dimensions():
    plain = ss.create_grpo_search_space(include_value_function=False, include_kl_penalty=False)
    assert not {"value_lr_multiplier", "gamma", "gae_lambda", "kl_penalty_coef", "clip_range"} & set(plain.names)
    clipped = ss.create_grpo_search_space(include_ppo_clipping=True)
    assert as_table(clipped)["clip_range"] == (U, 0.1, 0.3)
    assert set(clipped.names) == set(GRPO) | {"clip_range"}


def test_full_flags_pick_the_sub_spaces():
    assert set(ss.create_full_search_space(False, False, False).names) == set(GRPO)
    assert set(ss.create_full_search_space(include_optimizer=False).names) == set(GRPO) | set(ARCHITECTURE) | set(GENERATION)


def test_each_call_returns_an_independent_space():
    a, b = get_search_space("grpo"), get_search_space("grpo")
    assert a == b and a is not b


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        get_search_space("grp")
    assert "unknown search space 'grp'" in str(info.value) and "customer_service" in str(info.value)


def test_users_register_their_own_spaces():
    mine = SearchSpace([D("lr", T.LOGUNIFORM, low=1e-5, high=1e-3)])
    register_search_space("mine_test", mine)
    try:
        assert get_search_space("mine_test") == mine and "mine_test" in list_search_spaces()
        with pytest.raises(ValueError, match="already registered"):
            register_search_space("mine_test", mine)
        register_search_space("mine_test", lambda: get_search_space("grpo").subset(["learning_rate"]), overwrite=True)
        assert get_search_space("mine_test").names == ["learning_rate"]
        with pytest.raises(ValueError, match="built-in"):
            register_search_space("grpo", mine)
        with pytest.raises(ValueError, match="SearchSpace or a function"):
            register_search_space("bad_test", 42)
        register_search_space("bad_factory_test", lambda: "oops")
        with pytest.raises(ValueError, match="not a SearchSpace"):
            get_search_space("bad_factory_test")
    finally:
        for name in ("mine_test", "bad_factory_test"):
            if name in list_search_spaces():
                ss.unregister_search_space(name)
