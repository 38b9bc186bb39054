"""The CLI's way to a user's own task: ``--task module:function``, or ``--scenarios FILE`` with
``--reward`` components, resolved and checked before any cluster work.

``--task pkg.tasks:make`` imports ``make`` (the working directory is on the import path, as
for ``ray job submit --working-dir``) and calls it with no arguments; it returns
``(environment, reward)`` or a mapping with those keys. ``--scenarios FILE`` reads scenarios in
the guide's shape (`grpo.user_scenarios`); each ``--reward`` is a built-in component
(``safety``), a TRL-style function (``pkg.rewards:judge``), either with ``=WEIGHT`` (default 1).
Without ``--reward`` the scenarios are scored by every built-in component, equally weighted.
``--judge MODEL[=WEIGHT]`` adds a local LLM judge (`grpo.judge.JudgeReward`) to the reward of
``--scenarios`` or of the built-in task (a ``--task`` builds its own reward: add it there).
The reward is then called once on a scenario's reference reply, so a function that returns the
wrong shape fails here with what it returned, not hours later in a trial.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

from .grpo import CompositeReward, ConversationEnvironment, default_reward, make_reward
from .grpo.judge import JudgeReward
from .grpo.rewards import REWARDS, FunctionReward, ReplyContext
from .grpo.user_scenarios import FILE_SUFFIXES, looks_like_file

if TYPE_CHECKING:
    from .trial import TrialSpec


def import_object(text: str, flag: str) -> Any:
    """``module:attribute`` imported, with the working directory on the path; ValueError otherwise."""
    module_name, sep, attribute = text.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{flag} takes module:function, got {text!r}")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # a missing module, a syntax error, code that raises on import
        raise ValueError(f"{flag} {text}: cannot import {module_name!r} ({type(exc).__name__}: {exc})") from None
    if not hasattr(module, attribute):
        raise ValueError(f"{flag} {text}: module {module_name!r} has no {attribute!r}")
    return getattr(module, attribute)


def name_and_weight(item: str, flag: str) -> Tuple[str, float]:
    """``NAME[=WEIGHT]`` -> (name, weight), the weight 1 when not given."""
    name, sep, weight_text = item.rpartition("=") if "=" in item else (item, "", "")
    try:
        return name, float(weight_text) if sep else 1.0
    except ValueError:
        raise ValueError(f"{flag} {item}: the weight {weight_text!r} is not a number") from None


def reward_from_flags(items: Sequence[str]) -> CompositeReward:
    """``--reward NAME[=WEIGHT]`` items: built-in components or module:function rewards."""
    components = []
    for item in items:
        name, weight = name_and_weight(item, "--reward")
        if ":" in name:
            components.append((FunctionReward(import_object(name, "--reward")), weight))
        elif name in REWARDS:
            components.append((make_reward(name), weight))
        else:
            raise ValueError(f"--reward {item}: {name!r} is no built-in reward ({', '.join(REWARDS)}) and no "
                             "module:function")
    return CompositeReward(components)


def task_from_flags(task: Optional[str], scenarios: Optional[str], rewards: Sequence[str], judge: Optional[str] = None,
                    builtin: Optional["TrialSpec"] = None) -> Optional[Tuple[ConversationEnvironment, CompositeReward]]:
    """(environment, reward) of the flags, checked with a dry call of the reward; None without any.
    ``builtin``: the study's task when no --task / --scenarios gives one (what --judge adds to)."""
    if task and (scenarios or rewards or judge):
        raise ValueError("--task gives the environment and the reward: use it without --scenarios, --reward and "
                         "--judge (add a grpo.judge.JudgeReward to your task's reward)")
    if rewards and not scenarios:
        raise ValueError("--reward needs --scenarios (or use --task to give both)")
    if task:
        function = import_object(task, "--task")
        try:
            made = function()
        except (Exception, SystemExit) as exc:  # (SystemExit: a function that calls sys.exit would end the CLI)
            raise ValueError(f"--task {task}: calling it failed: {type(exc).__name__}: {exc}") from None
        environment, reward = (made.get("environment"), made.get("reward")) if isinstance(made, dict) else \
            (made if isinstance(made, tuple) and len(made) == 2 else (None, None))
        if not isinstance(environment, ConversationEnvironment):
            raise ValueError(f"--task {task} must return (environment, reward) or a dict with those keys, with a "
                             f"ConversationEnvironment; got {made!r}"[:400])
        reward = reward if isinstance(reward, CompositeReward) else CompositeReward(
            reward if isinstance(reward, (list, tuple)) else [(reward, 1.0)])
    elif scenarios:
        if not Path(scenarios).expanduser().is_file():
            raise ValueError(f"--scenarios {scenarios}: no such file")
        if not looks_like_file(scenarios):  # (a bare name would be read as a built-in domain)
            raise ValueError(f"--scenarios {scenarios}: a scenario file must end with one of {', '.join(FILE_SUFFIXES)}")
        environment = ConversationEnvironment(scenarios)
        reward = reward_from_flags(rewards) if rewards else default_reward()
    elif judge and builtin is not None:
        environment, reward = builtin.environment, builtin.reward
    else:
        return None
    dry_call(environment, reward)
    if judge:
        model, weight = name_and_weight(judge, "--judge")
        judge_reward = JudgeReward(model)
        try:
            judge_reward.check()  # the judge itself is not called here: its weights load on the trials' workers
        except ValueError as exc:
            raise ValueError(f"--judge {judge}: {exc}") from None
        reward = CompositeReward([*reward.components, (judge_reward, weight)])
    return environment, reward


def trl_task_from_flags(dataset: str, rewards: Sequence[str], other: Any = None) -> "TrialSpec":
    """``--dataset FILE --reward module:function[=WEIGHT] ...``: a TRL task (`trl_engine.TRLTask`),
    its reward functions checked with a call as TRL makes it; the weights become GRPOConfig's
    ``reward_weights``."""
    from .trial import TrialSpec
    from .trl_engine import TRLTask

    if other:
        raise ValueError("--dataset gives the prompts: use it without --task, --scenarios and --judge")
    if not rewards:
        raise ValueError("--dataset needs at least one --reward module:function (TRL's reward functions)")
    functions, weights = [], []
    for item in rewards:
        name, weight = name_and_weight(item, "--reward")
        if ":" not in name:
            raise ValueError(f"--reward {item}: with --dataset a reward is a module:function taking TRL's arguments "
                             f"(the built-in components score the guide's scenarios: use --scenarios for them)")
        functions.append(import_object(name, "--reward"))
        weights.append(weight)
    task = TRLTask.from_dataset(dataset, functions)
    return TrialSpec.for_trl(task, {"reward_weights": weights} if any(w != 1.0 for w in weights) else None)


def dry_call(environment: ConversationEnvironment, reward: CompositeReward) -> List[float]:
    """Score one scenario's reference reply with every component: a reward that raises or
    returns the wrong shape fails before the study starts, naming itself."""
    s = environment.train_scenarios[0]
    context = ReplyContext(s, tuple(environment.start(s)), s.reply)
    try:
        return [reward.combine(scores) for scores in reward.scores_batch([context])]
    except (Exception, SystemExit) as exc:  # (SystemExit: a reward that calls sys.exit would end the CLI)
        raise ValueError(f"the reward failed on the reference reply of scenario {s.id!r}: "
                         f"{type(exc).__name__}: {exc}") from None
