"""An order-status bot as a task of your own: its scenarios (examples/data/order_status.jsonl,
in the guide's shape) and a reward function in TRL's convention. `make_task` is what the
command line's ``--task examples.order_status:make_task`` calls."""

import re
from pathlib import Path

from stateset_hpo.grpo import CompositeReward, ConversationEnvironment, CorrectnessReward, TaskCompletionReward

SCENARIOS = Path(__file__).parent / "data" / "order_status.jsonl"


def cites_the_order(prompts, completions, context, **kwargs):
    """TRL's convention: one score per completion. 1 when the reply names the customer's order
    number (from the scenario's context, "order: 6305 ; item: ..."), else 0."""
    numbers = [re.search(r"order: (\d+)", c) for c in context]
    return [float(bool(n) and n.group(1) in completion) for n, completion in zip(numbers, completions)]


def make_task():
    """(environment, reward): 96 scenarios (48 train, 12 selection, 36 test), and the reward."""
    environment = ConversationEnvironment(SCENARIOS)
    reward = CompositeReward([(cites_the_order, 0.4), (CorrectnessReward(), 0.3), (TaskCompletionReward(), 0.3)])
    return environment, reward
