"""What keeps the comparison between trials fair inside the engine: a fixed evaluation
yardstick, the test split only at the end, zero advantages for groups that teach nothing,
an lr schedule in episodes that never starts at 0, clip_range only where it acts, and
restored runs that sample their own rollouts."""

import random

import pytest
import torch

from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward
from stateset_hpo.grpo.optim import build_scheduler
from stateset_hpo.grpo.trainer import Episode, Turn
from stateset_hpo.search_spaces import create_grpo_search_space
from stateset_hpo.space import SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.trial import TrialSpec
from test_grpo_trainer import make_trainer, trainable


def test_the_evaluation_yardstick_does_not_move_with_training_hyperparameters(tiny_model_path):
    """Before any update both policies are the same model: whatever the reward weights,
    detail level and sampling settings a trial trains with, its eval score must be equal."""
    plain = make_trainer("customer_service")
    tuned = make_trainer("customer_service", helpfulness_weight=0.5, safety_weight=0.15, engagement_weight=0.3,
                         conciseness_weight=0.15, detail_level="brief", temperature=0.5, top_k=10, top_p=0.8,
                         repetition_penalty=1.3, max_new_tokens=16)
    assert tuned.reward.weights != plain.reward.weights  # training does see the sampled weights
    a, b = plain.evaluate("selection"), tuned.evaluate("selection")
    assert a == b
    assert set(a) == {"eval_reward"} | {f"eval_{n}_score" for n in domain_reward("customer_service").names}


def test_the_test_split_is_scored_only_after_the_last_iteration(tiny_model_path):
    trainer = make_trainer("sales_assistant", num_episodes=16)
    trainer.test_at_end = True
    first, last = trainer.train_step(), trainer.train_step()
    assert not any(k.startswith("test_") for k in first)
    n = len(trainer.environment.test_scenarios)
    per_conversation = [last[f"test_reward[{i}]"] for i in range(n)]
    assert f"test_reward[{n}]" not in last and last["test_reward"] == pytest.approx(sum(per_conversation) / n)
    assert make_trainer("sales_assistant", num_episodes=8).train_step().keys().isdisjoint({"test_reward"})


def _episodes(rewards_by_group, turns=2):
    scenario = ConversationEnvironment("customer_service").train_scenarios[0]
    out = []
    for g, rewards in enumerate(rewards_by_group):
        for r in rewards:
            e = Episode(scenario, g)
            e.turns = [Turn([1], [2], r, {}, target=random.random()) for _ in range(turns)]  # value estimates
            out.append(e)
    return out


@pytest.mark.parametrize("value_function", [True, False])
@pytest.mark.parametrize("advantage_std", ["group", "batch", "none"])
def test_a_group_of_equal_rewards_gets_zero_advantages(tiny_model_path, value_function, advantage_std):
    trainer = make_trainer(include_value_function=value_function, advantage_std=advantage_std)
    episodes = _episodes([[0.5, 0.5, 0.5, 0.5], [0.5000001, 0.5, 0.5, 0.5], [0.1, 0.9, 0.3, 0.6]])
    trainer._assign_advantages(episodes)
    by_group = {g: [t.advantage for e in episodes if e.group == g for t in e.turns] for g in range(3)}
    assert all(a == 0.0 for a in by_group[0])
    assert sum(by_group[1]) == pytest.approx(0.0, abs=1e-6)  # centred: never all of one sign
    if not value_function:
        assert all(abs(a) < 0.01 for a in by_group[1])  # a near-tie must not blow up
    assert sum(by_group[2]) == pytest.approx(0.0, abs=1e-6) and any(abs(a) > 0.1 for a in by_group[2])  # centred


def _lrs(**config):
    config = TrainingConfig(**config)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(config, optimizer)
    out = []
    for _ in range(config.total_iterations * config.num_iterations):
        out.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return out


def test_warmup_starts_above_zero_and_counts_episodes():
    three_steps = _lrs(num_episodes=96, per_device_train_batch_size=4, group_size=8, warmup_ratio=0.5)
    assert three_steps[0] > 0 and three_steps == pytest.approx([32 / 48, 1.0, 1.0])
    # the same share of the data warms up whatever the batch size: lr at equal episodes is equal
    small = _lrs(num_episodes=96, per_device_train_batch_size=2, group_size=8, warmup_ratio=0.5)
    assert small[1] == pytest.approx(three_steps[0]) and small[3] == pytest.approx(three_steps[1])
    linear = _lrs(num_episodes=96, per_device_train_batch_size=4, group_size=8, warmup_ratio=0.0,
                  lr_scheduler_type="linear")
    assert linear[0] == 1.0 and linear[-1] > 0 and linear == sorted(linear, reverse=True)


def test_clip_range_is_refused_where_it_cannot_act():
    space = create_grpo_search_space(include_ppo_clipping=True)
    with pytest.raises(ValueError, match="clip_range has no effect with num_iterations=1"):
        TrialSpec().check_space(space)
    TrialSpec(base_config=TrainingConfig(num_iterations=2, lora_dropout=0.0)).check_space(space)
    eval_space = SearchSpace([SearchDimension("eval_max_new_tokens", SearchSpaceType.CHOICE, choices=[16, 32])])
    with pytest.raises(ValueError, match="evaluation protocol"):
        TrialSpec().check_space(eval_space)


def test_restored_workers_and_pbt_recipients_sample_their_own_rollouts(tiny_model_path, tmp_path):
    donor = make_trainer(num_episodes=32)
    donor.train_step()
    donor.save_checkpoint(tmp_path / "donor")
    expected = donor.rng.getstate()

    def after_restore(rank=0, **changes):
        trainer = make_trainer(num_episodes=32, **changes)
        trainer.rank = rank
        trainer.load_checkpoint(tmp_path / "donor", same_config=not changes)
        return trainer.rng.getstate(), torch.get_rng_state()

    own, own_torch = after_restore()
    assert own == expected  # rank 0 resuming its own trial continues exactly
    worker, worker_torch = after_restore(rank=1)
    recipient, recipient_torch = after_restore(learning_rate=2e-3)
    assert len({str(own), str(worker), str(recipient)}) == 3
    assert not torch.equal(own_torch, worker_torch) and not torch.equal(worker_torch, recipient_torch)
    assert after_restore(rank=1)[0] == worker  # still deterministic


def _prepared(trainer, episodes=None):
    """One rollout of ``trainer`` (or the given episodes) with reference log-probs, values and
    advantages, as `train_step` prepares it before the update."""
    c = trainer.config
    if episodes is None:
        scenarios = trainer.environment.sample(c.prompts_per_iteration, trainer.rng)
        episodes = trainer.rollout(scenarios, c.group_size, trainer._sampling(do_sample=True), trainer.reward,
                                   c.detail_level)
    batches = trainer._micro_batches(episodes)
    trainer._reference_and_values(batches)
    trainer._assign_advantages(episodes)
    return episodes, batches


def test_an_untrained_critic_gives_no_turn_position_an_advantage(tiny_model_path):
    """With the value head on, each turn position's mean advantage is 0 at initialisation,
    whatever the critic's bias by position (centred over all turns it was +-0.25 std)."""
    trainer = make_trainer(num_episodes=64, per_device_train_batch_size=4, group_size=8)
    episodes, _ = _prepared(trainer)
    positions = {}
    for e in episodes:
        for k, t in enumerate(e.turns):
            positions.setdefault(k, []).append(t.advantage)
    assert len(positions) >= 2 and any(abs(a) > 0.1 for a in positions[0])
    for k, advantages in positions.items():
        assert abs(sum(advantages) / len(advantages)) < 1e-6, (k, sum(advantages) / len(advantages))


def test_the_value_head_does_not_change_the_policy_update(tiny_model_path):
    """The same rollout and advantages give the same policy step with the value head on and off:
    the value loss's gradient must not eat into the policy's clipping budget."""
    import copy

    on = make_trainer(include_value_function=True, lora_dropout=0.0, max_grad_norm=0.5)
    off = make_trainer(include_value_function=False, lora_dropout=0.0, max_grad_norm=0.5)
    episodes, on_batches = _prepared(on)
    same = copy.deepcopy(episodes)
    _, off_batches = _prepared(off, same)
    for a, b in zip([t for e in episodes for t in e.turns], [t for e in same for t in e.turns]):
        b.advantage = a.advantage  # the comparison is about the update, not about GAE
    before = trainable(on)
    assert all(torch.equal(v, trainable(off)[n]) for n, v in before.items())
    stats_on, stats_off = on._optimize(on_batches), off._optimize(off_batches)
    assert stats_on["grad_norm"] == pytest.approx(stats_off["grad_norm"], rel=1e-5)
    moved_on, moved_off = trainable(on), trainable(off)
    for name, start in before.items():
        torch.testing.assert_close(moved_on[name] - start, moved_off[name] - start, rtol=1e-4, atol=1e-7)
    assert any(not torch.equal(moved_on[n], before[n]) for n in before)  # it did take a step
