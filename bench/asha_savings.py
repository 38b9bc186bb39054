"""Training iterations ASHA spends to reach FIFO's best reward, with the same searcher and seed.

Runs the same study twice on the tiny model (optuna search, seed 0, learning rate 1e-5..1e-2
and the `aggressive` KL range, fixed budget), once with FIFO and once with ASHA, and prints
the iterations each spent in total and until some trial reached FIFO's best eval_reward (or
ASHA's best, if lower), as a ratio. (The held-out reward is greedy, so configs too timid to
change the policy tie exactly; Tune's ASHA never stops a trial that ties the cutoff, which is
why the range starts at 1e-5 rather than 1e-6.)

    python bench/asha_savings.py [--trials 12] [--episodes 320]
"""

import argparse
import tempfile
import warnings

warnings.filterwarnings("ignore")

from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType, get_search_space  # noqa: E402
from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward  # noqa: E402
from stateset_hpo.study import run_study  # noqa: E402
from stateset_hpo.trial import TrialSpec  # noqa: E402


def study(scheduler: str, trials: int, episodes: int, folder: str):
    spec = TrialSpec(environment=ConversationEnvironment("customer_service"), reward=domain_reward("customer_service"),
                     base_config=TrainingConfig(num_episodes=episodes, include_value_function=False))
    space = get_search_space("aggressive").subset(["learning_rate", "kl_penalty_coef"])
    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=1e-2,
                                         default=1e-4), space["kl_penalty_coef"]])
    config = HPOConfig(backend="ray_tune", search_space=space,
                       n_trials=trials, objective_metric="eval_reward", output_dir=f"{folder}/{scheduler}",
                       cpu_per_trial=1, n_parallel_trials=2, verbose=False, validation_top_k=0,
                       # grace period: the default, one iteration (in episodes, the schedulers' clock)
                       ray_config={"execution": "direct", "scheduler": scheduler, "search_alg": "optuna", "seed": 0,
                                   "reduction_factor": 2})
    return run_study(config, spec)


def iterations_to_reach(summary, target: float) -> int:
    """Iterations spent, in trial order, until some trial first reported >= target."""
    spent = 0
    for r in summary.all_results:
        for step in r.history:
            spent += 1
            if step["eval_reward"] >= target:
                return spent
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--episodes", type=int, default=320)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        fifo = study("fifo", args.trials, args.episodes, folder)
        asha = study("asha", args.trials, args.episodes, folder)
    target = min(fifo.best_metric, asha.best_metric)
    for name, s in (("fifo", fifo), ("asha", asha)):
        total = sum(len(r.history) for r in s.all_results)
        print(f"{name}: best eval_reward {s.best_metric:.3f}, pruned {s.n_pruned}/{s.n_trials}, "
              f"iterations spent {total}, to reach {target:.3f}: {iterations_to_reach(s, target)}")
    fifo_total = sum(len(r.history) for r in fifo.all_results)
    asha_total = sum(len(r.history) for r in asha.all_results)
    print(f"ratio ASHA/FIFO iterations: total {asha_total / fifo_total:.2f}, "
          f"to reach the target {iterations_to_reach(asha, target) / iterations_to_reach(fifo, target):.2f}")


if __name__ == "__main__":
    main()
