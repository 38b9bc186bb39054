"""The GRPO engine on the tiny model: metrics, checkpoints, determinism, batch semantics,
every search-space parameter consumed, clear errors before training, divergence."""

import asyncio
import math

import pytest
import torch

from stateset_hpo import get_search_space
from stateset_hpo.grpo import (AgentConfig, CompositeReward, ConversationEnvironment, DivergenceError,
                               MultiTurnAgent, MultiTurnGRPOTrainer, TrainingConfig, domain_reward, make_reward)
from stateset_hpo.grpo.rewards import Reward

SMALL = dict(num_episodes=8, per_device_train_batch_size=2, group_size=4, max_new_tokens=32, learning_rate=1e-3)
METRICS = {"reward", "eval_reward", "reward_std", "frac_reward_zero_std", "kl", "entropy", "clip_ratio", "loss",
           "grad_norm", "completion_length", "step_time", "tokens_per_s", "iteration", "episodes", "value_loss",
           "safety_score", "eval_safety_score"}


def make_trainer(domain="customer_service", reward=None, **overrides):
    config = TrainingConfig(**{**SMALL, **overrides})
    return MultiTurnGRPOTrainer(MultiTurnAgent(), ConversationEnvironment(domain),
                                reward or domain_reward(domain), config)


def trainable(trainer):
    return {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}


def test_every_iteration_reports_finite_metrics(tiny_model_path):
    trainer = make_trainer(num_episodes=16)
    history = list(trainer.iterate())
    assert len(history) == 2 and [m["iteration"] for m in history] == [1, 2]
    for metrics in history:
        assert METRICS <= set(metrics)
        assert all(math.isfinite(v) for v in metrics.values())
        assert 0.0 <= metrics["reward"] <= 1.0 and 0.0 <= metrics["eval_reward"] <= 1.0
    assert history[-1]["episodes"] == 16


def test_lora_reference_is_the_base_model_without_a_copy(tiny_model_path):
    trainer = make_trainer()
    assert trainer.reference is None  # the adapter is disabled instead
    first = trainer.train_step()
    assert abs(first["kl"]) < 1e-6  # LoRA starts as the identity: policy == reference
    trainer.config.num_episodes = 64
    for _ in range(3):
        last = trainer.train_step()
    assert last["kl"] > 1e-5


def test_checkpoint_2_plus_2_equals_4(tiny_model_path, tmp_path):
    straight = make_trainer(num_episodes=32, num_iterations=2, lora_dropout=0.0)
    four = [straight.train_step() for _ in range(4)]
    first = make_trainer(num_episodes=32, num_iterations=2, lora_dropout=0.0)
    first.train_step(), first.train_step()
    first.save_checkpoint(tmp_path / "ckpt")
    resumed = make_trainer(num_episodes=32, num_iterations=2, lora_dropout=0.0)
    resumed.load_checkpoint(tmp_path / "ckpt")
    assert resumed.step == 2 and len(resumed.history) == 2
    after = [resumed.train_step() for _ in range(2)]
    for expected, got in zip(four[2:], after):
        for key in ("reward", "eval_reward", "loss", "kl", "grad_norm", "value_loss"):
            assert got[key] == expected[key], key
    a, b = trainable(straight), trainable(resumed)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert torch.equal(straight.value_head.net[1].weight, resumed.value_head.net[1].weight)
    other = make_trainer(num_episodes=32, num_iterations=2, lora_dropout=0.0, learning_rate=5e-4)
    with pytest.raises(ValueError, match="different TrainingConfig.*learning_rate"):
        other.load_checkpoint(tmp_path / "ckpt")


def test_pbt_restore_takes_over_the_donor(tiny_model_path, tmp_path):
    """A PBT exploit: the donor's adapter, value head, optimizer state and step, under the
    exploiting trial's own (perturbed) hyperparameters."""
    donor = make_trainer(num_episodes=32)
    donor.train_step(), donor.train_step()
    donor.save_checkpoint(tmp_path / "donor")
    exploiter = make_trainer(num_episodes=32, learning_rate=2e-3, kl_penalty_coef=0.05)
    exploiter.load_checkpoint(tmp_path / "donor", same_config=False)
    assert exploiter.step == donor.step == 2 and len(exploiter.history) == 2
    a, b = trainable(donor), trainable(exploiter)
    assert all(torch.equal(a[n], b[n]) for n in a)
    donor_state = donor.optimizer.state_dict()["state"]
    mine = exploiter.optimizer.state_dict()["state"]
    assert all(torch.equal(donor_state[k]["exp_avg"], mine[k]["exp_avg"]) for k in donor_state)
    assert exploiter.optimizer.param_groups[0]["lr"] == 2e-3  # its own learning rate applies from here
    assert exploiter.train_step()["iteration"] == 3
    # the weights' schedule: the donor's config for iterations 1-2, the exploiter's from 3 on
    assert [(e["iteration"], e["config"]["learning_rate"], e["config"]["kl_penalty_coef"])
            for e in exploiter.config_schedule] == [(0, donor.config.learning_rate, donor.config.kl_penalty_coef),
                                                    (2, 2e-3, 0.05)]
    other = make_trainer(num_episodes=32, lora_r=8)
    with pytest.raises(ValueError, match="does not match this model's trainable weights"):
        other.load_checkpoint(tmp_path / "donor", same_config=False)


def test_seeded_runs_are_deterministic(tiny_model_path):
    run = lambda seed: [m["reward"] for m in make_trainer(num_episodes=16, seed=seed).iterate()]  # noqa: E731
    assert run(3) == run(3)
    assert run(3) != run(4)


@pytest.mark.parametrize("use_lora", [True, False])
def test_gradient_checkpointing_trains_the_same_keeping_fewer_activations(tiny_model_path, use_lora):
    def run(checkpointing):
        trainer = make_trainer(num_episodes=8, use_lora=use_lora, gradient_checkpointing=checkpointing)
        kept = []  # bytes autograd keeps for the backward pass (checkpointed layers keep their inputs only)
        with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t.numel() * t.element_size()) or t,
                                                      lambda t: t):
            metrics = trainer.train_step()
        return {k: v for k, v in metrics.items() if k not in ("step_time", "rollout_time", "tokens_per_s")}, sum(kept)

    (plain, plain_kept), (checkpointed, checkpointed_kept) = run(False), run(True)
    assert checkpointed == pytest.approx(plain, rel=1e-5, abs=1e-6)  # dropout masks replayed exactly
    assert checkpointed_kept < 0.6 * plain_kept


def test_batch_size_and_accumulation_change_the_batch(tiny_model_path):
    small = make_trainer(per_device_train_batch_size=1, gradient_accumulation_steps=1, num_episodes=4)
    big = make_trainer(per_device_train_batch_size=2, gradient_accumulation_steps=2, num_episodes=16)
    assert small.train_step()["episodes"] == 4 and big.train_step()["episodes"] == 16
    assert big.config.episodes_per_iteration == 16
    batches = big._micro_batches(big.rollout(big.environment.sample(4, big.rng), 4, big._sampling(True), big.reward, "moderate"))
    assert len(batches) == 2 and all(len(b.turns) == 2 * 4 * 2 for b in batches)  # 2 prompts x 4 x 2 turns


def test_every_parameter_of_the_full_and_domain_spaces_is_consumed(tiny_model_path):
    for name in ("full", "customer_service", "technical_support", "sales_assistant", "conservative", "aggressive"):
        params = get_search_space(name).baseline()
        config = TrainingConfig().with_params(params)
        for key, value in params.items():
            assert getattr(config, key) == value
    params = {**get_search_space("technical_support").baseline(), "detail_level": "brief", "correctness_weight": 0.5}
    trainer = make_trainer("technical_support", **{**params, **SMALL, "group_size": 4})
    assert trainer.reward.weights["correctness"] == 0.5
    episodes = trainer.rollout(trainer.environment.train_scenarios[:1], 2, trainer._sampling(True), trainer.reward,
                               trainer.config.detail_level)
    prompt = trainer.agent.tokenizer.decode(episodes[0].turns[0].prompt)
    assert "detail brief" in prompt


def test_parameters_that_map_to_nothing_are_errors():
    with pytest.raises(ValueError, match=r"\['learning_rat'\] map to nothing"):
        TrainingConfig().with_params({"learning_rat": 1e-4})
    with pytest.raises(ValueError, match="value function, which is off"):
        TrainingConfig(include_value_function=False).with_params({"gamma": 0.9})
    with pytest.raises(ValueError, match="name no component"):
        make_trainer("sales_assistant", safety_weight=0.3)  # the sales reward has no safety component


@pytest.mark.parametrize("kwargs, message", [
    (dict(group_size=1), "group_size must be an integer >= 2"),
    (dict(learning_rate=0), "learning_rate must be a number > 0"),
    (dict(optimizer_type="lion"), "optimizer_type must be one of adamw"),
    (dict(advantage_std="max"), "advantage_std"),
    (dict(clip_range=0.2, clip_range_high=0.1), "clip_range_high"),
    (dict(detail_level="verbose"), "detail_level"),
    (dict(eval_detail_level="verbose"), "eval_detail_level"),
    (dict(num_iterations=2, lora_dropout=0.1), "lora_dropout must be 0 when num_iterations > 1"),
    (dict(num_iterations=2, lora_dropout=0, gradient_checkpointing=True), "gradient_checkpointing needs num_iter"),
    (dict(gradient_checkpointing="yes"), "gradient_checkpointing must be"),
])
def test_bad_training_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**kwargs)


def test_bad_inputs_fail_before_training(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        MultiTurnAgent(AgentConfig(model_name=str(tmp_path / "missing-model"))).initialize()
    with pytest.raises(ValueError, match="dtype"):
        AgentConfig(dtype="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            MultiTurnAgent(AgentConfig(device="cuda")).initialize()
    with pytest.raises(ValueError, match="CompositeReward"):
        MultiTurnGRPOTrainer(MultiTurnAgent(), ConversationEnvironment("customer_service"), make_reward("safety"))


def test_agent_loads_through_from_pretrained_on_cpu_fp32(tiny_model_path):
    agent = MultiTurnAgent(AgentConfig(model_name=str(tiny_model_path))).initialize()
    assert agent.device.type == "cpu" and next(agent.model.parameters()).dtype == torch.float32
    reply = agent.respond([{"role": "user", "content": "i want a refund for my lamp ."}])
    assert isinstance(reply, str) and reply
    trainer = MultiTurnGRPOTrainer(agent, ConversationEnvironment("customer_service"),
                                   domain_reward("customer_service"), TrainingConfig(**SMALL))
    with pytest.raises(ValueError, match="already trained"):
        MultiTurnGRPOTrainer(trainer.agent, ConversationEnvironment("customer_service"),
                             domain_reward("customer_service"), TrainingConfig(**SMALL))


class NaNReward(Reward):
    name = "broken"

    def __call__(self, ctx):
        return float("nan")


def test_divergence_raises_instead_of_reporting_a_number(tiny_model_path):
    trainer = make_trainer(reward=CompositeReward([(NaNReward(), 1.0)]))
    with pytest.raises(DivergenceError, match="non-finite reward"):
        trainer.train_step()
    assert trainer.history == []


@pytest.mark.parametrize("overrides", [
    dict(optimizer_type="adam", include_value_function=False, advantage_std="batch", loss_type="dapo"),
    dict(optimizer_type="sgd", advantage_std="none", loss_type="dr_grpo", entropy_coef=0.01),
    dict(optimizer_type="adafactor", clip_range_high=0.28, num_iterations=2, lora_dropout=0.0, lr_scheduler_type="cosine"),
    dict(use_lora=False, learning_rate=1e-4, kl_penalty_coef=0.1),
])
def test_optimizer_families_and_objective_variants_train(tiny_model_path, overrides):
    trainer = make_trainer(**overrides)
    before = trainable(trainer)
    metrics = trainer.train_step()
    after = trainable(trainer)
    assert any(not torch.equal(before[n], after[n]) for n in before)
    assert all(math.isfinite(v) for v in metrics.values())
    if overrides.get("use_lora") is False:
        assert trainer.reference is not None and metrics["kl"] >= 0


def test_train_runs_inside_a_running_event_loop_and_callbacks_can_stop(tiny_model_path):
    seen = []
    trainer = make_trainer(num_episodes=32)
    trainer.callbacks.append(lambda m: seen.append(m["iteration"]) or m["iteration"] >= 2)

    async def main():
        ticks = 0
        task = asyncio.ensure_future(trainer.train())
        while not task.done():
            ticks += 1
            await asyncio.sleep(0.01)
        return await task, ticks

    final, ticks = asyncio.run(main())
    assert seen == [1, 2] and final["iteration"] == 2 and ticks > 1  # the loop kept running


@pytest.mark.slow
def test_the_agent_learns_and_a_tiny_learning_rate_does_not(tiny_model_path):
    def eval_gain(lr):
        trainer = make_trainer(learning_rate=lr, num_episodes=32 * 15, per_device_train_batch_size=4,
                               group_size=8, max_new_tokens=48, eval_every=1000, include_value_function=False)
        before = trainer.evaluate()["eval_reward"]
        return trainer.train_sync()["eval_reward"] - before

    learned, frozen = eval_gain(1e-3), eval_gain(1e-7)
    assert learned > 0.15, learned
    assert abs(frozen) < 0.05, frozen


def test_rollouts_use_the_merged_adapter_exactly_and_leave_the_base_untouched(tiny_model_path):
    from peft.tuners.lora import LoraLayer

    from stateset_hpo.grpo.agent import without_lora_layers

    trainer = make_trainer(num_episodes=32)
    trainer.train_step(), trainer.train_step()  # the adapter is no longer the identity
    frozen = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if not p.requires_grad}
    n_lora = sum(isinstance(m, LoraLayer) for m in trainer.policy.modules())
    ids = torch.tensor([trainer.agent.prompt_ids(trainer.environment.start(trainer.environment.train_scenarios[0]))])
    with torch.no_grad():
        policy = trainer.policy(input_ids=ids).logits
        with trainer.policy.disable_adapter():
            base = trainer.policy(input_ids=ids).logits
        with without_lora_layers(trainer.policy, merge=True):
            assert not any(isinstance(m, LoraLayer) for m in trainer.policy.modules())
            merged = trainer.policy(input_ids=ids).logits
        with without_lora_layers(trainer.policy, merge=False):
            plain = trainer.policy(input_ids=ids).logits
    assert not torch.allclose(policy, base, atol=1e-4)
    assert torch.allclose(merged, policy, atol=1e-5) and torch.allclose(plain, base, atol=1e-6)
    assert sum(isinstance(m, LoraLayer) for m in trainer.policy.modules()) == n_lora
    after = {n: p for n, p in trainer.policy.named_parameters() if not p.requires_grad}
    assert all(torch.equal(frozen[n], after[n]) for n in frozen)


class _RunsCode:
    """Unpickling this would call os.system: what a tampered checkpoint could carry."""

    def __reduce__(self):
        import os

        return (os.system, ("echo tampered > /dev/null",))


def test_a_checkpoint_that_carries_code_is_refused(tiny_model_path, tmp_path):
    trainer = make_trainer(num_episodes=16)
    trainer.train_step()
    trainer.save_checkpoint(tmp_path / "ckpt")
    state = torch.load(tmp_path / "ckpt" / "trainer_state.pt", weights_only=True)
    torch.save({**state, "extra": _RunsCode()}, tmp_path / "ckpt" / "trainer_state.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unpickl"):
        make_trainer(num_episodes=16).load_checkpoint(tmp_path / "ckpt")


@pytest.mark.parametrize("value_function", [True, False])
def test_reported_metrics_names_exactly_what_an_iteration_reports(tiny_model_path, value_function):
    # (two iterations: eval_replies_changed is reported from the second evaluation on)
    from stateset_hpo.grpo.trainer import reported_metrics

    reward = domain_reward("customer_service")
    trainer = MultiTurnGRPOTrainer(MultiTurnAgent(), ConversationEnvironment("customer_service"), reward,
                                   TrainingConfig(**{**SMALL, "num_episodes": 16, "include_value_function": value_function}),
                                   test_at_end=True)
    last = list(trainer.iterate())[-1]
    assert {k for k in last if "[" not in k} == reported_metrics(reward.names, value_function, test=True)


def test_eval_replies_changed_says_whether_the_updates_changed_a_held_out_reply_across_a_resume(tiny_model_path,
                                                                                                   tmp_path):
    def trainer(lr):
        return MultiTurnGRPOTrainer(MultiTurnAgent(), ConversationEnvironment("customer_service"),
                                    domain_reward("customer_service"),
                                    TrainingConfig(**{**SMALL, "num_episodes": 24, "learning_rate": lr}))

    assert [m.get("eval_replies_changed") for m in trainer(1e-9).iterate()] == [None, 0.0, 0.0]
    moving = trainer(1e-2)
    assert [m.get("eval_replies_changed") for m in moving.iterate()][1:] != [0.0, 0.0]
    # a resumed run compares with the first evaluation of the run it continues
    first = trainer(1e-9)
    next(first.iterate())
    first.save_checkpoint(tmp_path)
    resumed = trainer(1e-9)
    resumed.load_checkpoint(tmp_path)
    assert [m.get("eval_replies_changed") for m in resumed.iterate()] == [0.0, 0.0]


@pytest.mark.parametrize("field, value, message", [
    ("trust_remote_code", "no", "AgentConfig.trust_remote_code must be True or False, got 'no'"),
    ("device", "cuda:abc", "AgentConfig.device must be auto, cpu, cuda or cuda:N"),
])
def test_agent_settings_that_would_be_misread_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        AgentConfig(**{field: value})
    AgentConfig(device="cuda:1", trust_remote_code=False)  # (checked, not loaded)
