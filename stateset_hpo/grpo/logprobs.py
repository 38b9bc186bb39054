"""Per-token log-probs and entropies of the distribution rollouts were really sampled from,
without vocabulary-sized copies.

The sampling distribution: Hugging Face's `generate` turns the model's logits into the
distribution it samples from with, in this order, the repetition penalty (on the raw logits,
for every token of the prompt and of the reply so far, left padding ignored), the temperature,
top-k and top-p. The policy-gradient ratio and the KL penalty must use the log-probs of that
same distribution, or every update with top-k / top-p / a repetition penalty (the guide's
`generation` space samples all three) is off-policy by an amount nobody sees. So the rollout's
own `SamplingSettings` are applied to the training logits, step by step. One change: the token
that was sampled is always kept in the top-k / top-p set. When the policy equals the one that
sampled (the first update of every rollout) it was in the set anyway, so nothing changes;
after updates, or with dropout, a token just outside the new set keeps a finite, differentiable
log-prob instead of -inf (which would turn the ratio and the KL estimate into NaN).

Memory: a batch's completion logits are (sequences x tokens x vocabulary): with a 150k-token
vocabulary (Qwen, Llama 3) a float32 copy of them is gigabytes, and the plain `log_softmax` ->
`gather` -> `exp() * logp` chain keeps several such copies alive for the backward pass (measured
on a 0.5B Qwen2-shaped model, 32 completions of 64 tokens: 12.2 GiB peak against TRL's 1.5 GiB).
Here the vocabulary-sized float32 work happens a few rows at a time, and under autograd each
chunk is recomputed in the backward pass (`torch.utils.checkpoint`) instead of stored, so the
only vocabulary-sized tensors alive are the model's own logits and their gradient. Unlike TRL's
`selective_log_softmax`, which takes the log-softmax in the logits' dtype (bf16 on a GPU), the
sums here are float32 whatever the model's dtype: importance ratios of bf16 log-probs are noisy.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch.utils.checkpoint import checkpoint

from .agent import SamplingSettings

CHUNK_BYTES = 256 * 2**20  # float32 work per chunk, and the most kept for backward without recomputing


def _truncates(dist: SamplingSettings) -> bool:
    return dist.top_k > 0 or dist.top_p < 1.0


def _bytes_per_entry(dist: SamplingSettings) -> int:
    """float32 work per vocabulary entry (top-p sorts: values, int64 indices, cumulative sums)."""
    return 4 + (20 if dist.top_p < 1.0 else 0) + (2 if dist.repetition_penalty != 1.0 else 0)


def _scores(logits: torch.Tensor, targets: torch.Tensor, dist: SamplingSettings,
            prompt_tokens: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(the sampling distribution's logits, the mask of the tokens it keeps or None for all)."""
    scores = logits.float()
    if dist.repetition_penalty != 1.0:
        with torch.no_grad():  # seen[b, t, v]: token v is in the prompt or in the reply before position t
            seen = torch.zeros(scores.shape, dtype=torch.uint8, device=scores.device)
            seen.scatter_(2, targets.unsqueeze(-1), 1)
            seen = seen.cummax(dim=1).values
            seen = torch.cat([torch.zeros_like(seen[:, :1]), seen[:, :-1]], dim=1).bool()
            if prompt_tokens is not None:
                seen |= prompt_tokens.unsqueeze(1)
        penalised = torch.where(scores < 0, scores * dist.repetition_penalty, scores / dist.repetition_penalty)
        scores = torch.where(seen, penalised, scores)
    scores = scores / dist.temperature
    if not _truncates(dist):
        return scores, None
    with torch.no_grad():
        keep = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
        if 0 < dist.top_k < scores.shape[-1]:
            keep = scores >= torch.topk(scores, dist.top_k, dim=-1).values[..., -1:]
        if dist.top_p < 1.0:
            ordered, order = torch.sort(scores.masked_fill(~keep, float("-inf")), dim=-1)
            drop = ordered.softmax(dim=-1).cumsum(dim=-1) <= 1 - dist.top_p
            drop[..., -1] = False  # the most likely token always stays
            keep &= ~drop.scatter(-1, order, drop)
        keep.scatter_(-1, targets.unsqueeze(-1), True)  # the sampled token stays (module docstring)
    return scores.masked_fill(~keep, float("-inf")), keep


def _chunk(logits: torch.Tensor, targets: torch.Tensor, dist: SamplingSettings,
           prompt_tokens: Optional[torch.Tensor], entropy_grad: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    scores, keep = _scores(logits, targets, dist, prompt_tokens)
    lse = torch.logsumexp(scores, dim=-1)
    logp = scores.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - lse
    with torch.set_grad_enabled(torch.is_grad_enabled() and entropy_grad):
        finite = scores if keep is None else scores.masked_fill(~keep, 0.0)  # 0 * -inf would be NaN
        entropy = lse - (torch.softmax(scores, dim=-1) * finite).sum(-1)  # -sum p log p
    return logp, entropy


def prompt_token_mask(ids: torch.Tensor, attention: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(rows x vocabulary) bool: which tokens each row's prompt holds (padding left out), what
    the repetition penalty acts on besides the reply so far."""
    counts = torch.zeros(ids.shape[0], vocab_size, dtype=torch.long, device=ids.device)
    return counts.scatter_add_(1, ids, attention.long()) > 0


def token_logp_and_entropy(logits: torch.Tensor, targets: torch.Tensor, dist: SamplingSettings,
                           entropy_grad: bool, prompt_tokens: Optional[torch.Tensor] = None
                           ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(log-prob of each target token, entropy of each position) under the distribution the
    rollout's sampling settings `dist` sample from, both float32 (rows x tokens).

    `logits` is (rows x tokens x vocabulary) in any dtype, `targets` the completion tokens,
    `prompt_tokens` the rows' `prompt_token_mask` (needed with a repetition penalty). The
    entropy carries a gradient only with `entropy_grad` (an entropy bonus in the loss);
    otherwise it is a metric."""
    if dist.repetition_penalty != 1.0 and prompt_tokens is None:
        raise ValueError("a repetition penalty acts on the prompt's tokens too: pass prompt_tokens")
    rows, tokens, vocab = logits.shape
    step = max(1, CHUNK_BYTES // max(1, tokens * vocab * _bytes_per_entry(dist)))
    # recompute in the backward pass only what is too large to keep (not a tiny model's logits)
    recompute = torch.is_grad_enabled() and logits.requires_grad and logits.numel() * 4 > CHUNK_BYTES
    logps, entropies = [], []
    for start in range(0, rows, step):
        rows_prompt = None if prompt_tokens is None else prompt_tokens[start:start + step]
        args = (logits[start:start + step], targets[start:start + step], dist, rows_prompt, entropy_grad)
        logp, entropy = checkpoint(_chunk, *args, use_reentrant=False) if recompute else _chunk(*args)
        logps.append(logp)
        entropies.append(entropy)
    return torch.cat(logps), torch.cat(entropies)
