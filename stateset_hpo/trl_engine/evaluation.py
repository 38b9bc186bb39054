"""The yardstick for TRL trials: greedy replies to held-out prompts, scored by the task's reward
functions with the study's reward weights.

TRL's own evaluation samples (``num_generations_eval`` completions at the trial's temperature),
so its score moves with the very parameters a study compares; this one decodes greedily with
a fixed length limit, as our engine's evaluation does, so every trial is measured alike.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import torch

from ..grpo.rewards import checked_scores
from .task import TRLTask, _is_conversation, reward_name

BATCH = 16  # prompts generated at once


def replies(model: Any, tokenizer: Any, rows: Sequence[Dict[str, Any]], max_new_tokens: int) -> List[str]:
    """The model's greedy reply to each row's prompt (a chat template for conversations, as TRL applies)."""
    texts = [tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False)
             if _is_conversation(r["prompt"]) else r["prompt"] for r in rows]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out: List[str] = []
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        for start in range(0, len(texts), BATCH):
            batch = tokenizer(texts[start:start + BATCH], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            with torch.no_grad():
                generated = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                                           pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None,
                                           top_k=None)
            out += tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def scores(task: TRLTask, rows: Sequence[Dict[str, Any]], texts: Sequence[str],
           weights: Optional[Sequence[float]], state: Any = None) -> Dict[str, List[float]]:
    """{"reward": the weighted sum per row, "<function>_score": each function's score}. A
    function that abstains (None) on a row adds nothing to its sum, as in TRL."""
    weights = list(weights) if weights is not None else [1.0] * len(task.reward_funcs)
    prompts = [r["prompt"] for r in rows]
    completions = [[{"role": "assistant", "content": t}] if _is_conversation(p) else t for p, t in zip(prompts, texts)]
    columns = {k: [r.get(k) for r in rows] for k in rows[0] if k not in ("prompt", "completion", "completion_ids")}
    total = [0.0] * len(rows)
    out: Dict[str, List[float]] = {}
    for fn, weight in zip(task.reward_funcs, weights):
        name = reward_name(fn)
        got = checked_scores(name, fn(prompts=prompts, completions=completions, completion_ids=[[] for _ in rows],
                                      trainer_state=state, **columns), len(rows))
        total = [t + weight * s if s is not None else t for t, s in zip(total, got)]
        present = [s for s in got if s is not None]
        out[f"{name}_score"] = [sum(present) / len(present)] if present else []
    out["reward"] = total
    return out


def evaluate(task: TRLTask, model: Any, tokenizer: Any, split: str, max_new_tokens: int,
             weights: Optional[Sequence[float]], state: Any = None) -> Dict[str, Any]:
    """The split's scores: ``<prefix>reward`` (the mean), each function's mean, per-row
    ``<prefix>reward[i]`` for the test split (validation pairs them), and the replies.
    ``state``: the trainer's TrainerState, passed to the reward functions as TRL passes it."""
    rows = task.selection if split == "selection" else task.test
    prefix = "eval_" if split == "selection" else "test_"
    texts = replies(model, tokenizer, rows, max_new_tokens)
    got = scores(task, rows, texts, weights, state)
    per_row = got.pop("reward")
    metrics: Dict[str, Any] = {f"{prefix}reward": sum(per_row) / len(per_row)}
    metrics.update({f"{prefix}{name}": values[0] for name, values in got.items() if values})
    if split == "test":
        metrics.update({f"test_reward[{i}]": value for i, value in enumerate(per_row)})
    if not all(math.isfinite(v) for v in per_row):
        raise ValueError(f"the {split} scores are not all finite: {per_row[:8]}")
    return {"metrics": metrics, "replies": texts}
