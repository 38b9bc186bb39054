"""The GRPO step's maths as pure functions (advantages.py, loss.py): no model, milliseconds."""

import pytest
import torch

from stateset_hpo.grpo import TrainingConfig
from stateset_hpo.grpo.advantages import group_advantages, scaled
from stateset_hpo.grpo.loss import policy_loss


def test_a_group_with_equal_rewards_teaches_nothing_in_either_mode():
    flat = group_advantages([[0.5, 0.5], [0.2, 0.8]])  # both episodes average 0.5
    assert not flat.informative and flat.advantages == [[0.0, 0.0], [0.0, 0.0]]
    critic = group_advantages([[0.5, 0.5], [0.2, 0.8]], values=[[0.3, 0.1], [0.0, 0.9]])
    assert critic.advantages == [[0.0, 0.0], [0.0, 0.0]] and critic.returns is not None  # the critic still learns
    assert scaled([flat], "group") == [[[0.0, 0.0], [0.0, 0.0]]]


def test_without_a_critic_every_turn_gets_its_episode_reward_minus_the_group_mean():
    g = group_advantages([[1.0], [0.0, 0.0, 0.0], [0.5, 0.5]])  # a longer conversation weighs no more
    assert g.informative and g.advantages == [[0.5], [-0.5, -0.5, -0.5], [0.0, 0.0]]


def test_with_a_critic_each_turn_position_is_centred_on_its_own():
    # an untrained critic that is biased by position: +1 at turn 1, -1 at turn 2, whatever the replies
    rewards = [[0.2, 0.4], [0.6, 0.8], [0.1, 0.3]]
    g = group_advantages(rewards, values=[[1.0, -1.0]] * 3, gamma=1.0, lam=1.0)
    for k in range(2):
        assert sum(a[k] for a in g.advantages) == pytest.approx(0.0)
    assert g.returns[0] == pytest.approx([0.6, 0.4])  # reward-to-go: the critic's targets
    lone = group_advantages([[0.2, 0.4], [0.9]], values=[[0.0, 0.0], [0.0]])
    assert lone.advantages[0][1] == 0.0  # a turn position one episode reached: nothing to compare with


def test_scaling_by_the_batch_leaves_out_groups_without_signal():
    signal = group_advantages([[1.0], [0.0]])
    silent = group_advantages([[0.3], [0.3]])
    batch = scaled([signal, silent], "batch")
    assert batch[0] == [[pytest.approx(0.5 / (0.5 + 1e-4))], [pytest.approx(-0.5 / (0.5 + 1e-4))]]
    assert batch[1] == [[0.0], [0.0]]
    assert scaled([signal], "none")[0] == [[pytest.approx(0.5 / (1 + 1e-4))], [pytest.approx(-0.5 / (1 + 1e-4))]]


@pytest.mark.parametrize("loss_type,expected", [
    ("dapo", (2 * 3 + 1 * 7) / 10),  # TRL's dapo: the tokens of the whole accumulated batch
    ("bnpo", (2 * 3 / 3 + 1 * 7 / 7) / 2),  # TRL's bnpo: each micro-batch's tokens
    ("grpo", (2 + 1) / 2),  # each sequence's mean, then the sequences
    ("dr_grpo", (2 * 3 + 1 * 7) / (2 * 32)),  # a constant: sequences x max_new_tokens per micro-batch
])
def test_loss_types_normalise_as_trl_defines_them(loss_type, expected):
    config = TrainingConfig(loss_type=loss_type, gradient_accumulation_steps=2, per_device_train_batch_size=1,
                            kl_penalty_coef=0.0, max_new_tokens=32)
    masks = [torch.tensor([[1.0, 1.0, 1.0, 0, 0, 0, 0]]), torch.tensor([[1.0] * 7])]  # two micro-batches
    total = 0.0
    for mask, advantage in zip(masks, (-2.0, -1.0)):  # per-token loss = -advantage at ratio 1
        logp = torch.zeros_like(mask)
        loss, _ = policy_loss(config, logp, logp, logp, torch.zeros_like(mask), torch.tensor([[advantage]]), mask,
                              batch_tokens=10.0)
        total += loss.item()
    assert total == pytest.approx(expected)


def test_a_ratio_past_the_clip_range_gives_no_gradient_in_the_direction_of_the_advantage():
    mask = torch.ones(1, 2)
    logp = torch.tensor([[0.5, 0.0]], requires_grad=True)  # token 1's ratio e^0.5 is past 1 + 0.2
    c = TrainingConfig(kl_penalty_coef=0.0, entropy_coef=0.0, clip_range=0.2, loss_type="bnpo", num_iterations=2,
                       lora_dropout=0.0)
    loss, stats = policy_loss(c, logp, torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 1), mask)
    loss.backward()
    assert logp.grad[0, 0].item() == 0.0 and logp.grad[0, 1].item() < 0.0
    assert stats["clip_ratio"] == 1.0 and stats["tokens"] == 2.0


def test_the_kl_penalty_is_zero_at_the_reference_and_positive_away_from_it():
    mask = torch.ones(1, 3)
    c = TrainingConfig(kl_penalty_coef=0.1, entropy_coef=0.0, loss_type="bnpo")
    same = policy_loss(c, torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 3), torch.zeros(1, 3),
                       torch.zeros(1, 1), mask)
    away = policy_loss(c, torch.full((1, 3), -0.5), torch.full((1, 3), -0.5), torch.zeros(1, 3), torch.zeros(1, 3),
                       torch.zeros(1, 1), mask)
    assert same[0].item() == 0.0 and same[1]["kl"] == 0.0
    assert away[0].item() > 0.0 and away[1]["kl"] > 0.0
