"""Optimizer and learning-rate schedule from a TrainingConfig.

``adam_beta1`` is the momentum of every family: Adam's first-moment decay, SGD's momentum,
Adafactor's beta1. ``adam_beta2`` and ``adam_epsilon`` are Adam's; Adafactor uses
``adam_epsilon`` as its first regularisation constant, and its second-moment decay follows
its own schedule, so ``adam_beta2`` has no counterpart there (the one parameter the
adafactor family cannot use).
"""

from __future__ import annotations

from typing import Iterable, List

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


def build_scheduler(config: TrainingConfig, optimizer: torch.optim.Optimizer, total_steps: int):
    """Linear warm-up over ``warmup_ratio`` of the steps, then constant, linear or cosine decay
    (transformers' schedules)."""
    from transformers import get_scheduler

    name = "constant_with_warmup" if config.lr_scheduler_type == "constant" else config.lr_scheduler_type
    return get_scheduler(name, optimizer, num_warmup_steps=int(round(config.warmup_ratio * total_steps)),
                         num_training_steps=total_steps)
