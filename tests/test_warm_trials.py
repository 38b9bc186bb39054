"""Warm trials: LoRA trials in one process share one loaded base model (grpo/model_pool.py),
train exactly as they would on a freshly loaded one, and never change it."""

import dataclasses
import threading

import torch
from helpers import tiny_spec

from stateset_hpo.grpo import MultiTurnAgent, model_pool
from stateset_hpo.grpo.agent import without_lora_layers
from stateset_hpo.trial import run_trial

TIMING = {"step_time", "rollout_time", "tokens_per_s"}  # wall-clock figures, different each run


def trained(spec, params):
    """The trial's metrics without its timings, and the agent it trained."""
    rows, agents = [], []

    def report(metrics, trainer):
        rows.append({k: v for k, v in metrics.items() if k not in TIMING})
        agents.append(trainer.agent)
        return False

    run_trial(spec, params, report)
    return rows, agents[0]


def weights(agent):
    """The storage of every base weight the agent's model computes with (adapters excluded)."""
    return {name.replace("base_model.model.", "").replace(".base_layer", ""): p.data_ptr()
            for name, p in agent.model.named_parameters() if "lora_" not in name}


def test_a_warm_trial_trains_exactly_as_a_cold_one_on_the_same_loaded_weights():
    spec = tiny_spec(num_episodes=16, include_value_function=True)
    model_pool.release_all()
    cold, first = trained(spec, {"learning_rate": 1e-3})
    other, second = trained(spec, {"learning_rate": 3e-4, "lora_r": 8})  # another adapter in between
    warm, third = trained(spec, {"learning_rate": 1e-3})
    assert warm == cold and other != cold
    assert weights(first) == weights(second) == weights(third)  # one loaded base model for the three trials
    fresh = MultiTurnAgent(spec.agent_config).initialize().model.state_dict()
    loaded = model_pool._loaded(spec.agent_config).model.state_dict()
    assert all(torch.equal(fresh[k], loaded[k]) for k in fresh)  # and the trials left it as loaded


def test_full_fine_tuning_always_loads_its_own_model():
    spec = tiny_spec(num_episodes=8, use_lora=False)
    model_pool.release_all()
    _, first = trained(spec, {"learning_rate": 1e-5})
    _, second = trained(spec, {"learning_rate": 1e-5})
    assert not set(weights(first).values()) & set(weights(second).values())  # its weights were trained


def test_trials_running_at_once_hold_the_base_weights_in_memory_once():
    spec = tiny_spec(num_episodes=8)
    model_pool.release_all()
    agents = []

    def trial(rate):
        agents.append(trained(spec, {"learning_rate": rate})[1])

    threads = [threading.Thread(target=trial, args=(rate,)) for rate in (1e-3, 3e-4, 1e-4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(agents) == 3 and weights(agents[0]) == weights(agents[1]) == weights(agents[2])
    assert len({id(a.model) for a in agents}) == 3  # each its own modules and adapter


def test_generating_with_one_trials_adapter_does_not_change_what_another_trial_sees():
    from peft import LoraConfig, get_peft_model

    spec = tiny_spec()
    model_pool.release_all()
    one, two = model_pool.agent_for_trial(spec.agent_config), model_pool.agent_for_trial(spec.agent_config)
    adapted = get_peft_model(one.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    ids = torch.tensor([[5, 6, 7, 8]])
    before = two.model(ids).logits
    with without_lora_layers(adapted, merge=True):  # the update folded in for a rollout
        assert not torch.equal(adapted(ids).logits, before)
        assert torch.equal(two.model(ids).logits, before)


def test_another_base_model_releases_the_loaded_one():
    spec = tiny_spec(num_episodes=8)
    model_pool.release_all()
    _, first = trained(spec, {"learning_rate": 1e-3})
    other = dataclasses.replace(spec, agent_config=dataclasses.replace(spec.agent_config, max_prompt_length=256))
    trained(other, {"learning_rate": 1e-3})
    _, again = trained(spec, {"learning_rate": 1e-3})
    assert weights(again) != weights(first)  # the first base model was let go when another was asked for


def test_a_gradient_checkpointing_trial_leaves_the_next_trial_without_it():
    spec = tiny_spec(num_episodes=8)
    model_pool.release_all()
    checkpointing = dataclasses.replace(spec, base_config=dataclasses.replace(spec.base_config,
                                                                              gradient_checkpointing=True))
    _, first = trained(checkpointing, {"learning_rate": 1e-3})
    _, second = trained(spec, {"learning_rate": 1e-3})
    assert weights(first) == weights(second)  # the same loaded base model
    assert any(getattr(m, "gradient_checkpointing", False) for m in first.model.modules())
    assert not any(getattr(m, "gradient_checkpointing", False) for m in second.model.modules())
