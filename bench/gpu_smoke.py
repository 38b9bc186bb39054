"""GPU smoke run: a few GRPO steps on a ~0.5B Qwen2-style model in bf16 with LoRA, ours and TRL's.

For a machine with an NVIDIA GPU and no network: the model is built from a config with random
weights (the Qwen2.5-0.5B shape) and the tiny local tokenizer, saved, and loaded back through
`from_pretrained` like any hub model. Four sides, `--repeats` times interleaved, each repeat a
fresh trainer with one untimed step before `--steps` timed ones: ours and TRL's GRPOTrainer,
gradient checkpointing off and on for both. Both load the model in bf16 (TRL with `bf16=True`),
the same LoRA adapter without dropout (TRL with `disable_dropout=True`), the same sampling
(temperature 1, top-k 50, top-p 0.95), group, batch and completion length: TRL as its docs
would set it up for this work, apart from the defaults where ours differs (checkpointing: both
ways measured). Prints generated tokens/s, seconds per step and peak GPU memory, medians with
their range; then runs `--warm-trials` one-iteration warm trials in a row on that model
(grpo/model_pool.py: one loaded base model lent to each LoRA trial) and prints the GPU memory
allocated after each, which must come back to the base model's own each time.
Goals: ours >= 1.5x TRL's generated tokens/s, checkpointing off and on; no warm trial leaves
more than 0.01 GiB above the base model. The record goes to bench/results/gpu_smoke.json on a
GPU; ``--tiny`` shrinks the model to check the script on a CPU (its record is not kept).

    bash bench/gpu_smoke.sh [--repeats 5] [--steps 3] [--warm-trials 20] [--tiny] [--record-dir DIR]
    (on the device machine: bash bench/gpu_smoke.sh --record-dir $OUT, then copy the record into
    bench/results/ and run python bench/tables.py)
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path
import warnings

warnings.filterwarnings("ignore")

import torch  # noqa: E402

from stateset_hpo.grpo import (AgentConfig, ConversationEnvironment, MultiTurnAgent, MultiTurnGRPOTrainer,  # noqa: E402
                               TrainingConfig, domain_reward)
from harness import RESULTS, Record, interleaved, shown, spread  # noqa: E402
from random_models import SHAPES, build_model  # noqa: E402
from trl_common import timed_trl_run, trl_prompts_and_reward  # noqa: E402

GROUP, BATCH, MAX_TOKENS, DOMAIN, GOAL, LEFT_BEHIND = 8, 4, 64, "customer_service", 1.5, 0.01
SAMPLING = dict(temperature=1.0, top_k=50, top_p=0.95)


def peak_memory_gb() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def run_ours(folder: str, steps: int, checkpointing: bool):
    """(seconds per step, generated tokens/s, peak GPU GiB) over the timed steps."""
    config = TrainingConfig(num_episodes=GROUP * BATCH * (steps + 2), per_device_train_batch_size=BATCH,
                            group_size=GROUP, max_new_tokens=MAX_TOKENS, include_value_function=False,
                            eval_every=10**6, learning_rate=1e-5, warmup_ratio=0.0, lora_dropout=0.0,
                            gradient_checkpointing=checkpointing, **SAMPLING)
    agent = MultiTurnAgent(AgentConfig(model_name=folder))
    trainer = MultiTurnGRPOTrainer(agent, ConversationEnvironment(DOMAIN, max_turns=1), domain_reward(DOMAIN), config)
    trainer.train_step()  # warm-up (kernels, allocator)
    reset_peak_memory()
    start, tokens = time.perf_counter(), trainer.generated_tokens
    for _ in range(steps):
        trainer.train_step()
    elapsed = time.perf_counter() - start
    result = elapsed / steps, (trainer.generated_tokens - tokens) / elapsed, peak_memory_gb()
    del trainer, agent
    return result


def run_trl(folder: str, steps: int, checkpointing: bool, cuda: bool):
    """(seconds per step, generated tokens/s, peak GPU GiB of TRL's whole run, its untimed first step included)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompts, reward_func = trl_prompts_and_reward(DOMAIN)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16 if cuda else torch.float32)
    timed = timed_trl_run(model, AutoTokenizer.from_pretrained(folder), prompts * 50, reward_func, steps, 1,
                          before_train=reset_peak_memory, use_cpu=not cuda, bf16=cuda,
                          gradient_checkpointing=checkpointing, per_device_train_batch_size=GROUP * BATCH,
                          num_generations=GROUP, max_completion_length=MAX_TOKENS, beta=0.01, learning_rate=1e-5,
                          **SAMPLING)
    del model
    return (*timed, peak_memory_gb())


def reset_peak_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


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
                     base_config=TrainingConfig(num_episodes=GROUP * BATCH, per_device_train_batch_size=BATCH,
                                                group_size=GROUP,
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="a small model, to check the script on a CPU")
    parser.add_argument("--warm-trials", type=int, default=20)
    parser.add_argument("--record-dir", type=Path, default=RESULTS,
                        help="where the record goes on a GPU (e.g. the device machine's $OUT, to bring it back)")
    args = parser.parse_args()
    if min(args.repeats, args.steps) < 1 or args.warm_trials < 0:
        parser.error("--repeats and --steps must be at least 1, --warm-trials at least 0")
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    with tempfile.TemporaryDirectory() as folder:
        n = build_model(folder, SHAPES["tiny" if args.tiny else "0.5b"], dtype)
        record = Record("gpu_smoke", f"GRPO steps of a {n / 1e6:.0f}M-parameter Qwen2-shaped model in {dtype} with "
                        f"LoRA r=16 on all linear layers, {GROUP * BATCH} completions of up to {MAX_TOKENS} tokens per "
                        "step: ours against TRL's GRPOTrainer, gradient checkpointing off and on; then warm trials",
                        dict({k: v for k, v in vars(args).items() if k != "record_dir"},
                             device=torch.cuda.get_device_name(0) if cuda else "cpu"))
        sides = {f"{who}{gc}": (lambda who=who, on=bool(gc): run_ours(folder, args.steps, on) if who == "ours"
                                else run_trl(folder, args.steps, on, cuda))
                 for gc in ("", ", checkpointing") for who in ("ours", "TRL")}
        runs = interleaved(sides, args.repeats)
        alone, after = warm_trials(folder, args.warm_trials) if args.warm_trials else (None, [])
    figures = {name: [spread([r[i] for r in results]) for i in range(3)] for name, results in runs.items()}
    record.table(f"Median of {args.repeats} interleaved repeats (range), {args.steps} timed steps each",
                 ["side", "s/step", "generated tokens/s", "peak GPU GiB"],
                 [[name, shown(f[0], 3), shown(f[1], 0), shown(f[2])] for name, f in figures.items()])
    for gc in ("", ", checkpointing"):
        ratio = figures[f"ours{gc}"][1]["median"] / figures[f"TRL{gc}"][1]["median"]
        record.goal(f"ours / TRL generated tokens/s, {dtype}{gc or ', no checkpointing'}", ratio, GOAL)
    if after:
        record.note(f"Warm trials: GPU GiB allocated with the base model alone {alone:.3f}; after each of "
                    f"{len(after)} trials: " + " ".join(f"{a:.3f}" for a in after))
        if cuda:
            record.goal("most GPU GiB a warm trial left above the base model", max(after) - alone, LEFT_BEHIND,
                        at_least=False, digits=3)
    return record.finish(Path(tempfile.mkdtemp()) if args.tiny or not cuda else args.record_dir)


if __name__ == "__main__":
    sys.exit(main())
