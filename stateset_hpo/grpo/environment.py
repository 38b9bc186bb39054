"""Multi-turn conversations: the scenario's user opens, the agent replies, a scripted user
simulator answers, for up to ``max_turns`` agent turns.

The simulator is keyed by the scenario and reacts to the agent: a reply that asks the user
something gets the scenario's answer; one that does not gets a follow-up complaint. So an
episode is a real alternation of agent and user turns whose course depends on the agent. A
user's own scenario (`user_scenarios`) plays its scripted ``user_responses`` in order instead,
as the replaced system's environment does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from .scenarios import DOMAINS, SPLITS, Scenario, get_scenarios
from .user_scenarios import load_scenarios, looks_like_file

Message = Dict[str, str]


class ConversationEnvironment:
    """Scenarios in three disjoint splits, and the user side of each conversation.

    ``scenarios`` are `Scenario` objects, domain names, or a user's own scenarios: mappings in
    the guide's shape, a .jsonl / .json / .yaml file of them or a ``datasets.Dataset`` (see
    `user_scenarios`). The splits: ``train_scenarios``
    (rollouts), ``selection_scenarios`` (the held-out score a search optimises and prunes on,
    ``eval_*``) and ``test_scenarios`` (touched only by validation, ``test_*``). Scenarios
    keep the split they are marked with; "eval" (this project's earlier name for a held-out
    scenario) counts as selection. When nothing is held out at all, every ``1/eval_fraction``
    -th scenario goes to selection and the one after it to test; when only one held-out split
    is marked, the other is carved from the training scenarios the same way.

    ``user_simulator`` (optional) plays the user instead of the scripts: called as
    ``user_simulator(scenario, conversation)`` after each agent reply (the conversation so far,
    a list of {"role", "content"} messages), it returns the user's next message (a string or a
    {"role": "user", "content": ...} mapping) or None to end the conversation; it may be
    ``async``, as the replaced system's environments are. ``max_turns`` still bounds the
    conversation.
    """

    def __init__(self, scenarios: Union[Sequence[Scenario], Sequence[str], str, Any] = DOMAINS, max_turns: int = 2,
                 eval_fraction: float = 0.2, user_simulator: Optional[Callable[..., Any]] = None) -> None:
        if user_simulator is not None and not callable(user_simulator):
            raise ValueError(f"user_simulator must be a function (scenario, conversation) -> message or None, "
                             f"got {user_simulator!r}")
        self.user_simulator = user_simulator
        if isinstance(scenarios, Path) or (isinstance(scenarios, str) and looks_like_file(scenarios)) or \
                hasattr(scenarios, "column_names"):  # a file or a datasets.Dataset
            scenarios = load_scenarios(scenarios)
        if isinstance(scenarios, str):
            scenarios = [scenarios]
        scenarios = list(scenarios)
        if not scenarios:
            raise ValueError("ConversationEnvironment needs at least one scenario")
        if all(isinstance(s, str) for s in scenarios):
            scenarios = get_scenarios(scenarios)
        elif any(isinstance(s, Mapping) for s in scenarios):  # (a row that is no mapping is named there)
            scenarios = load_scenarios(scenarios)
        if not all(isinstance(s, Scenario) for s in scenarios):
            raise ValueError("scenarios must be Scenario objects, mappings in the guide's shape (id, topic, user_goal, "
                             f"user_responses, ...), a scenario file, or domain names ({', '.join(DOMAINS)})")
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns must be an integer >= 1, got {max_turns!r}")
        if not 0 < eval_fraction < 0.5:
            raise ValueError(f"eval_fraction must be in (0, 0.5), got {eval_fraction!r}")
        bad = sorted({s.split for s in scenarios} - set(SPLITS) - {"eval"})
        if bad:
            raise ValueError(f"scenario split {bad[0]!r} is none of {', '.join(SPLITS)}")
        train = [s for s in scenarios if s.split == "train"]
        selection = [s for s in scenarios if s.split in ("selection", "eval")]
        test = [s for s in scenarios if s.split == "test"]
        step = max(3, round(1 / eval_fraction))

        def carve(pool):  # (every step-th scenario, the rest)
            return pool[step - 2::step], [s for i, s in enumerate(pool) if i % step != step - 2]

        if not selection:
            selection, train = carve(train)
        if not test:
            test, train = carve(train)
        if not train or not selection or not test:
            raise ValueError(f"need training, selection and test scenarios (got {len(train)}, {len(selection)} and "
                             f"{len(test)}); pass more scenarios")
        self.train_scenarios: List[Scenario] = train
        self.selection_scenarios: List[Scenario] = selection
        self.test_scenarios: List[Scenario] = test
        self.max_turns = max_turns

    def held_out(self, split: str) -> List[Scenario]:
        """The scenarios of a held-out split: "selection" or "test"."""
        if split not in ("selection", "test"):
            raise ValueError(f"held-out split must be 'selection' or 'test', got {split!r}")
        return self.selection_scenarios if split == "selection" else self.test_scenarios

    @property
    def scenarios(self) -> List[Scenario]:
        """Every scenario, of all three splits."""
        return self.train_scenarios + self.selection_scenarios + self.test_scenarios

    @property
    def domains(self) -> List[str]:
        return sorted({s.domain for s in self.scenarios})

    def sample(self, n: int, rng: random.Random) -> List[Scenario]:
        """``n`` training scenarios, drawn without replacement until each was seen once."""
        return [self.train_scenarios[i % len(self.train_scenarios)]
                for i in rng.sample(range(max(n, len(self.train_scenarios))), n)]

    def start(self, scenario: Scenario, detail_level: str = "moderate") -> List[Message]:
        """The conversation up to the agent's first turn."""
        role = scenario.domain.replace("_", " ")
        context = f" {scenario.context}" if scenario.context else ""
        return [{"role": "system", "content": f"you are a {role} agent . detail {detail_level} .{context}"},
                {"role": "user", "content": scenario.opening}]

    def respond(self, scenario: Scenario, conversation: Sequence[Message]) -> Optional[Message]:
        """The user's next turn after the agent's last reply, or None when the episode ends."""
        agent_turns = sum(m["role"] == "assistant" for m in conversation)
        if agent_turns >= self.max_turns:
            return None
        if self.user_simulator is not None:
            return _user_message(_awaited(self.user_simulator(scenario, [dict(m) for m in conversation])))
        if scenario.scripted:  # a user's own scenario: its script, in order
            turns = scenario.user_turns
            return {"role": "user", "content": turns[agent_turns - 1]} if agent_turns <= len(turns) else None
        asked = "?" in conversation[-1]["content"]
        return {"role": "user", "content": scenario.answer if asked else scenario.follow_up}


def _awaited(value: Any) -> Any:
    """An async simulator's result: run to completion here (in a worker thread when this thread
    already runs an event loop, which asyncio.run refuses)."""
    if not inspect.isawaitable(value):
        return value

    async def wait() -> Any:
        return await value

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, wait()).result()


def _user_message(said: Any) -> Optional[Message]:
    if said is None:
        return None
    if isinstance(said, str):
        return {"role": "user", "content": said}
    if isinstance(said, Mapping) and isinstance(said.get("content"), str) and said.get("role", "user") == "user":
        return {"role": "user", "content": said["content"]}
    raise ValueError(f"the user simulator must return the user's message (a string or a {{'role': 'user', "
                     f"'content': ...}} mapping) or None, got {said!r}")
