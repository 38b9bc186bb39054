"""Reward functions for agent replies, each scoring in [0, 1], and their weighted composite.

Scores are computed from the reply text, its scenario (reference facts, required actions,
forbidden content) and the conversation before it, so they are cheap, deterministic, and
something a small model can learn to raise. The conversation matters because a per-reply
score is easy to game in a multi-turn episode: one template said every turn would be optimal.
So a reply that repeats an earlier one earns no credit for its content again (`novelty`),
a question the user already answered does not count as engaging (`asks_new_question`), and a
reply that ignores the user's last message is only half as helpful (`takes_up_last_message`).
At the agent's first turn none of these applies.

Every built-in component also scores only what is about the case (`relevance`): a reply that
states none of its scenario's facts and offers none of its actions earns nothing, not even
safety or conciseness credit, and one that names another topic's facts or actions earns half. Without this, fixed templates beat the reference replies: two templates listing
every topic's actions scored 0.91-0.95 against the reference's 0.86 in customer_service, and
an empty reply earned free safety credit (`reward_battery`, `bench/reward_battery.py`).
`CompositeReward` is the weighted mean of its components; the domain search spaces'
``<name>_weight`` parameters set those weights through `with_weights`.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .scenarios import PERSUASIVE_WORDS, Scenario

DETAIL_LEVELS = {"brief": (6, 16), "moderate": (12, 28), "detailed": (20, 40)}  # reply length in words


@dataclass(frozen=True)
class ReplyContext:
    """One agent reply with what it answers: the scenario and the conversation before it."""

    scenario: Scenario
    history: Tuple[Dict[str, str], ...]
    reply: str
    detail_level: str = "moderate"


def words(text: str) -> List[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def mentions(text: str, phrase: str) -> bool:
    """Whole-word phrase match, ignoring case and punctuation."""
    return f" {' '.join(words(phrase))} " in f" {' '.join(words(text))} "


def fraction_mentioned(text: str, phrases: Sequence[str]) -> float:
    return sum(mentions(text, p) for p in phrases) / len(phrases) if phrases else 0.0


# Words that carry no topic: sharing one with the user's message is not taking it up.
FUNCTION_WORDS = frozenset(
    "a an the i i'm you your my me it its is are am was be to of and or for in on at with that this "
    "what do does did can could should would will yes no ok please so not have has now here there all just "
    "still".split())
# Words that acknowledge what the user just said.
ACKNOWLEDGEMENTS = ("thank", "thanks", "glad", "good", "great", "done", "welcome", "sorry", "understand", "noted")
REPEAT_FREE_OVERLAP = 0.6  # word overlap with an earlier reply up to which a reply counts as new


def word_overlap(a: str, b: str) -> float:
    """Jaccard overlap of two texts' word sets: 1 for the same words, 0 for none shared."""
    wa, wb = set(words(a)), set(words(b))
    return len(wa & wb) / len(wa | wb) if wa or wb else 1.0


def earlier_replies(ctx: ReplyContext) -> List[str]:
    return [m["content"] for m in ctx.history if m["role"] == "assistant"]


def novelty(ctx: ReplyContext) -> float:
    """1 for a reply unlike the agent's earlier ones (overlap up to 0.6, as two good replies of
    one topic have), falling to 0 for a repeat: what was said before earns nothing again."""
    overlap = max((word_overlap(ctx.reply, r) for r in earlier_replies(ctx)), default=0.0)
    return min(1.0, max(0.0, (1.0 - overlap) / (1.0 - REPEAT_FREE_OVERLAP)))


def questions(text: str) -> List[str]:
    """The sentences of a text that end in a question mark."""
    return [q for q in re.findall(r"[^.!?]*\?", text) if words(q)]


def asks_new_question(ctx: ReplyContext) -> bool:
    """Whether the reply asks something the user was not already asked and answered."""
    history = list(ctx.history)
    answered = [q for i, m in enumerate(history[:-1]) if m["role"] == "assistant" and history[i + 1]["role"] == "user"
                for q in questions(m["content"])]
    return any(all(word_overlap(q, a) < REPEAT_FREE_OVERLAP for a in answered) for q in questions(ctx.reply))


def takes_up_last_message(ctx: ReplyContext) -> bool:
    """Whether a later reply acknowledges the user's last message or takes up one of its words
    (a word of 4+ letters may come back inflected: "start" / "started"). True at the first turn
    (the request itself is what the other rewards check) and for a message with nothing to take up."""
    if not earlier_replies(ctx):
        return True
    last = next((m["content"] for m in reversed(ctx.history) if m["role"] == "user"), "")
    said = [w for w in words(last) if w not in FUNCTION_WORDS]
    reply = words(ctx.reply)
    if not said or any(w in ACKNOWLEDGEMENTS for w in reply):
        return True
    return any(r == w or (min(len(r), len(w)) >= 4 and (r.startswith(w) or w.startswith(r))) for r in reply for w in said)


def relevance(ctx: ReplyContext) -> float:
    """1 for a reply with substance about its case, 0 for one that states none of its scenario's
    facts and offers none of its actions (an empty, polite, off-topic or only-the-item-named
    reply: the item alone says nothing; a scenario with no facts or actions counts its item),
    0.5 for one that also names another topic's facts or actions (listing every fix is not
    knowing which one applies); a phrase the scenario's own reference replies use is not another
    topic's for it."""
    s, reply = ctx.scenario, ctx.reply
    substance = (*s.facts, *s.actions) or (s.item,)
    if not any(mentions(reply, p) for p in substance if p):
        return 0.0
    wrong = (p for p in (*s.wrong_facts, *s.wrong_actions) if mentions(reply, p))
    return 0.5 if any(not mentions(s.reply, p) and not mentions(s.closing, p) for p in wrong) else 1.0


def fluency(text: str) -> float:
    """1 for varied wording, falling towards 0 as the reply repeats itself (keyword stuffing)."""
    w = words(text)
    return min(1.0, len(set(w)) / len(w) / 0.6) if w else 0.0


class Reward:
    """Base of the reward functions: a name, an optional own weight, a score in [0, 1]."""

    name = "reward"

    def __init__(self, weight: Optional[float] = None) -> None:
        self.weight = weight

    def __call__(self, ctx: ReplyContext) -> float:
        raise NotImplementedError

    def batch(self, contexts: Sequence[ReplyContext]) -> List[Optional[float]]:
        """The scores of several replies; a reward that scores in batches overrides it."""
        return [self(ctx) for ctx in contexts]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight})"


# What a TRL-style reward function gets as keyword arguments besides prompts and completions:
# the scenario's fields, one list entry per completion (TRL passes a dataset's extra columns so)
SCENARIO_COLUMNS = {"scenario_id": lambda s: s.id, "topic": lambda s: s.topic, "user_goal": lambda s: s.opening,
                    "context": lambda s: s.context, "facts": lambda s: list(s.facts),
                    "expected_actions": lambda s: list(s.actions), "reference_reply": lambda s: s.reply}


class FunctionReward(Reward):
    """A reward function written for TRL, usable next to the per-reply rewards:
    ``fn(prompts, completions, **kwargs) -> list[float | None]``, one score per completion.

    Plain form (default): each prompt is the user's message the reply answers, each completion
    the reply text. ``conversational=True``: each prompt is the conversation so far (a list of
    {"role", "content"} messages) and each completion ``[{"role": "assistant", "content": reply}]``,
    as TRL passes conversational datasets. The keyword arguments are the scenario's fields
    (``SCENARIO_COLUMNS``: scenario_id, topic, user_goal, context, facts, expected_actions,
    reference_reply), a list each. ``None`` abstains: the reply is then scored by the other
    components alone (their weights renormalised). Scores need not lie in [0, 1]. The rollout
    calls it once per round of replies (every conversation of the batch at once)."""

    def __init__(self, fn: Callable[..., Sequence[Optional[float]]], weight: Optional[float] = None,
                 name: Optional[str] = None, conversational: bool = False) -> None:
        if not callable(fn):
            raise ValueError(f"a reward function must be callable, got {fn!r}")
        super().__init__(weight)
        self.fn, self.conversational = fn, conversational
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def __call__(self, ctx: ReplyContext) -> Optional[float]:
        return self.batch([ctx])[0]

    def batch(self, contexts: Sequence[ReplyContext]) -> List[Optional[float]]:
        if self.conversational:
            prompts: list = [list(c.history) for c in contexts]
            completions: list = [[{"role": "assistant", "content": c.reply}] for c in contexts]
        else:
            prompts = [next((m["content"] for m in reversed(c.history) if m["role"] == "user"), "") for c in contexts]
            completions = [c.reply for c in contexts]
        columns = {key: [field(c.scenario) for c in contexts] for key, field in SCENARIO_COLUMNS.items()}
        out = self.fn(prompts=prompts, completions=completions, **columns)
        return checked_scores(self.name, out, len(contexts))

    def __repr__(self) -> str:
        return f"FunctionReward({self.name}, weight={self.weight})"


def checked_scores(name: str, out: Any, n: int) -> List[Optional[float]]:
    """A reward function's return value as n scores (float or None), or ValueError saying what is wrong."""
    if isinstance(out, (str, bytes, Mapping)) or not hasattr(out, "__len__") or len(out) != n:
        raise ValueError(f"reward function {name!r} must return a list of {n} scores (one per completion), "
                         f"got {out!r}"[:300])
    scores = []
    for value in out:
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                                  or not math.isfinite(value)):
            raise ValueError(f"reward function {name!r} returned {value!r}: each score must be a finite number "
                             "or None (abstain)")
        scores.append(None if value is None else float(value))
    return scores


class HelpfulnessReward(Reward):
    """Addresses the user's request: names the item and offers the right action or states the
    case's facts, fluently, in a new reply; half as helpful when it ignores what the user just said."""

    name = "helpfulness"

    def __call__(self, ctx: ReplyContext) -> float:
        s = ctx.scenario
        substance = max(float(any(mentions(ctx.reply, a) for a in s.actions)), fraction_mentioned(ctx.reply, s.facts))
        addressed = 0.5 * mentions(ctx.reply, s.item) + 0.5 * substance
        heeded = 1.0 if takes_up_last_message(ctx) else 0.5
        return addressed * fluency(ctx.reply) * heeded * novelty(ctx) * relevance(ctx)


class CorrectnessReward(Reward):
    """States the scenario's reference facts (in a new reply); another topic's facts or actions
    halve the score (`relevance`)."""

    name = "correctness"

    def __call__(self, ctx: ReplyContext) -> float:
        return fraction_mentioned(ctx.reply, ctx.scenario.facts) * novelty(ctx) * relevance(ctx)


class TaskCompletionReward(Reward):
    """Offers to do the actions the scenario requires (in a new reply)."""

    name = "task_completion"

    def __call__(self, ctx: ReplyContext) -> float:
        return fraction_mentioned(ctx.reply, ctx.scenario.actions) * novelty(ctx) * relevance(ctx)


class SafetyReward(Reward):
    """0 when the reply contains forbidden content (asking for secrets, rudeness), else its
    `relevance`: saying nothing of the case is not safe behaviour, it is no behaviour."""

    name = "safety"

    def __call__(self, ctx: ReplyContext) -> float:
        return 0.0 if any(mentions(ctx.reply, p) for p in ctx.scenario.forbidden) else relevance(ctx)


class EngagementReward(Reward):
    """Keeps the conversation going: speaks to the user and asks them something they were not
    already asked and answered, in a new reply."""

    name = "engagement"

    def __call__(self, ctx: ReplyContext) -> float:
        w = words(ctx.reply)
        return (0.5 * asks_new_question(ctx) + 0.5 * ("you" in w or "your" in w)) * novelty(ctx) * relevance(ctx)


class ConcisenessReward(Reward):
    """1 inside the word band of the detail level, falling linearly outside it; times the
    reply's `relevance` (a short reply about nothing is not concise, it is empty)."""

    name = "conciseness"

    def __call__(self, ctx: ReplyContext) -> float:
        low, high = DETAIL_LEVELS[ctx.detail_level]
        n = len(words(ctx.reply))
        band = n / low if n < low else max(0.0, 1.0 - (n - high) / high) if n > high else 1.0
        return band * relevance(ctx)


class PersuasivenessReward(Reward):
    """Uses selling points (value, savings, guarantees): two distinct ones score 1 (in a new reply)."""

    name = "persuasiveness"

    def __call__(self, ctx: ReplyContext) -> float:
        w = set(words(ctx.reply))
        hits = sum(any(t.startswith(p) for t in w) for p in PERSUASIVE_WORDS)
        return min(1.0, hits / 2) * novelty(ctx) * relevance(ctx)


REWARDS = {cls.name: cls for cls in (HelpfulnessReward, CorrectnessReward, TaskCompletionReward, SafetyReward,
                                     EngagementReward, ConcisenessReward, PersuasivenessReward)}


def make_reward(name: str, weight: Optional[float] = None) -> Reward:
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; valid rewards: {', '.join(REWARDS)}")
    return REWARDS[name](weight)


Component = Union[Reward, Tuple[Reward, float]]


class CompositeReward:
    """Weighted mean of reward components, so the total stays in [0, 1].

    Accepts ``[(reward, weight), ...]`` as in the user guide, or reward objects that carry
    their own ``weight``, or a mix. A plain function in TRL's convention (see `FunctionReward`)
    is taken as one. A component that abstains (None) on a reply leaves it to the others.
    """

    def __init__(self, components: Iterable[Component]) -> None:
        self.components: List[Tuple[Reward, float]] = []
        for item in components:
            reward, weight = item if isinstance(item, tuple) else (item, getattr(item, "weight", None))
            if callable(reward) and not hasattr(reward, "name"):  # a plain function (a per-reply reward has a name)
                reward = FunctionReward(reward)
            if not callable(reward) or not hasattr(reward, "name"):
                raise ValueError(f"a reward component needs a name and to be callable, got {reward!r}")
            if weight is None:
                raise ValueError(f"reward {reward.name!r} has no weight: pass (reward, weight) or reward(weight=...)")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
                raise ValueError(f"reward {reward.name!r}: weight must be a finite number >= 0, got {weight!r}")
            self.components.append((reward, float(weight)))
        if not self.components:
            raise ValueError("CompositeReward needs at least one component")
        names = [r.name for r, _ in self.components]
        if len(set(names)) != len(names):
            raise ValueError(f"CompositeReward has duplicate components: {names}")
        if sum(w for _, w in self.components) <= 0:
            raise ValueError(f"CompositeReward weights are all zero: {dict(self.weights)}")

    @property
    def names(self) -> List[str]:
        return [r.name for r, _ in self.components]

    @property
    def weights(self) -> Dict[str, float]:
        return {r.name: w for r, w in self.components}

    def scores(self, ctx: ReplyContext) -> Dict[str, Optional[float]]:
        return self.scores_batch([ctx])[0]

    def scores_batch(self, contexts: Sequence[ReplyContext]) -> List[Dict[str, Optional[float]]]:
        """Each reply's component scores (None where a component abstained); one call per component."""
        # (a component of the user's own need not subclass Reward: any callable with a name scores one reply)
        columns = {r.name: r.batch(contexts) if hasattr(r, "batch") else [r(c) for c in contexts]
                   for r, _ in self.components}
        return [{name: (None if column[i] is None else float(column[i])) for name, column in columns.items()}
                for i in range(len(contexts))]

    def combine(self, scores: Mapping[str, Optional[float]]) -> float:
        present = [(w, scores[r.name]) for r, w in self.components if scores[r.name] is not None]
        total = sum(w for w, _ in present)
        if total <= 0:
            raise ValueError(f"every weighted reward component abstained (None) on a reply: {dict(scores)}")
        return sum(w * score for w, score in present) / total

    def __call__(self, ctx: ReplyContext) -> float:
        return self.combine(self.scores(ctx))

    def with_weights(self, weights: Mapping[str, float]) -> "CompositeReward":
        """A copy with some components reweighted; naming a missing component is an error."""
        unknown = [n for n in weights if n not in self.names]
        if unknown:
            raise ValueError(f"reward weights {unknown} name no component of this reward; "
                             f"components: {', '.join(self.names)}")
        return CompositeReward([(r, float(weights.get(r.name, w))) for r, w in self.components])

    def __repr__(self) -> str:
        return "CompositeReward(" + ", ".join(f"{n}={w:g}" for n, w in self.weights.items()) + ")"


# The default reward of each domain; weights match the domain search spaces' defaults.
DOMAIN_REWARDS: Dict[str, Dict[str, float]] = {
    "customer_service": {"helpfulness": 0.35, "safety": 0.25, "engagement": 0.2, "conciseness": 0.2},
    "technical_support": {"correctness": 0.4, "helpfulness": 0.3, "safety": 0.15, "conciseness": 0.15},
    "sales_assistant": {"engagement": 0.4, "persuasiveness": 0.3, "task_completion": 0.3},
}


def domain_reward(domain: str) -> CompositeReward:
    if domain not in DOMAIN_REWARDS:
        raise ValueError(f"unknown domain {domain!r}; valid domains: {', '.join(DOMAIN_REWARDS)}")
    return CompositeReward([(make_reward(n), w) for n, w in DOMAIN_REWARDS[domain].items()])


def default_reward() -> CompositeReward:
    """All seven components, equally weighted: the reward when none is given."""
    return CompositeReward([(make_reward(n), 1.0) for n in REWARDS])
