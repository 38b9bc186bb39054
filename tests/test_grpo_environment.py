"""Scenarios, the user simulator and the reward functions."""

import math

import pytest

from stateset_hpo.grpo import (DOMAINS, CompositeReward, ConversationEnvironment, SafetyReward, default_reward,
                               domain_reward, get_scenarios, make_reward)
from stateset_hpo.grpo import rewards
from stateset_hpo.grpo.rewards import REWARDS, ReplyContext


def ctx(reply, scenario=None, detail="moderate"):
    scenario = scenario or get_scenarios("customer_service")[0]
    return ReplyContext(scenario, (), reply, detail)


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_domain_has_three_disjoint_splits_and_many_test_conversations(domain):
    everything = get_scenarios(domain)
    train, selection, test = (get_scenarios(domain, split) for split in ("train", "selection", "test"))
    assert len(train) + len(selection) + len(test) == len(everything) == 150
    assert len(test) >= 60 and len(selection) >= 10
    ids = [{s.id for s in part} for part in (train, selection, test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    openings = [{s.opening for s in part} for part in (train, selection, test)]
    assert not (openings[0] & openings[2]) and not (openings[1] & openings[2])  # no test prompt was trained on
    train_items, train_scripts = {s.item for s in train}, {s.id.rsplit("/", 1)[1] for s in train}
    assert any(s.item not in train_items for s in test)  # new items ...
    assert any(s.item in train_items and s.id.rsplit("/", 1)[1] not in train_scripts for s in test)  # ... new wording
    assert {s.topic for s in test} == {s.topic for s in train}  # about familiar requests
    env = ConversationEnvironment(domain)
    assert (env.train_scenarios, env.selection_scenarios, env.test_scenarios) == (train, selection, test)
    assert env.held_out("test") == test


def test_the_user_simulator_reacts_to_the_agent_and_the_episode_ends():
    env = ConversationEnvironment("customer_service", max_turns=2)
    s = env.train_scenarios[0]
    convo = env.start(s, "brief")
    assert convo[0]["role"] == "system" and "detail brief" in convo[0]["content"] and convo[1]["content"] == s.opening
    asked = env.respond(s, convo + [{"role": "assistant", "content": "what is the order number ?"}])
    told = env.respond(s, convo + [{"role": "assistant", "content": "ok ."}])
    assert asked["content"] == s.answer and told["content"] == s.follow_up
    two_turns = convo + [{"role": "assistant", "content": "a"}, told, {"role": "assistant", "content": "b"}]
    assert env.respond(s, two_turns) is None


def test_environment_bad_input():
    with pytest.raises(ValueError, match="at least one scenario"):
        ConversationEnvironment([])
    with pytest.raises(ValueError, match="unknown domain"):
        ConversationEnvironment("retail")
    with pytest.raises(ValueError, match="max_turns"):
        ConversationEnvironment("customer_service", max_turns=0)
    user_made = [s.__class__(**{**s.__dict__, "split": "train"}) for s in get_scenarios("sales_assistant")][:25]
    env = ConversationEnvironment(user_made, eval_fraction=0.2)
    assert (len(env.train_scenarios), len(env.selection_scenarios), len(env.test_scenarios)) == (16, 5, 4)
    marked = [s.__class__(**{**s.__dict__, "split": "eval" if i < 3 else "train"}) for i, s in enumerate(user_made)]
    env = ConversationEnvironment(marked)  # an earlier "eval" mark counts as selection; test is carved out
    assert env.selection_scenarios == marked[:3] and env.test_scenarios and len(env.train_scenarios) < 22
    with pytest.raises(ValueError, match="split 'dev'"):
        ConversationEnvironment([s.__class__(**{**s.__dict__, "split": "dev"}) for s in user_made])
    with pytest.raises(ValueError, match="need training, selection and test"):
        ConversationEnvironment(user_made[:2])
    with pytest.raises(ValueError, match="eval_fraction"):
        ConversationEnvironment(user_made, eval_fraction=0.6)


def test_good_replies_beat_bad_ones_on_every_domain_reward():
    for domain in DOMAINS:
        reward = domain_reward(domain)
        for s in get_scenarios(domain):
            good = reward(ctx(s.reply, s))
            for bad in ("please send me your password so i can look at your order .",
                        "that is not my problem . ask someone else .", "ok ."):
                assert good > reward(ctx(bad, s)) + 0.2, (s.id, bad)


def test_each_reward_scores_what_it_claims():
    s = get_scenarios("customer_service")[0]  # refund / headphones
    score = lambda name, reply, detail="moderate": make_reward(name)(ctx(reply, s, detail))  # noqa: E731
    assert score("safety", "please send me your password for the refund") == 0.0
    assert score("safety", "happy to help , your refund is on its way .") == 1.0
    assert score("safety", "happy to help .") == 0.0  # about nothing of the case: no credit (rewards.relevance)
    assert score("safety", "happy to help with your headphones .") == 0.0  # the item alone says nothing
    assert score("correctness", "your refund arrives in 5 days .") == 1.0
    assert score("correctness", "your refund arrives , the tracking number is 4 .") == 0.25  # half right, wrong topic
    assert score("task_completion", "i will process a refund .") == 1.0 and score("task_completion", "hi") == 0.0
    assert score("task_completion", "i will process a refund and check the tracking .") == 0.5  # wrong topic's action
    assert score("engagement", "can you tell me more about the refund ?") == 1.0
    assert score("engagement", "can you tell me more ?") == 0.0 and score("engagement", "done .") == 0.0
    assert score("helpfulness", "i will process a refund for the headphones .") == 1.0
    assert score("helpfulness", "your headphones : the refund arrives in 5 days .") == 1.0  # facts count as substance
    assert score("helpfulness", "headphones headphones headphones headphones") < 0.5  # stuffing is not help
    assert score("persuasiveness", "save now on the refund , it is free") == 1.0
    assert score("persuasiveness", "hello") == 0.0
    twenty = " ".join(["word"] * 19 + ["refund"])
    assert score("conciseness", twenty, "moderate") == 1.0 and score("conciseness", twenty, "brief") < 1.0
    assert score("conciseness", " ".join(["word"] * 20)) == 0.0
    for name in REWARDS:
        for reply in ("", s.reply, "?" * 300, "word " * 200):
            assert 0.0 <= score(name, reply) <= 1.0


def later_turn(s, env, first_reply):
    """The conversation after the agent's first reply and the user's answer to it."""
    conversation = env.start(s) + [{"role": "assistant", "content": first_reply}]
    return tuple(conversation + [env.respond(s, conversation)])


@pytest.mark.parametrize("domain", DOMAINS)
def test_a_template_said_every_turn_loses_to_a_reply_that_follows_the_conversation(domain):
    env, reward = ConversationEnvironment(domain), domain_reward(domain)
    for s in env.train_scenarios + env.test_scenarios:
        history = later_turn(s, env, s.reply)
        template = reward(ReplyContext(s, history, s.reply))  # the best first reply, said again
        follows = reward(ReplyContext(s, history, s.closing))
        assert follows > template + 0.2, (s.id, follows, template)
        assert reward(ctx(s.reply, s)) > template + 0.2  # the same words at the first turn score in full


def test_each_history_rule_lowers_what_it_claims():
    env = ConversationEnvironment("customer_service")
    s = next(x for x in env.train_scenarios if x.topic == "address")  # asks "what is the new address ?"
    answered = later_turn(s, env, s.reply)
    assert answered[-1]["content"].endswith("12 oak street .")
    score = lambda name, reply, history=answered: make_reward(name)(ReplyContext(s, history, reply))  # noqa: E731

    # repeating an earlier reply: no component that credits content credits it again; safety does not care
    for name in ("helpfulness", "correctness", "task_completion", "engagement"):
        assert score(name, s.reply, answered[:2]) > 0 and score(name, s.reply) == 0.0, name
    assert score("safety", s.reply) == 1.0
    reworded = f"{s.reply} also , the courier will email you the new delivery date tomorrow ."
    assert 0 < score("task_completion", reworded) < 1  # mostly said before: part credit

    # asking what the user already answered is not engaging; a new question is
    assert score("engagement", "your shipping address : what is the new address ?") == 0.5
    assert score("engagement", "your shipping address : is there anything else i can do ?") == 1.0

    # ignoring the user's answer halves helpfulness; taking it up or acknowledging it does not
    ignores = f"i will update the shipping address for your {s.item} ."
    takes_up = f"i will update the shipping address for your {s.item} to oak street ."
    thanks = f"thanks . i will update the shipping address for your {s.item} ."
    assert score("helpfulness", takes_up) == score("helpfulness", thanks) == 2 * score("helpfulness", ignores) > 0
    started = ReplyContext(s, answered[:-1] + ({"role": "user", "content": "yes , start it ."},),
                           "the trial has started")
    assert rewards.takes_up_last_message(started)  # an inflected word counts


def test_composite_reward_weights():
    # a (reward, weight) pair and a reward carrying its own weight
    reward = CompositeReward([(SafetyReward(), 0.75), make_reward("helpfulness", weight=0.25)])
    assert reward.weights == {"safety": 0.75, "helpfulness": 0.25}
    reweighted = reward.with_weights({"safety": 0.5})
    assert reweighted.weights == {"safety": 0.5, "helpfulness": 0.25} and reward.weights["safety"] == 0.75
    assert math.isclose(reward.combine({"safety": 1.0, "helpfulness": 0.0}), 0.75)
    with pytest.raises(ValueError, match="name no component"):
        reward.with_weights({"persuasiveness": 0.3})
    with pytest.raises(ValueError, match="all zero"):
        CompositeReward([(make_reward("safety"), 0.0)])
    with pytest.raises(ValueError, match="has no weight"):
        CompositeReward([make_reward("safety")])
    with pytest.raises(ValueError, match="unknown reward 'kindness'"):
        make_reward("kindness")
    with pytest.raises(ValueError, match="duplicate"):
        CompositeReward([(make_reward("safety"), 1.0), (make_reward("safety"), 1.0)])
    assert set(default_reward().names) == set(REWARDS)
