"""Can a degenerate policy beat the reference replies? A battery of fixed reply policies that a
GRPO run could plausibly converge to (an empty reply, a polite template, a ramble, templates
that list every topic's actions, keyword soup, the first reply repeated, ...), played turn by
turn through the environment and scored by a reward on a held-out split.

A reward is only a yardstick if the scenario's reference replies beat every one of them by a
clear margin (`MARGIN`): otherwise a "significant gain" of a study may be reward hacking.
`bench/reward_battery.py` prints the table for the built-in domains; `battery` runs it on any
environment and reward (a user's own too).
"""

from __future__ import annotations

import statistics
from typing import Callable, Dict, List, Sequence

from .environment import ConversationEnvironment
from .rewards import CompositeReward, ReplyContext
from .scenarios import PERSUASIVE_WORDS, Scenario

MARGIN = 0.15  # how far the reference replies must stay ahead of every degenerate policy

# (scenario, conversation so far, the agent's turn index, the domain's lists) -> reply
Policy = Callable[[Scenario, List[Dict[str, str]], int, Dict[str, List[str]]], str]
POLITE = "thank you for reaching out . i am happy to help you with that today ."


def _all_actions(d: Dict[str, List[str]]) -> str:
    return " , ".join(d["actions"])


POLICIES: Dict[str, Policy] = {
    "reference replies": lambda s, conv, k, d: s.reply if k == 0 else s.closing,
    "empty reply": lambda s, conv, k, d: "",
    "polite template": lambda s, conv, k, d: POLITE,
    "polite template naming the item": lambda s, conv, k, d: f"thank you for contacting us about your {s.item} .",
    "max-length ramble": lambda s, conv, k, d: " ".join([POLITE] * 5),
    "two action-listing templates with the item": lambda s, conv, k, d: (
        f"sorry about your {s.item} . i can {_all_actions(d)} . which one do you need ?" if k == 0 else
        f"thanks . for your {s.item} i will {_all_actions(d)} now , you are all set ."),
    "two action-listing templates without the item": lambda s, conv, k, d: (
        f"sorry about that . i can {_all_actions(d)} . which one do you need ?" if k == 0 else
        f"thanks . i will {_all_actions(d)} now , you are all set ."),
    "one action-listing template every turn": lambda s, conv, k, d: (
        f"sorry about your {s.item} . i can {_all_actions(d)} . which one do you need ?"),
    "keyword soup": lambda s, conv, k, d: " ".join(d["actions"] + d["facts"] + list(PERSUASIVE_WORDS) + [s.item]),
    "the first reply repeated": lambda s, conv, k, d: s.reply,
    # our own: what a run could also drift to
    "every topic's facts": lambda s, conv, k, d: (
        f"about your {s.item} : " + " , ".join(d["facts"]) + (" . is that clear ?" if k == 0 else " .")),
    "a question every turn": lambda s, conv, k, d: (
        f"can you tell me more about your {s.item} ?" if k == 0 else f"what else is wrong with your {s.item} ?"),
    "echo the user": lambda s, conv, k, d: next(m["content"] for m in reversed(conv) if m["role"] == "user"),
    "the right actions only": lambda s, conv, k, d: " , ".join(s.actions),
    "the reference padded with every topic's actions": lambda s, conv, k, d: (
        (s.reply if k == 0 else s.closing) + f" i can also {_all_actions(d)} ."),
}
REFERENCE = "reference replies"


def domain_lists(scenarios: Sequence[Scenario]) -> Dict[str, List[str]]:
    """Every topic's actions and facts, which the listing policies recite."""
    return {"actions": sorted({a for s in scenarios for a in s.actions}),
            "facts": sorted({f for s in scenarios for f in s.facts})}


def play(environment: ConversationEnvironment, scenario: Scenario, policy: Policy, reward: CompositeReward,
         lists: Dict[str, List[str]], detail_level: str = "moderate") -> float:
    """One conversation with ``policy`` as the agent, scored turn by turn: the mean turn reward,
    as the trainer scores an episode."""
    conversation = environment.start(scenario, detail_level)
    scores = []
    while True:
        reply = policy(scenario, conversation, len(scores), lists)
        scores.append(reward(ReplyContext(scenario, tuple(conversation), reply, detail_level)))
        conversation.append({"role": "assistant", "content": reply})
        user = environment.respond(scenario, conversation)
        if user is None:
            return statistics.fmean(scores)
        conversation.append(user)


def battery(environment: ConversationEnvironment, reward: CompositeReward, split: str = "test",
            policies: Dict[str, Policy] = POLICIES) -> Dict[str, float]:
    """Each policy's mean score over the split's conversations."""
    scenarios = environment.held_out(split)
    lists = domain_lists(environment.scenarios)
    return {name: statistics.fmean(play(environment, s, policy, reward, lists) for s in scenarios)
            for name, policy in policies.items()}
