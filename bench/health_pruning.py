"""Compute the health rules save on top of ASHA, out of sample, with the same searcher, seed and
trials, over several seeds.

The rules' thresholds were chosen on customer_service with a learning-rate x temperature space,
groups of 4 and replies of 24 tokens (docs/study-control.md). They stay frozen here and are
measured where they were never tuned: by default the `aggressive` predefined space on
technical_support (with the value function, which `aggressive`'s gamma tunes), groups of 6,
replies of up to 32 tokens, 3 prompts per iteration. Per seed the
study runs twice on the tiny model (Ray Tune, `direct` trials, one at a time so ASHA's decisions
do not depend on which trial reports first, ASHA with reduction factor 2 and a grace period of
``--grace`` iterations, seeded random search so both arms train the same configurations): ASHA
alone and ASHA with the default health rules. Per seed: the episodes each spent, the trials
each rule stopped, each arm's best held-out score (eval_reward, selection split), and how many
of ASHA-alone's top 3 a rule stopped.

"The same best" is an equivalence test, not a failed t-test: two one-sided paired t-tests
(TOST) over the seeds of the difference in the best score (rules minus ASHA alone) against the
margin ``--margin`` (0.05, stated before any run: about one seed-to-seed standard deviation of
a configuration's held-out score on the tiny model). Goals: median saving over seeds >= 25%;
equivalence within the margin at the 5% level.

    python bench/health_pruning.py [--seeds 5] [--trials 12] [--iterations 12] [--grace 3]
                                   [--domain technical_support] [--space aggressive] [--health kl_max=1]
"""

import argparse
import statistics
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")

from harness import Record, shown, spread  # noqa: E402
from stateset_hpo import HPOConfig, get_search_space  # noqa: E402
from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward  # noqa: E402
from stateset_hpo.grpo.scenarios import DOMAINS  # noqa: E402
from stateset_hpo.health import HealthRules  # noqa: E402
from stateset_hpo.launch import _parse_sets  # noqa: E402
from stateset_hpo.study import run_study  # noqa: E402
from stateset_hpo.trial import TrialSpec  # noqa: E402

SAVING_GOAL, GROUP, TOKENS = 0.25, 6, 32


def study(seed: int, args, health: bool, folder: str):
    spec = TrialSpec(environment=ConversationEnvironment(args.domain), reward=domain_reward(args.domain),
                     base_config=TrainingConfig(num_episodes=GROUP * args.prompts * args.iterations,
                                                per_device_train_batch_size=args.prompts, group_size=GROUP,
                                                max_new_tokens=TOKENS, warmup_ratio=0.0,
                                                # the aggressive space tunes gamma: the value function is on
                                                include_value_function=True))
    config = HPOConfig(backend="ray_tune", search_space=get_search_space(args.space), n_trials=args.trials,
                       objective_metric="eval_reward", output_dir=f"{folder}/{seed}-{health}", cpu_per_trial=1,
                       n_parallel_trials=1, verbose=False, validation_top_k=0, save_plots=False,
                       health_rules=rules(args) if health else {"enabled": False},
                       seed=seed, ray_config={"execution": "direct", "scheduler": "asha", "search_alg": "random", "reduction_factor": 2,
                                              "grace_period": args.grace * GROUP * args.prompts})
    return run_study(config, spec)


def rules(args):
    """The ruled arm's health_rules: the defaults with --health's changes (read as the CLI's)."""
    return _parse_sets(args.health, "--health")


def key(result):
    return tuple(sorted(result.params.items()))


def tost_paired(differences, margin: float) -> float:
    """p-value of equivalence (|mean difference| < margin) by two one-sided t-tests; written here
    because scipy has no TOST and statsmodels is not a dependency."""
    from scipy import stats

    n, mean = len(differences), statistics.fmean(differences)
    se = statistics.stdev(differences) / n ** 0.5 if n > 1 else float("inf")
    if se == 0:
        return 0.0 if abs(mean) < margin else 1.0
    return max(stats.t.sf((mean + margin) / se, n - 1), stats.t.cdf((mean - margin) / se, n - 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--grace", type=int, default=3, help="ASHA's grace period, in iterations")
    parser.add_argument("--prompts", type=int, default=3, help="prompts (groups) per iteration")
    parser.add_argument("--domain", default="technical_support", choices=DOMAINS)
    parser.add_argument("--space", default="aggressive")
    parser.add_argument("--margin", type=float, default=0.05, help="equivalence margin of the best score")
    parser.add_argument("--health", nargs="*", default=[], metavar="KEY=VALUE",
                        help="health rule settings of the ruled arm (default: the defaults), e.g. kl_max=1")
    args = parser.parse_args()
    if args.seeds < 2 or min(args.trials, args.iterations, args.grace, args.prompts) < 1 or args.margin <= 0:
        parser.error("--seeds must be at least 2 (the equivalence test is over seeds), the sizes at least 1, "
                     "--margin positive")
    try:  # an unknown space or health setting fails here, before any study
        get_search_space(args.space)
        print(HealthRules.from_settings(rules(args)).describe())
    except ValueError as exc:
        parser.error(str(exc))
    record = Record("health_pruning", "compute the health rules save on top of ASHA, out of sample (thresholds "
                    "frozen, a space, domain and setting not used to choose them), over seeds",
                    dict(vars(args), group_size=GROUP, max_new_tokens=TOKENS))
    rows, saved, differences, hits = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            alone, ruled = study(seed, args, False, folder), study(seed, args, True, folder)
            top3 = {key(r) for r in alone.ranked()[:3]}
            hit = [r.stopped_by for r in ruled.all_results
                   if r.stopped_by not in (None, "scheduler") and key(r) in top3]
            saved.append(1 - ruled.cost["episodes"] / alone.cost["episodes"])
            differences.append(ruled.best_metric - alone.best_metric)
            hits.append(len(hit))
            rules_stopped = {k: v for k, v in sorted(ruled.stopped_by.items()) if k != "scheduler"}
            rows.append([seed, f"{alone.cost['episodes']:.0f}", f"{ruled.cost['episodes']:.0f}", f"{saved[-1]:.0%}",
                         f"{alone.best_metric:.4f}", f"{ruled.best_metric:.4f}", f"{differences[-1]:+.4f}",
                         ", ".join(f"{k} {v}" for k, v in rules_stopped.items()) or "-",
                         f"{len(hit)}{' (' + ', '.join(hit) + ')' if hit else ''}"])
            print(rows[-1], flush=True)
    p = tost_paired(differences, args.margin)
    record.table(f"ASHA alone against ASHA with the health rules, {args.space} on {args.domain}, grace {args.grace} "
                 f"of {args.iterations} iterations", ["seed", "episodes alone", "episodes with rules", "saved",
                                                      "best alone", "best with rules", "difference",
                                                      "stopped by a rule", "alone's top 3 stopped"], rows)
    record.table(f"Over {args.seeds} seeds", ["figure", "value"],
                 [["compute saved, median (range)", shown(spread(saved))],
                  ["best with rules minus alone, median (range)", shown(spread(differences), 4)],
                  [f"equivalence of the best within +-{args.margin:g} (paired TOST)", f"p = {p:.3f}"],
                  ["ASHA-alone top-3 trials a rule stopped, in all", str(sum(hits))]])
    record.goal("compute saved by the rules, median over seeds", spread(saved)["median"], SAVING_GOAL)
    record.goal(f"TOST p-value, best score equivalent within +-{args.margin:g}", p, 0.05, at_least=False, digits=3)
    return record.finish()


if __name__ == "__main__":
    sys.exit(main())
