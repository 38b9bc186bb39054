"""GPU smoke run: a few GRPO steps on a ~0.5B Qwen2-style model in bf16 with LoRA, ours and TRL's.

For a machine with an NVIDIA GPU and no network: the model is built from a config with random
weights (the Qwen2.5-0.5B shape) and the tiny local tokenizer, saved, and loaded back through
`from_pretrained` like any hub model. Prints generated tokens/s, seconds per step and peak GPU
memory for both trainers (ours with and without gradient checkpointing, which TRL does by
default); then runs 10 one-iteration warm trials in a row on that model
(grpo/model_pool.py: one loaded base model lent to each LoRA trial) and prints the GPU memory
allocated after each, which must come back to the base model's own each time (nothing a trial
held is left behind). ``--tiny`` shrinks the model so the script can be checked on a CPU.

    bash bench/gpu_smoke.sh [--steps 4] [--tiny] [--warm-trials 10]
"""

import argparse
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

import torch  # noqa: E402

from stateset_hpo.grpo import (AgentConfig, ConversationEnvironment, MultiTurnAgent, MultiTurnGRPOTrainer,  # noqa: E402
                               TrainingConfig, build_tiny_model, domain_reward)
from trl_common import step_clock, trl_prompts_and_reward  # noqa: E402

QWEN2_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, max_position_embeddings=4096, tie_word_embeddings=True)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=4096, max_position_embeddings=1024, tie_word_embeddings=True)
GROUP, MAX_TOKENS, DOMAIN = 8, 64, "customer_service"


def build_model(folder: str, shape: dict, dtype: torch.dtype) -> int:
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(build_tiny_model()))
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id, **shape)).to(dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def peak_memory_gb() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def run_ours(folder: str, steps: int, checkpointing: bool):
    config = TrainingConfig(num_episodes=GROUP * 4 * (steps + 2), per_device_train_batch_size=4, group_size=GROUP,
                            max_new_tokens=MAX_TOKENS, include_value_function=False, eval_every=10**6,
                            learning_rate=1e-5, warmup_ratio=0.0, gradient_checkpointing=checkpointing)
    agent = MultiTurnAgent(AgentConfig(model_name=folder))
    trainer = MultiTurnGRPOTrainer(agent, ConversationEnvironment(DOMAIN, max_turns=1), domain_reward(DOMAIN), config)
    trainer.train_step()  # warm-up (kernels, allocator)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start, tokens = time.perf_counter(), 0.0
    for _ in range(steps):
        tokens += trainer.train_step()["completion_length"] * GROUP * 4
    elapsed = time.perf_counter() - start
    return elapsed / steps, tokens / elapsed, peak_memory_gb()


def run_trl(folder: str, steps: int, use_cpu: bool):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    prompts, reward_func = trl_prompts_and_reward(DOMAIN)
    clock = step_clock()

    args = GRPOConfig(output_dir=tempfile.mkdtemp(), use_cpu=use_cpu, bf16=not use_cpu,
                      per_device_train_batch_size=GROUP * 4, num_generations=GROUP,
                      max_completion_length=MAX_TOKENS, beta=0.01, learning_rate=1e-5, max_steps=steps + 1,
                      logging_steps=1, report_to="none", save_strategy="no", top_k=50, top_p=0.95)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(folder), reward_funcs=reward_func, args=args,
                          processing_class=AutoTokenizer.from_pretrained(folder),
                          train_dataset=Dataset.from_list(prompts * 50),
                          peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"), callbacks=[clock])
    if torch.cuda.is_available():  # peak memory of TRL's run alone
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    stamps = clock.stamps
    elapsed = stamps[-1] - stamps[0]
    lengths = [log["completions/mean_length"] for log in trainer.state.log_history
               if "completions/mean_length" in log][1:]
    return elapsed / steps, sum(lengths) * GROUP * 4 / elapsed, peak_memory_gb()


def warm_trials(folder: str, n: int):
    """GPU memory allocated (GiB) with only the base model loaded, and after each of n warm trials."""
    import gc

    from stateset_hpo.grpo import model_pool
    from stateset_hpo.trial import TrialSpec, run_trial

    def allocated() -> float:
        gc.collect()
        if not torch.cuda.is_available():
            return float("nan")
        torch.cuda.empty_cache()
        return torch.cuda.memory_allocated() / 2**30

    spec = TrialSpec(environment=ConversationEnvironment(DOMAIN, max_turns=1), reward=domain_reward(DOMAIN),
                     agent_config=AgentConfig(model_name=folder),
                     base_config=TrainingConfig(num_episodes=GROUP * 4, per_device_train_batch_size=4, group_size=GROUP,
                                                max_new_tokens=MAX_TOKENS, include_value_function=False,
                                                eval_every=10**6, warmup_ratio=0.0))
    model_pool.release_all()
    before = allocated()
    model_pool.agent_for_trial(spec.agent_config)  # loads the base model, as the first trial would
    alone = allocated() - before
    after = []
    for i in range(n):
        run_trial(spec, {"learning_rate": 1e-5 * (i + 1), "seed": i}, lambda metrics, trainer: False)
        after.append(allocated() - before)
    model_pool.release_all()
    return alone, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tiny", action="store_true", help="a small model, to check the script on a CPU")
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument("--warm-trials", type=int, default=10)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    print(f"device: {torch.cuda.get_device_name(0) if cuda else 'cpu'}; dtype {dtype}; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as folder:
        n = build_model(folder, TINY if args.tiny else QWEN2_05B, dtype)
        print(f"model: Qwen2-style, {n / 1e6:.1f}M parameters, random init; LoRA r=16 all-linear; "
              f"{GROUP * 4} completions of up to {MAX_TOKENS} tokens per step")
        rows = [("ours", run_ours(folder, args.steps, False)), ("ours+gc", run_ours(folder, args.steps, True))]
        if not args.skip_trl:
            rows.append(("TRL", run_trl(folder, args.steps, use_cpu=not cuda)))
        alone, after = warm_trials(folder, args.warm_trials) if args.warm_trials else (None, [])
    print(f"{'':8s} {'s/step':>8s} {'gen tok/s':>10s} {'peak GPU GiB':>13s}")
    for name, (sec, tps, mem) in rows:
        print(f"{name:8s} {sec:8.3f} {tps:10.1f} {mem:13.2f}")
    if len(rows) == 3:  # TRL checkpoints activations by default: compare like with like
        print(f"ratio ours+gc/TRL steps/s: {rows[2][1][0] / rows[1][1][0]:.2f}x")
    if after:
        print(f"warm trials: GPU GiB allocated with the base model alone {alone:.3f}; after each trial: "
              + " ".join(f"{a:.3f}" for a in after)
              + (f"; most left above the base model: {max(after) - alone:.3f}" if cuda else " (no GPU: n/a)"))


if __name__ == "__main__":
    main()
