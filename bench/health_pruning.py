"""Compute the health rules save on top of ASHA, with the same searcher, seed and trials.

Runs one study twice per seed on the tiny model (Ray Tune, `direct` trials, ASHA with reduction
factor 2; seeded random search, so both runs train exactly the same configurations, one trial
at a time, so that ASHA's decisions do not depend on which trial reports first): ASHA alone,
and ASHA with the default health rules. ASHA's grace period is ``--grace`` iterations: 3 (a
quarter of the run) and 6 (half of it, as a user who protects slow starters sets it: GRPO runs
often score the base model's score for their first iterations). The space is wide enough that
part of the trials cannot learn or blow up: learning rates 1e-7 to 1e-1 and sampling
temperatures 0.05 to 1.2. Prints, per grace period, seed and arm: the episodes spent (the
compute), the trials each rule stopped, the best held-out score (eval_reward, selection split),
and whether any of the ASHA-only run's top 3 configurations was stopped by a rule; then ASHA with the longer grace
period and the rules against ASHA with the shorter one alone. Where the two arms' best configurations differ, both
are retrained with ``--noise-seeds`` more training seeds, so "within noise" is measured: the two configurations'
mean final held-out score over the seeds, their spread, and Welch's t-test of the difference.

    python bench/health_pruning.py [--seeds 0 1 2] [--trials 16] [--iterations 12] [--grace 3 6] [--prompts 4]
                                   [--health kl_max=1] [--noise-seeds 4]
"""

import argparse
import statistics
import tempfile
import warnings

warnings.filterwarnings("ignore")

from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType  # noqa: E402
from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward  # noqa: E402
from stateset_hpo.health import HealthRules  # noqa: E402
from stateset_hpo.launch import _parse_sets  # noqa: E402
from stateset_hpo.search.trial_runner import run_one  # noqa: E402
from stateset_hpo.study import library_output, run_study  # noqa: E402
from stateset_hpo.trial import TrialSpec  # noqa: E402

T = SearchSpaceType
SPACE = SearchSpace([SearchDimension("learning_rate", T.LOGUNIFORM, low=1e-7, high=1e-1, default=1e-4),
                     SearchDimension("temperature", T.UNIFORM, low=0.05, high=1.2, default=1.0)])


def trial_spec(args) -> TrialSpec:
    return TrialSpec(environment=ConversationEnvironment("customer_service"), reward=domain_reward("customer_service"),
                     base_config=TrainingConfig(num_episodes=4 * args.prompts * args.iterations,  # groups of 4
                                                per_device_train_batch_size=args.prompts, group_size=4,
                                                max_new_tokens=24, include_value_function=False, warmup_ratio=0.0))


def study(seed: int, grace: int, args, health: bool, folder: str):
    per_iteration = 4 * args.prompts
    spec = trial_spec(args)
    config = HPOConfig(backend="ray_tune", search_space=SPACE, n_trials=args.trials, objective_metric="eval_reward",
                       output_dir=f"{folder}/{grace}-{seed}-{health}", cpu_per_trial=1, n_parallel_trials=1, verbose=False,
                       validation_top_k=0, save_plots=False, health_rules=rules(args) if health else {"enabled": False},
                       ray_config={"execution": "direct", "scheduler": "asha", "search_alg": "random", "seed": seed,
                                   "reduction_factor": 2, "grace_period": grace * per_iteration})
    return run_study(config, spec)


def rules(args):
    """The ruled arm's health_rules: the defaults with --health's changes (read as the CLI's)."""
    return _parse_sets(args.health, "--health")


def key(result):
    return tuple(sorted(result.params.items()))


def within_noise(alone, ruled, args, folder: str) -> str:
    """The two best configurations retrained with more training seeds (the studies train with seed 0):
    their mean final held-out score, its spread, and Welch's t-test of the difference."""
    from scipy import stats

    config = HPOConfig(backend="optuna", output_dir=f"{folder}/noise", verbose=False, validation_top_k=0,
                       health_rules={"enabled": False})
    scores = []
    for best in (alone.best_result, ruled.best_result):
        with library_output(False):
            runs = [run_one(config, trial_spec(args), f"noise-{seed}", {**best.params, "seed": seed})
                    for seed in range(1, args.noise_seeds + 1)]
        scores.append([best.best_metric] + [r.best_metric for r in runs])
    p = stats.ttest_ind(*scores, equal_var=False).pvalue
    a, r = ([f"{statistics.mean(s):.4f} (sd {statistics.stdev(s):.4f})" for s in scores])
    names = [", ".join(f"{k} {v:.3g}" for k, v in sorted(best.params.items())) for best in (alone.best_result,
                                                                                          ruled.best_result)]
    return (f"over {len(scores[0])} training seeds ASHA alone's best ({names[0]}) scores {a}, the ruled arm's "
            f"({names[1]}) {r}: "
            f"{'within noise' if p >= 0.05 else 'a real difference'} (Welch p = {p:.2f})")


def compare(seed: int, grace: int, args, folder: str):
    """Run both arms at one seed and grace period, print them; (alone, ruled, share saved)."""
    alone = study(seed, grace, args, False, folder)
    ruled = study(seed, grace, args, True, folder)
    top3 = {key(r) for r in alone.ranked()[:3]}
    by_rule = {key(r): r.stopped_by for r in ruled.all_results if r.stopped_by not in (None, "scheduler")}
    hit = [rule for k, rule in by_rule.items() if k in top3]
    for name, s in (("ASHA alone", alone), ("ASHA + health rules", ruled)):
        print(f"grace {grace} seed {seed} {name:20s} episodes {s.cost['episodes']:6.0f}  trials {s.n_trials}  "
              f"best eval_reward {s.best_metric:.4f}  stopped by {dict(sorted(s.stopped_by.items()))}")
    ratio = ruled.cost["episodes"] / alone.cost["episodes"]
    print(f"grace {grace} seed {seed}: health rules spent {ratio:.2f}x ASHA alone's episodes ({1 - ratio:.0%} less); "
          f"best {ruled.best_metric - alone.best_metric:+.4f}; ASHA-alone top 3 stopped by a rule: "
          f"{len(hit)}{' (' + ', '.join(hit) + ')' if hit else ''}")
    if key(alone.best_result) != key(ruled.best_result) and args.noise_seeds > 0:
        print(f"grace {grace} seed {seed}: the best configurations differ; " + within_noise(alone, ruled, args, folder))
    return alone, ruled, 1 - ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--grace", type=int, nargs="+", default=[3, 6],
                        help="ASHA's grace periods to compare, in iterations")
    parser.add_argument("--prompts", type=int, default=4, help="prompts (groups) per iteration")
    parser.add_argument("--health", nargs="*", default=[], metavar="KEY=VALUE",
                        help="health rule settings of the ruled arm (default: the defaults), e.g. kl_max=1 "
                             "kl_floor=null")
    parser.add_argument("--noise-seeds", type=int, default=4,
                        help="training seeds to retrain both arms' best configurations with where they differ (0: off)")
    args = parser.parse_args()
    print(HealthRules.from_settings(rules(args)).describe())
    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        for grace in args.grace:
            saved = []
            for seed in args.seeds:
                *runs[grace, seed], share = compare(seed, grace, args, folder)
                saved.append(share)
            print(f"grace {grace}: compute saved over {len(saved)} seeds: " + ", ".join(f"{s:.0%}" for s in saved)
                  + f"; mean {sum(saved) / len(saved):.0%}")
    short, long = min(args.grace), max(args.grace)
    for seed in args.seeds if short != long else []:  # a longer grace with the rules against a short one without
        alone, ruled = runs[short, seed][0], runs[long, seed][1]
        print(f"seed {seed}: ASHA grace {long} + health rules spent {ruled.cost['episodes'] / alone.cost['episodes']:.2f}x"
              f" the episodes of ASHA grace {short} alone; best {ruled.best_metric - alone.best_metric:+.4f}")


if __name__ == "__main__":
    main()
