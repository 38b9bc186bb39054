"""The GRPO policy loss of one micro-batch: a pure function of log-probs, advantages and the
config (clipped ratio, k3 KL penalty to the reference, entropy bonus, TRL's loss types)."""

from __future__ import annotations

import torch

from .config import TrainingConfig


def policy_loss(c: TrainingConfig, logp, old_logp, ref_logp, entropy, advantages, mask, batch_tokens=None):
    """One micro-batch's share of the step's loss (already divided for accumulation) and its
    token sums (kl, entropy, clip_ratio, tokens). ``logp``/``old_logp``/``ref_logp``/``entropy``
    and ``mask``: (sequences, completion tokens); ``advantages``: (sequences, 1).

    ``loss_type`` follows TRL's definitions: grpo averages each sequence over its tokens,
    then the sequences; bnpo averages over the micro-batch's tokens; dapo over the tokens of
    the whole accumulated batch (``batch_tokens``); dr_grpo divides by a constant (sequences
    x ``max_new_tokens``), so no length bias."""
    ratio = torch.exp(logp - old_logp)
    high = c.clip_range_high if c.clip_range_high is not None else c.clip_range
    clipped = ratio.clamp(1 - c.clip_range, 1 + high)
    per_token = -torch.min(ratio * advantages, clipped * advantages)
    delta = ref_logp - logp
    kl = torch.exp(delta) - delta - 1  # k3 estimator of KL(policy || reference)
    per_token = (per_token + c.kl_penalty_coef * kl - c.entropy_coef * entropy) * mask
    if c.loss_type == "dapo":  # normalised by the whole step's tokens: already its share
        loss = per_token.sum() / batch_tokens
    elif c.loss_type == "grpo":
        loss = (per_token.sum(-1) / mask.sum(-1).clamp(min=1)).mean() / c.gradient_accumulation_steps
    elif c.loss_type == "bnpo":
        loss = per_token.sum() / mask.sum().clamp(min=1) / c.gradient_accumulation_steps
    else:
        loss = per_token.sum() / (mask.shape[0] * c.max_new_tokens) / c.gradient_accumulation_steps
    with torch.no_grad():
        was_clipped = ((ratio * advantages) > (clipped * advantages)).float()
        stats = {"kl": (kl * mask).sum().item(), "entropy": (entropy * mask).sum().item(),
                 "clip_ratio": (was_clipped * mask).sum().item(), "tokens": mask.sum().item()}
    return loss, stats
