"""Multi-turn conversations: the scenario's user opens, the agent replies, a scripted user
simulator answers, for up to ``max_turns`` agent turns.

The simulator is keyed by the scenario and reacts to the agent: a reply that asks the user
something gets the scenario's answer; one that does not gets a follow-up complaint. So an
episode is a real alternation of agent and user turns whose course depends on the agent.
"""

from __future__ import annotations

import random
from typing import Dict, List, Optional, Sequence, Union

from .scenarios import DOMAINS, Scenario, get_scenarios

Message = Dict[str, str]


class ConversationEnvironment:
    """Scenarios with a train/eval split, and the user side of each conversation.

    ``scenarios`` are `Scenario` objects or domain names. Scenarios marked ``split="eval"``
    form the held-out set; when none is marked, every ``1/eval_fraction``-th is held out.
    """

    def __init__(self, scenarios: Union[Sequence[Scenario], Sequence[str], str] = DOMAINS, max_turns: int = 2,
                 eval_fraction: float = 0.2) -> None:
        if isinstance(scenarios, str):
            scenarios = [scenarios]
        scenarios = list(scenarios)
        if not scenarios:
            raise ValueError("ConversationEnvironment needs at least one scenario")
        if all(isinstance(s, str) for s in scenarios):
            scenarios = get_scenarios(scenarios)
        if not all(isinstance(s, Scenario) for s in scenarios):
            raise ValueError("scenarios must be Scenario objects or domain names "
                             f"({', '.join(DOMAINS)})")
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns must be an integer >= 1, got {max_turns!r}")
        train = [s for s in scenarios if s.split != "eval"]
        held_out = [s for s in scenarios if s.split == "eval"]
        if not held_out:
            if not 0 < eval_fraction < 1:
                raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction!r}")
            step = max(2, round(1 / eval_fraction))
            held_out = scenarios[step - 1::step]
            train = [s for s in scenarios if s not in held_out]
        if not train or not held_out:
            raise ValueError(f"need both training and held-out scenarios (got {len(train)} and {len(held_out)}); "
                             "pass more scenarios")
        self.train_scenarios: List[Scenario] = train
        self.eval_scenarios: List[Scenario] = held_out
        self.max_turns = max_turns

    @property
    def domains(self) -> List[str]:
        return sorted({s.domain for s in self.train_scenarios + self.eval_scenarios})

    def sample(self, n: int, rng: random.Random) -> List[Scenario]:
        """``n`` training scenarios, drawn without replacement until each was seen once."""
        return [self.train_scenarios[i % len(self.train_scenarios)]
                for i in rng.sample(range(max(n, len(self.train_scenarios))), n)]

    def start(self, scenario: Scenario, detail_level: str = "moderate") -> List[Message]:
        """The conversation up to the agent's first turn."""
        role = scenario.domain.replace("_", " ")
        return [{"role": "system", "content": f"you are a {role} agent . detail {detail_level} ."},
                {"role": "user", "content": scenario.opening}]

    def respond(self, scenario: Scenario, conversation: Sequence[Message]) -> Optional[Message]:
        """The user's next turn after the agent's last reply, or None when the episode ends."""
        agent_turns = sum(m["role"] == "assistant" for m in conversation)
        if agent_turns >= self.max_turns:
            return None
        asked = "?" in conversation[-1]["content"]
        return {"role": "user", "content": scenario.answer if asked else scenario.follow_up}
