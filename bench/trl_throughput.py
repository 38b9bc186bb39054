"""Throughput against Hugging Face TRL's GRPOTrainer, set up as TRL's docs would for the same work.

Same tiny model and tokenizer, same LoRA adapter (r=16, all linear layers, no dropout), same
reward, single-turn prompts, group size 8 (one prompt per optimizer step, 8 completions of up
to 32 tokens), KL penalty on (both compute reference log-probs through the adapter-disabled
base), sampling at temperature 1 without top-k/top-p, on the CPU. The other side is the fair
one because it matches ours where TRL's defaults differ: fp32 on both sides (TRL would turn
on bf16 autocast, ours keeps the model's fp32 on a CPU), gradient checkpointing measured both
off and on for both (TRL's default is on, ours off), and TRL's `disable_dropout=True`.

Each of the five sides (ours / TRL x checkpointing off / on, and ours with three-turn
conversations) runs `--repeats` times, interleaved, each repeat a fresh trainer with
`--warmup` untimed steps before `--steps` timed ones; figures are medians with their range,
ratios are of medians. Goal: ours >= 1.5x TRL's generated tokens/s, checkpointing off and on.

Multi-turn: TRL 1.16's multi-turn rollouts are tool-calling loops (`environment_factory`,
`tools`: the model's tool calls drive the turns), which a model that emits no tool calls never
enters, so a TRL multi-turn row would time single turns. The three-turn row is ours against
ours single-turn, per generated token (a user-simulator turn between agent turns, every
agent turn's tokens counted).

    pip install -e '.[bench]'; python bench/trl_throughput.py [--repeats 5] [--steps 10]
"""

import argparse
import sys
import time
import warnings

warnings.filterwarnings("ignore")

import torch  # noqa: E402

from harness import Record, interleaved, shown, spread  # noqa: E402
from stateset_hpo.grpo import (ConversationEnvironment, MultiTurnAgent, MultiTurnGRPOTrainer, TrainingConfig,  # noqa: E402
                               build_tiny_model, domain_reward)
from trl_common import timed_trl_run, trl_prompts_and_reward  # noqa: E402

GROUP, MAX_TOKENS, BETA, LR, GOAL = 8, 32, 0.04, 1e-3, 1.5
DOMAIN = "customer_service"


def run_ours(steps: int, warmup: int, checkpointing: bool, turns: int = 1):
    """(seconds per optimizer step, generated tokens per second) over the timed steps."""
    config = TrainingConfig(num_episodes=GROUP * (steps + warmup + 1), per_device_train_batch_size=1,
                            group_size=GROUP, max_new_tokens=MAX_TOKENS, kl_penalty_coef=BETA, learning_rate=LR,
                            include_value_function=False, eval_every=10**6, lora_r=16, lora_alpha=32,
                            lora_dropout=0.0, top_p=1.0, top_k=0, warmup_ratio=0.0,
                            gradient_checkpointing=checkpointing)
    env = ConversationEnvironment(DOMAIN, max_turns=turns)
    trainer = MultiTurnGRPOTrainer(MultiTurnAgent(), env, domain_reward(DOMAIN), config)
    for _ in range(warmup):
        trainer.train_step()
    start, tokens = time.perf_counter(), trainer.generated_tokens
    for _ in range(steps):
        trainer.train_step()
    elapsed = time.perf_counter() - start
    return elapsed / steps, (trainer.generated_tokens - tokens) / elapsed


def run_trl(steps: int, warmup: int, checkpointing: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = str(build_tiny_model())
    prompts, reward_func = trl_prompts_and_reward(DOMAIN)
    return timed_trl_run(AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path),
                         prompts * (steps + warmup + 2), reward_func, steps, warmup, use_cpu=True, bf16=False,
                         gradient_checkpointing=checkpointing, per_device_train_batch_size=GROUP,
                         num_generations=GROUP, max_completion_length=MAX_TOKENS, beta=BETA, learning_rate=LR,
                         temperature=1.0, top_p=1.0, top_k=0, seed=0, lr_scheduler_type="constant")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--warmup, --steps and --repeats must be at least 1")
    torch.manual_seed(0)
    record = Record("trl_throughput", "GRPO steps on the tiny model on the CPU, ours against TRL's GRPOTrainer at "
                    "equal precision (fp32), gradient checkpointing off and on",
                    dict(vars(args), group=GROUP, max_new_tokens=MAX_TOKENS, beta=BETA, domain=DOMAIN,
                         torch_threads=torch.get_num_threads()))
    sides = {"ours": lambda: run_ours(args.steps, args.warmup, False),
             "TRL": lambda: run_trl(args.steps, args.warmup, False),
             "ours, checkpointing": lambda: run_ours(args.steps, args.warmup, True),
             "TRL, checkpointing": lambda: run_trl(args.steps, args.warmup, True),
             "ours, 3 turns": lambda: run_ours(args.steps, args.warmup, False, turns=3)}
    runs = interleaved(sides, args.repeats)
    step = {name: spread([r[0] for r in results]) for name, results in runs.items()}
    tokens = {name: spread([r[1] for r in results]) for name, results in runs.items()}
    record.table(f"Median of {args.repeats} interleaved repeats (range), {args.steps} timed steps each",
                 ["side", "s/step", "steps/s", "generated tokens/s"],
                 [[name, shown(step[name], 3), f"{1 / step[name]['median']:.2f}", shown(tokens[name], 0)]
                  for name in runs])
    ratio = {gc: tokens[f"ours{gc}"]["median"] / tokens[f"TRL{gc}"]["median"] for gc in ("", ", checkpointing")}
    record.goal("ours / TRL generated tokens/s, fp32, no checkpointing", ratio[""], GOAL)
    record.goal("ours / TRL generated tokens/s, fp32, checkpointing", ratio[", checkpointing"], GOAL)
    record.note(f"steps/s ratios: {step['TRL']['median'] / step['ours']['median']:.2f}x without checkpointing, "
                f"{step['TRL, checkpointing']['median'] / step['ours, checkpointing']['median']:.2f}x with; "
                f"ours three-turn / single-turn generated tokens/s: "
                f"{tokens['ours, 3 turns']['median'] / tokens['ours']['median']:.2f}x")
    return record.finish()


if __name__ == "__main__":
    sys.exit(main())
