"""Throughput against Hugging Face TRL's GRPOTrainer, measured side by side in one run.

Same tiny model and tokenizer, same LoRA adapter, same reward, single-turn prompts, group
size 8 (one prompt per optimizer step, 8 completions), completions of up to 32 tokens, KL
penalty on (so both compute reference log-probs), on the CPU. Prints seconds per optimizer
step and generated tokens per second for both, and the ratio. Target: ours >= 1.5x TRL's
steps per second.

    pip install -e '.[bench]'; python bench/trl_throughput.py [--steps 30] [--warmup 3]
"""

import argparse
import time
import warnings

warnings.filterwarnings("ignore")

import torch  # noqa: E402

from stateset_hpo.grpo import (ConversationEnvironment, MultiTurnAgent, MultiTurnGRPOTrainer, TrainingConfig,  # noqa: E402
                               build_tiny_model, domain_reward)
from trl_common import step_clock, trl_prompts_and_reward  # noqa: E402

GROUP, MAX_TOKENS, BETA, LR = 8, 32, 0.04, 1e-3
DOMAIN = "customer_service"


def run_ours(steps: int, warmup: int):
    config = TrainingConfig(num_episodes=GROUP * (steps + warmup + 1), per_device_train_batch_size=1,
                            group_size=GROUP, max_new_tokens=MAX_TOKENS, kl_penalty_coef=BETA, learning_rate=LR,
                            include_value_function=False, eval_every=10**6, lora_r=16, lora_alpha=32,
                            lora_dropout=0.0, top_p=1.0, top_k=0, warmup_ratio=0.0)
    env = ConversationEnvironment(DOMAIN, max_turns=1)
    trainer = MultiTurnGRPOTrainer(MultiTurnAgent(), env, domain_reward(DOMAIN), config)
    for _ in range(warmup):
        trainer.train_step()
    start, tokens = time.perf_counter(), 0
    for _ in range(steps):
        m = trainer.train_step()
        tokens += m["completion_length"] * GROUP
    elapsed = time.perf_counter() - start
    return elapsed / steps, tokens / elapsed


def run_trl(steps: int, warmup: int):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    path = str(build_tiny_model())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    prompts, reward_func = trl_prompts_and_reward(DOMAIN)
    rows = prompts * (steps + warmup + 2)
    clock = step_clock()

    args = GRPOConfig(output_dir="/tmp/trl_bench", use_cpu=True, per_device_train_batch_size=GROUP,
                      num_generations=GROUP, max_completion_length=MAX_TOKENS, beta=BETA, learning_rate=LR,
                      max_steps=steps + warmup, logging_steps=1, report_to="none", save_strategy="no",
                      temperature=1.0, top_p=1.0, top_k=0, seed=0, lr_scheduler_type="constant")
    trainer = GRPOTrainer(model=model, reward_funcs=reward_func, args=args, processing_class=tokenizer,
                          train_dataset=Dataset.from_list(rows),
                          peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"),
                          callbacks=[clock])
    trainer.train()
    stamps = clock.stamps
    timed = stamps[warmup:]
    elapsed = stamps[-1] - stamps[warmup - 1] if warmup else stamps[-1] - stamps[0]
    lengths = [log["completions/mean_length"] for log in trainer.state.log_history
               if "completions/mean_length" in log][warmup:]
    tokens = sum(lengths) * GROUP
    return elapsed / len(timed), tokens / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}; group {GROUP}, up to {MAX_TOKENS} tokens, "
          f"{args.steps} timed steps after {args.warmup} warm-up steps")
    ours = run_ours(args.steps, args.warmup)
    trl = run_trl(args.steps, args.warmup)
    print(f"{'':8s} {'s/step':>8s} {'steps/s':>8s} {'gen tok/s':>10s}")
    for name, (sec, tps) in (("ours", ours), ("TRL", trl)):
        print(f"{name:8s} {sec:8.3f} {1 / sec:8.2f} {tps:10.1f}")
    print(f"ratio ours/TRL: steps/s {trl[0] / ours[0]:.2f}x, generated tokens/s {ours[1] / trl[1]:.2f}x")


if __name__ == "__main__":
    main()
