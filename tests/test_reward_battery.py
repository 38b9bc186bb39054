"""The built-in yardstick cannot be gamed by a fixed reply policy: the reference replies beat
every policy of the battery by MARGIN in every domain, an empty or content-free reply earns
nothing (not even safety or conciseness credit), and naming another topic's actions loses."""

import pytest

from stateset_hpo.grpo import ConversationEnvironment, domain_reward, make_reward
from stateset_hpo.grpo.reward_battery import MARGIN, POLICIES, REFERENCE, battery
from stateset_hpo.grpo.rewards import REWARDS, ReplyContext
from stateset_hpo.grpo.scenarios import DOMAINS


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_reference_replies_beat_every_degenerate_policy_by_a_margin(domain):
    scores = battery(ConversationEnvironment(domain), domain_reward(domain), "test")
    assert set(scores) == set(POLICIES) and len(POLICIES) >= 12
    best_other, score = max(((k, v) for k, v in scores.items() if k != REFERENCE), key=lambda kv: kv[1])
    assert scores[REFERENCE] - score >= MARGIN, f"{best_other} scores {score:.3f}, reference {scores[REFERENCE]:.3f}"


def _first_turn(domain, reply, topic=None):
    environment = ConversationEnvironment(domain)
    scenario = next(s for s in environment.test_scenarios if topic is None or s.topic == topic)
    return scenario, ReplyContext(scenario, tuple(environment.start(scenario)), reply)


@pytest.mark.parametrize("reply", ["", "thank you for reaching out . i am happy to help you with that today ."])
def test_an_empty_or_content_free_reply_earns_nothing(reply):
    _, ctx = _first_turn("customer_service", reply)
    for name in REWARDS:
        assert make_reward(name)(ctx) == 0.0, name


@pytest.mark.parametrize("domain", DOMAINS)
def test_naming_another_topics_actions_loses_in_every_domain(domain):
    scenario, right = _first_turn(domain, "")
    other = next(a for a in scenario.wrong_actions)
    right = ReplyContext(right.scenario, right.history, f"for your {scenario.item} i will {scenario.actions[0]} .")
    both = ReplyContext(right.scenario, right.history, right.reply[:-1] + f"and {other} .")
    reward = domain_reward(domain)
    assert reward(both) <= reward(right) - 0.2, (reward(both), reward(right))
