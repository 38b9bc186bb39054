"""Warm trials: LoRA trials in one process borrow one loaded base model (grpo/model_pool.py)
and train exactly as they would on a freshly loaded one."""

import threading

from helpers import tiny_spec

from stateset_hpo.grpo import model_pool
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


def test_a_warm_trial_trains_exactly_as_a_cold_one_and_reuses_the_loaded_model():
    spec = tiny_spec(num_episodes=16, include_value_function=True)
    model_pool.release_all()
    cold, first = trained(spec, {"learning_rate": 1e-3})
    other, second = trained(spec, {"learning_rate": 3e-4, "lora_r": 8})  # another adapter in between
    warm, third = trained(spec, {"learning_rate": 1e-3})
    assert first is second is third  # one loaded base model for the three trials
    assert warm == cold and other != cold
    assert not hasattr(third.model, "peft_config")  # given back without the last trial's adapter


def test_full_fine_tuning_always_loads_its_own_model():
    spec = tiny_spec(num_episodes=8, use_lora=False)
    model_pool.release_all()
    _, first = trained(spec, {"learning_rate": 1e-5})
    _, second = trained(spec, {"learning_rate": 1e-5})
    assert first is not second  # its weights were trained: never lent again


def test_trials_running_at_once_each_borrow_a_model_and_the_pool_stays_that_size():
    spec = tiny_spec(num_episodes=8)
    model_pool.release_all()
    agents = []

    def trial():
        agents.append(trained(spec, {"learning_rate": 1e-3})[1])

    for _ in range(3):  # three rounds of two concurrent trials
        threads = [threading.Thread(target=trial) for _ in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    assert len({id(a) for a in agents}) == 2  # two models in all, not six


def test_another_base_model_releases_the_loaded_one():
    import dataclasses

    spec = tiny_spec(num_episodes=8)
    model_pool.release_all()
    _, first = trained(spec, {"learning_rate": 1e-3})
    other = dataclasses.replace(spec, agent_config=dataclasses.replace(spec.agent_config, max_prompt_length=256))
    trained(other, {"learning_rate": 1e-3})
    _, again = trained(spec, {"learning_rate": 1e-3})
    assert again is not first  # the first base model was let go when another was asked for
