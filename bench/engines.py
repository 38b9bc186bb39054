"""The same study on both trial engines: our GRPO engine against TRL's GRPOTrainer (--engine trl),
side by side, over several search seeds.

Everything but the engine is the same: the tiny model, customer_service's scenarios single-turn
(TRL trains single-turn: each scenario's opening and the agent's reply), its reward with its
declared weights, the same LoRA adapter (r 16, alpha 32, dropout 0.05, every linear layer),
fp32, no gradient checkpointing, groups of 8 completions of up to 32 tokens from one prompt
per step, KL weight 0.01, the "grpo" loss, group-scaled rewards, a constant learning rate,
AdamW (betas 0.9 / 0.99, weight decay 0.01), top-p 0.95 / top-k 50 sampling, 128 episodes per
trial, the held-out greedy evaluation every 4 steps, and the study: Optuna TPE over the
learning rate (1e-5..1e-2, first trial 2e-3, sampler seed = search seed), 6 trials, health rules on, then
validation of the recommendation against the baseline (lr 5e-4) with 3 fresh seeds. The
engines run interleaved, the first engine of each seed alternating.

Per engine and seed: the study's wall time, its trials' episodes per trial-second, the best
held-out (selection) score, the recommendation's test score and the verdict.

Goals, set before this bench was first run: every TRL study reaches a verdict (its validation
ran: the rest of the product works on TRL trials), and our engine trains at least as many
episodes per trial-second as TRL on the same study (median ratio >= 1; REFERENCE measured our
engine's steps 1.8-1.9x TRL's on this model outside a study).

    python bench/engines.py [--seeds 3] [--trials 6] [--episodes 128]
"""

import argparse
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

from harness import Record, shown, spread  # noqa: E402
from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType  # noqa: E402
from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward  # noqa: E402
from stateset_hpo.study import run_study  # noqa: E402
from stateset_hpo.trial import TrialSpec  # noqa: E402
from stateset_hpo.trl_engine import TRLTask  # noqa: E402

# the search's first trial (the space's default) is not the baseline, so the recommendation is never
# the baseline by construction and validation compares two configurations
SPACE = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=1e-2, default=2e-3)])
BASE_LR = 5e-4


def specs(episodes: int):
    env = ConversationEnvironment("customer_service", max_turns=1)
    reward = domain_reward("customer_service")
    ours = TrialSpec(environment=env, reward=reward, base_config=TrainingConfig(
        num_episodes=episodes, per_device_train_batch_size=1, group_size=8, max_new_tokens=32, learning_rate=BASE_LR,
        include_value_function=False, warmup_ratio=0.0, kl_penalty_coef=0.01, loss_type="grpo", advantage_std="group",
        lr_scheduler_type="constant", top_p=0.95, top_k=50, weight_decay=0.01, adam_beta2=0.99, eval_every=4,
        eval_max_new_tokens=64))
    trl = TrialSpec.for_trl(TRLTask.from_environment(env, reward), {
        "num_episodes": episodes, "per_device_train_batch_size": 8, "num_generations": 8, "max_completion_length": 32,
        "learning_rate": BASE_LR, "beta": 0.01, "loss_type": "grpo", "scale_rewards": "group",
        "lr_scheduler_type": "constant", "top_p": 0.95, "top_k": 50, "weight_decay": 0.01, "adam_beta2": 0.99,
        "gradient_checkpointing": False, "eval_every": 4, "eval_max_new_tokens": 64}, environment=env, reward=reward)
    return {"ours": ours, "trl": trl}


def study(spec: TrialSpec, seed: int, trials: int, folder: str):
    config = HPOConfig(backend="optuna", search_space=SPACE, n_trials=trials, objective_metric="eval_reward",
                       output_dir=f"{folder}/{spec.engine}-{seed}", verbose=False, save_plots=False,
                       validation_top_k=1, validation_seeds=3, seed=seed,
                       optuna_config={"sampler": "tpe", "pruner": "none"})
    start = time.perf_counter()
    summary = run_study(config, spec)
    wall = time.perf_counter() - start
    episodes = sum(r.cost.get("episodes", 0.0) for r in summary.all_results)
    seconds = sum(r.training_time for r in summary.all_results)
    comparison = (summary.validation or {}).get("comparison") or {}
    recommended = next((e for e in (summary.validation or {}).get("configurations", []) if e["role"] == "recommended"),
                       {})
    return {"wall": wall, "episodes_per_s": episodes / seconds if seconds else 0.0, "best": summary.best_metric,
            "test": recommended.get("mean"), "verdict": comparison.get("verdict"),
            "gain": comparison.get("gain"), "lr": summary.best_result.params["learning_rate"]
            if summary.best_result else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--episodes", type=int, default=128)
    args = parser.parse_args()
    if min(args.seeds, args.trials, args.episodes) < 1:
        parser.error("--seeds, --trials and --episodes must be at least 1")
    import trl

    record = Record("engines", "the same study (Optuna TPE over the learning rate, validated) on our engine and on "
                    f"TRL {trl.__version__}'s GRPOTrainer, same model, task, adapter and budget, over search seeds",
                    vars(args))
    by_engine = specs(args.episodes)
    rows = []
    results = {name: [] for name in by_engine}
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            order = list(by_engine) if seed % 2 == 0 else list(reversed(by_engine))  # (alternating first engine)
            runs = {name: study(by_engine[name], seed, args.trials, folder) for name in order}
            for name, got in runs.items():
                results[name].append(got)
                rows.append([seed, name, f"{got['wall']:.0f}", f"{got['episodes_per_s']:.1f}", f"{got['best']:.3f}",
                             f"{got['lr']:.2g}", "-" if got["test"] is None else f"{got['test']:.3f}",
                             got["verdict"] or "-", "-" if got["gain"] is None else f"{got['gain']:+.3f}"])
                print(rows[-1], flush=True)
    record.table("Per search seed and engine", ["seed", "engine", "wall s", "episodes / trial-s", "best selection",
                                                "best lr", "recommended test", "verdict", "gain"], rows)
    ratio = [o["episodes_per_s"] / t["episodes_per_s"] for o, t in zip(results["ours"], results["trl"])]
    summary_rows = [[name, shown(spread([r["wall"] for r in got]), 0), shown(spread([r["episodes_per_s"] for r in got]), 1),
                     shown(spread([r["best"] for r in got]), 3)] for name, got in results.items()]
    record.table(f"Over {args.seeds} search seeds, median (range)",
                 ["engine", "wall s", "episodes / trial-s", "best selection score"], summary_rows)
    record.note("The engines' selection scores are not a contest of algorithms: both train the same adapter by the "
                "same GRPO objective; they differ in implementation (sampling, batching, TRL's importance weights).")
    record.goal("TRL studies that reached a verdict, of all", sum(r["verdict"] is not None for r in results["trl"])
                / args.seeds, 1.0)
    record.goal("our episodes per trial-second / TRL's, median over seeds", spread(ratio)["median"], 1.0)
    return record.finish()


if __name__ == "__main__":
    sys.exit(main())
