"""Advantages: how much better each agent turn did than its prompt group expected.

Pure functions of rewards (and value estimates), no model, so the maths is tested in
milliseconds. The trainer calls `group_advantages` once per prompt group and `scaled` once
per batch.

Without the value function every turn of an episode gets the episode's reward minus the mean
over the group's episodes (each counted once: a longer conversation is no heavier). With it, a
turn's GAE is centred on the mean GAE of the same turn position among the group's episodes (a
position only one episode reached gets 0: nothing to compare it with). Centring all turns
together instead let the critic's bias by position through: an untrained value head gave turn
1 a mean advantage of +0.25 std and turn 2 -0.25, whatever the replies. A group whose episode
rewards are all equal teaches nothing and gets zero advantages in both modes (a tiny std must
not blow up into large same-sign ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from .value import gae

EQUAL = 1e-8  # episode rewards closer than this are equal: the group has no signal
EPSILON = 1e-4  # added to the std that scales advantages


@dataclass
class GroupAdvantages:
    advantages: List[List[float]]  # per episode, per turn
    returns: Optional[List[List[float]]]  # the value head's targets (with the value function)
    informative: bool  # the episodes' rewards differ: the group teaches something


def group_advantages(rewards: Sequence[Sequence[float]], values: Optional[Sequence[Sequence[float]]] = None,
                     gamma: float = 1.0, lam: float = 1.0) -> GroupAdvantages:
    """One prompt group: ``rewards[e][k]`` is the reward of episode e's turn k, ``values`` the
    value head's estimates at the same turns (None: no value function)."""
    episode = [float(np.mean(r)) for r in rewards]
    informative = bool(np.std(episode) >= EQUAL)
    returns = None
    if values is None:
        mean = float(np.mean(episode))
        advantages = [[r - mean] * len(turns) for r, turns in zip(episode, rewards)]
    else:
        estimated = [gae(r, v, gamma, lam) for r, v in zip(rewards, values)]
        advantages = [list(a) for a, _ in estimated]
        returns = [list(ret) for _, ret in estimated]
        for k in range(max(len(a) for a in advantages)):
            at_k = [a for a in advantages if len(a) > k]
            mean = float(np.mean([a[k] for a in at_k]))
            for a in at_k:
                a[k] -= mean
    if not informative:
        advantages = [[0.0] * len(a) for a in advantages]
    return GroupAdvantages(advantages, returns, informative)


def scaled(groups: Sequence[GroupAdvantages], advantage_std: str) -> List[List[List[float]]]:
    """Every group's advantages divided by the std of the group ("group"), of the batch's
    informative groups ("batch") or not at all ("none")."""
    informative = [a for g in groups if g.informative for episode in g.advantages for a in episode]
    batch_std = float(np.std(informative)) if informative else 0.0
    out = []
    for g in groups:
        if advantage_std == "group":
            std = float(np.std([a for episode in g.advantages for a in episode]))
        else:
            std = batch_std if advantage_std == "batch" else 1.0
        out.append([[float(a / (std + EPSILON)) for a in episode] for episode in g.advantages])
    return out
