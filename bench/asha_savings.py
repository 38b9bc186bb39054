"""Training iterations ASHA spends against FIFO, with the same searcher, seed and trials, over
several searcher seeds.

Each seed runs the same study twice on the tiny model (Optuna's TPE through Ray Tune, learning
rate 1e-5..1e-2 and the `aggressive` KL range, fixed budget, one trial at a time so that
"iterations until" is counted in the order the iterations ran), once with FIFO and once with
ASHA (grace one iteration, reduction factor 2), with the health rules off in both so that the
scheduler alone is measured (bench/health_pruning.py measures the rules on top of ASHA).
Per seed: iterations each spent in total, and
until some trial first reached the lower of the two studies' best eval_reward; the ratios
ASHA/FIFO, and ASHA's best minus FIFO's. Figures are the medians over seeds with their range.
(The held-out reward is greedy, so configs too timid to change the policy tie exactly; Tune's
ASHA never stops a trial that ties the cutoff, which is why the range starts at 1e-5.)

Goals, set before this bench was first run over seeds (not tuned on it): ASHA spends at most
0.7x FIFO's iterations (median over seeds), and its best is at most 0.05 below FIFO's (median).

    python bench/asha_savings.py [--seeds 5] [--trials 12] [--episodes 320]
"""

import argparse
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")

from harness import Record, shown, spent_until, spread  # noqa: E402
from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType, get_search_space  # noqa: E402
from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward  # noqa: E402
from stateset_hpo.study import run_study  # noqa: E402
from stateset_hpo.trial import TrialSpec  # noqa: E402

SAVING_GOAL, BEST_MARGIN = 0.7, 0.05


def study(scheduler: str, seed: int, trials: int, episodes: int, folder: str):
    spec = TrialSpec(environment=ConversationEnvironment("customer_service"), reward=domain_reward("customer_service"),
                     base_config=TrainingConfig(num_episodes=episodes, include_value_function=False))
    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=1e-2,
                                         default=1e-4), get_search_space("aggressive")["kl_penalty_coef"]])
    config = HPOConfig(backend="ray_tune", search_space=space, n_trials=trials, objective_metric="eval_reward",
                       output_dir=f"{folder}/{scheduler}{seed}", cpu_per_trial=1, n_parallel_trials=1, verbose=False,
                       save_plots=False, validation_top_k=0, health_rules={"enabled": False},  # the scheduler alone
                       # grace period: the default, one iteration (in episodes, the schedulers' clock)
                       seed=seed, ray_config={"execution": "direct", "scheduler": scheduler, "search_alg": "optuna",
                                              "reduction_factor": 2})
    return run_study(config, spec)


def iterations(summary) -> int:
    return sum(len(r.history) for r in summary.all_results)


def main() -> int:
    import ray

    from stateset_hpo.search.ray.connect import connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--episodes", type=int, default=320)
    args = parser.parse_args()
    if min(args.seeds, args.trials, args.episodes) < 1:
        parser.error("--seeds, --trials and --episodes must be at least 1")
    record = Record("asha_savings", "training iterations ASHA spends against FIFO (same searcher, seed and trials), "
                    "over searcher seeds", vars(args))
    rows, total, reach, gap = [], [], [], []
    connect(None, num_cpus=2)
    try:
        with tempfile.TemporaryDirectory() as folder:
            for seed in range(args.seeds):
                fifo = study("fifo", seed, args.trials, args.episodes, folder)
                asha = study("asha", seed, args.trials, args.episodes, folder)
                target = min(fifo.best_metric, asha.best_metric)
                total.append(iterations(asha) / iterations(fifo))
                reach.append(spent_until(asha, target) / spent_until(fifo, target))
                gap.append(asha.best_metric - fifo.best_metric)
                rows.append([seed, f"{fifo.best_metric:.3f}", f"{asha.best_metric:.3f}", iterations(fifo),
                             iterations(asha), f"{asha.n_pruned}/{asha.n_trials}", f"{target:.3f}",
                             spent_until(fifo, target), spent_until(asha, target)])
                print(rows[-1], flush=True)
    finally:
        ray.shutdown()
    record.table("Per searcher seed", ["seed", "FIFO best", "ASHA best", "FIFO iterations", "ASHA iterations",
                                       "ASHA pruned", "target", "FIFO to target", "ASHA to target"], rows)
    record.table(f"Over {args.seeds} seeds, median (range)", ["ASHA / FIFO", "value"],
                 [["iterations in total", shown(spread(total))], ["iterations to the target", shown(spread(reach))],
                  ["best eval_reward, ASHA minus FIFO", shown(spread(gap), 3)]])
    record.goal("ASHA / FIFO iterations, median over seeds", spread(total)["median"], SAVING_GOAL, at_least=False)
    record.goal("ASHA's best minus FIFO's, median over seeds", spread(gap)["median"], -BEST_MARGIN, digits=3)
    return record.finish()


if __name__ == "__main__":
    sys.exit(main())
