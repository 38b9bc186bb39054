"""Model-based multi-fidelity search and warm starts, against the searches users run today.

Part 1, at a fixed study budget on the tiny task (customer_service, a mixed space: learning
rate and KL weight log-uniform, temperature uniform, optimizer categorical, LoRA rank a choice),
over search seeds, one trial at a time on the Ray backend (direct trials, health rules off, so
the search is measured alone):

  random + ASHA   Tune's random search, ASHA stopping trials at rungs
  TPE + ASHA      Ray's Optuna searcher (TPE), ASHA; TPE's first trials at random as the product
                  sets them (since commit bb2395d: a quarter of the 12 trials the budget holds, 3;
                  before it Optuna's own 10, so this column was random search for 10 of 12 trials)
  BOHB            TuneBOHB with HyperBandForBOHB (the model-based multi-fidelity search)

Each study has the same budget of episodes (trials x 64 by default: ``HPOConfig.budget``, no new
trial once the next could exceed it) and as many trials as fit in it, each at most 64 episodes, so
a strategy that stops trials early runs more of them. Per study: the best
held-out (selection) score it reached, and the episodes it had spent (trials in the order they
ended, the reaching one up to the evaluation that reached it: harness.spent_until) when a trial
first reached the seed's target, 90% of the best score any strategy reached on that seed (a rule
fixed before the first run).

Part 2, per seed: a cold TPE + ASHA study, and a warm one started (``--warm-start
--warm-start-comparable``) from a finished study of the same task with half the trials (told
as observations, its best run again right after the baseline); the episodes each spent until a
trial reached the cold study's best score. (bench/warm_start.py measures this part again on
fresh seeds, counting only seeds where a warm start can show something: see its docstring.)

Goals, set before this bench was first run (never tuned on it): BOHB's best score beats random +
ASHA's, median over seeds of the per-seed difference > 0 (the difference to TPE + ASHA is
reported, a tie as a tie); the warm study reaches the cold study's best in at most half the
cold study's episodes (median over seeds of the ratio <= 0.5; a warm study that never reaches it
counts as its whole budget).

    python bench/search_strategies.py [--seeds 5] [--trials 12] [--max-episodes 64]
"""

import argparse
import statistics
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")

from harness import Record, shown, spent_until, spread  # noqa: E402
from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType  # noqa: E402
from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward  # noqa: E402
from stateset_hpo.study import run_study  # noqa: E402
from stateset_hpo.trial import TrialSpec  # noqa: E402

T = SearchSpaceType
SPACE = SearchSpace([
    SearchDimension("learning_rate", T.LOGUNIFORM, low=1e-5, high=1e-2, default=1e-4),
    SearchDimension("kl_penalty_coef", T.LOGUNIFORM, low=1e-3, high=0.1, default=0.01),
    SearchDimension("temperature", T.UNIFORM, low=0.7, high=1.3, default=1.0),
    SearchDimension("optimizer_type", T.CATEGORICAL, choices=["adamw", "sgd"], default="adamw"),
    SearchDimension("lora_r", T.CHOICE, choices=[4, 8, 16], default=8),
])
STRATEGIES = {"random + ASHA": ("random", "asha"), "TPE + ASHA": ("optuna", "asha"), "BOHB": ("bohb", "bohb")}


def spec(max_episodes: int) -> TrialSpec:
    return TrialSpec(environment=ConversationEnvironment("customer_service"), reward=domain_reward("customer_service"),
                     base_config=TrainingConfig(num_episodes=max_episodes, per_device_train_batch_size=2, group_size=4,
                                                max_new_tokens=24, include_value_function=False))


def study(folder: str, name: str, seed: int, trials: int, search_alg: str, scheduler: str, max_episodes: int,
          warm_start=None, comparable=True):
    """A study with the budget of ``trials`` full trials, in episodes (up to 8 times as many trials);
    a ``warm_start`` source is told as observations unless not ``comparable``."""
    config = HPOConfig(backend="ray_tune", search_space=SPACE, n_trials=8 * trials,
                       output_dir=f"{folder}/{name}-{seed}", budget={"episodes": trials * max_episodes},
                       verbose=False, save_plots=False, validation_top_k=0, health_rules={"enabled": False},
                       seed=seed, cpu_per_trial=2, n_parallel_trials=1, dashboard_storage=None,
                       warm_start=warm_start, warm_start_comparable=warm_start is not None and comparable,
                       ray_config={"execution": "direct", "search_alg": search_alg, "scheduler": scheduler,
                                   "reduction_factor": 2})
    return run_study(config, spec(max_episodes))


def best_score(summary) -> float:
    return max((h["eval_reward"] for r in summary.all_results for h in r.history if "eval_reward" in h),
               default=0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--max-episodes", type=int, default=64)
    args = parser.parse_args()
    if min(args.seeds, args.trials, args.max_episodes) < 1 or args.trials < 2:
        parser.error("--seeds and --max-episodes must be at least 1, --trials at least 2")
    record = Record("search_strategies", "the best held-out score and the episodes to a target of random + ASHA, "
                    "TPE + ASHA and BOHB at one study budget, and a warm-started study against a cold one, over "
                    "search seeds", vars(args))
    rows, best, to_target, warm_rows, ratios = [], {n: [] for n in STRATEGIES}, {n: [] for n in STRATEGIES}, [], []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            order = list(STRATEGIES)[seed % 3:] + list(STRATEGIES)[:seed % 3]  # (the first strategy rotates)
            got = {n: study(folder, n.split()[0].lower(), seed, args.trials, *STRATEGIES[n], args.max_episodes)
                   for n in order}
            target = 0.9 * max(best_score(s) for s in got.values())
            for name in STRATEGIES:
                best[name].append(best_score(got[name]))
                to_target[name].append(spent_until(got[name], target, "episodes"))
                rows.append([seed, name, f"{best[name][-1]:.3f}", f"{to_target[name][-1]:.0f}",
                             f"{got[name].cost['episodes']:.0f}", got[name].n_trials, got[name].n_pruned])
                print(rows[-1], flush=True)
            # part 2: warm (from half the trials, told as observations) against cold (TPE + ASHA: got above)
            cold = got["TPE + ASHA"]
            study(folder, "earlier", seed + 1000, max(1, args.trials // 2), "optuna", "asha",  # (the source)
                  args.max_episodes)
            warm = study(folder, "warm", seed, args.trials, "optuna", "asha", args.max_episodes,
                         warm_start=f"{folder}/earlier-{seed + 1000}")
            goal = best_score(cold)
            cold_spent, warm_spent = spent_until(cold, goal, "episodes"), spent_until(warm, goal, "episodes")
            ratios.append(warm_spent / cold_spent if cold_spent else 1.0)
            warm_rows.append([seed, f"{goal:.3f}", f"{cold_spent:.0f}", f"{warm_spent:.0f}", f"{best_score(warm):.3f}",
                              f"{ratios[-1]:.2f}"])
            print(warm_rows[-1], flush=True)
    record.table("Per seed and strategy (one trial at a time; target: 90% of the seed's best score)",
                 ["seed", "strategy", "best selection score", "episodes to target", "episodes spent", "trials",
                  "pruned"], rows)
    record.table(f"Over {args.seeds} seeds, median (range)", ["strategy", "best selection score", "episodes to target"],
                 [[n, shown(spread(best[n]), 3), shown(spread(to_target[n]), 0)] for n in STRATEGIES])
    vs_random = [b - r for b, r in zip(best["BOHB"], best["random + ASHA"])]
    vs_tpe = [b - t for b, t in zip(best["BOHB"], best["TPE + ASHA"])]
    record.table("BOHB's best score minus the other strategy's, per seed, median (range)",
                 ["against", "difference"], [["random + ASHA", shown(spread(vs_random), 3)],
                                             ["TPE + ASHA", shown(spread(vs_tpe), 3)]])
    tie = statistics.median(vs_tpe) == 0
    record.note(f"Against TPE + ASHA, BOHB's median difference is {statistics.median(vs_tpe):+.3f}"
                + (" (a tie)." if tie else "."))
    record.table("Warm start: a TPE + ASHA study started from a finished one with half the trials (told as "
                 "observations), against the cold study: episodes until a trial reached the cold study's best",
                 ["seed", "cold best", "cold episodes", "warm episodes", "warm best", "warm / cold"], warm_rows)
    record.goal("BOHB best minus random + ASHA best, median over seeds (> 0 to beat it)",
                statistics.median(vs_random), 1e-9, digits=3)
    record.goal("warm / cold episodes to the cold study's best, median over seeds", statistics.median(ratios), 0.5,
                at_least=False)
    return record.finish()


if __name__ == "__main__":
    sys.exit(main())
