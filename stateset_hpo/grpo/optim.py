"""Optimizer and learning-rate schedule from a TrainingConfig.

``adam_beta1`` is the momentum of every family: Adam's first-moment decay, SGD's momentum,
Adafactor's beta1. ``adam_beta2`` and ``adam_epsilon`` are Adam's; Adafactor uses
``adam_epsilon`` as its first regularisation constant, and its second-moment decay follows
its own schedule, so ``adam_beta2`` has no counterpart there (the one parameter the
adafactor family cannot use).
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, List

import torch

from .config import TrainingConfig


def build_optimizer(config: TrainingConfig, policy_params: Iterable[torch.nn.Parameter],
                    value_params: Iterable[torch.nn.Parameter] = ()) -> torch.optim.Optimizer:
    groups: List[dict] = [{"params": list(policy_params), "lr": config.learning_rate}]
    value_params = list(value_params)
    if value_params:
        groups.append({"params": value_params, "lr": config.learning_rate * config.value_lr_multiplier})
    kind = config.optimizer_type
    if kind in ("adamw", "adam"):
        cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
        return cls(groups, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                   eps=config.adam_epsilon, weight_decay=config.weight_decay)
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=config.learning_rate, momentum=config.adam_beta1,
                               weight_decay=config.weight_decay)
    from transformers.optimization import Adafactor

    return Adafactor(groups, lr=config.learning_rate, eps=(config.adam_epsilon, 1e-3), beta1=config.adam_beta1,
                     weight_decay=config.weight_decay, relative_step=False, scale_parameter=False, warmup_init=False)


def lr_factor(config: TrainingConfig) -> Callable[[int], float]:
    """The learning rate at an optimizer step, as a fraction of ``learning_rate``.

    Warm-up over the first ``warmup_ratio`` of the episodes, then constant, linear or cosine
    decay over the rest. Our own schedule rather than transformers' because those count
    optimizer steps and start the warm-up at lr 0: a 3-step run with a 5% warm-up spent its
    first step at lr 0. Here the schedule counts episodes (sampled conversations), so runs with
    other batch sizes warm up over the same share of their data, and the first step already
    has the lr of the episodes it trains on (never 0). Decay is measured at the start of each
    iteration, so the last step's lr is not 0 either.
    """
    per_iteration = config.episodes_per_iteration
    total = config.total_iterations * per_iteration
    warmup = config.warmup_ratio * total

    def factor(step: int) -> float:
        done = (step // config.num_iterations) * per_iteration  # episodes trained before this iteration
        warm = min(1.0, (done + per_iteration) / warmup) if warmup > 0 else 1.0
        progress = max(0.0, done - warmup) / max(total - warmup, 1.0)
        if config.lr_scheduler_type == "linear":
            return warm * (1.0 - progress)
        if config.lr_scheduler_type == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
        return warm

    return factor


def build_scheduler(config: TrainingConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config))
