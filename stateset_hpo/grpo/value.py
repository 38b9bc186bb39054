"""Value head and GAE over the agent turns of a multi-turn episode.

With ``include_value_function``, the advantage of each agent turn is its generalised
advantage estimate instead of the episode's group-relative reward, so a turn is credited
for what it changed rather than for the whole conversation.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn


class ValueHead(nn.Module):
    """MLP from the policy's last hidden state at the end of a prompt to a scalar value."""

    def __init__(self, hidden_size: int, head_size: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, head_size), nn.Tanh(),
                                 nn.Dropout(dropout), nn.Linear(head_size, 1))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden.float()).squeeze(-1)


def gae(rewards: Sequence[float], values: Sequence[float], gamma: float, lam: float) -> Tuple[List[float], List[float]]:
    """Advantages and returns of one episode's turns; the value after the last turn is 0."""
    advantages = [0.0] * len(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(values) else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        advantages[t] = running
    returns = [a + v for a, v in zip(advantages, values)]
    return advantages, returns
