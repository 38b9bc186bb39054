"""What racing buys: the test score of the configuration a study recommends, with and without
racing, over several search seeds.

Racing (racing.py, ``race_seeds``) trains the search's top ``race_top_k`` configurations again
with fresh seeds before one is named. It costs ``race_top_k x race_seeds`` extra runs, so it is
compared with both alternatives a user has for that compute:

  search       N trials, the search's best is recommended
  search+race  the same N trials, then the top 3 raced with 1 fresh seed each (N + 3 runs)
  more search  N + 3 trials, the search's best is recommended (the same compute as racing)

"search" and "search+race" are one study (its recommendation before and after racing); "more
search" is a second study with the same sampler seed. Each recommendation is then scored the
way validation scores it: retrained with --test-seeds fresh seeds (never used by the search or
the race) and scored on the held-out test conversations, which neither the search nor the race
saw; its score is the mean over those runs. Per search seed: racing's score minus each other
arm's. The tiny model, customer_service, Optuna TPE (sampler seed = search seed), learning rate
1e-5..1e-2 and the `aggressive` KL range, health rules off (racing is measured alone).

Goal, set before this bench was first run (not tuned on it): racing's recommendation scores at
least as well on the test split as both other arms', median over search seeds (>= 0). A miss
means racing is not worth its runs on this task, which decides whether it stays opt-in.

    python bench/racing.py [--seeds 5] [--trials 8] [--episodes 128] [--test-seeds 3]
"""

import argparse
import dataclasses
import statistics
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")

from harness import Record, shown, spread  # noqa: E402
from stateset_hpo import (HPOConfig, SearchDimension, SearchSpace, SearchSpaceType, TrialStatus,  # noqa: E402
                          get_search_space)
from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward  # noqa: E402
from stateset_hpo.search.base import get_backend  # noqa: E402
from stateset_hpo.study import run_study  # noqa: E402
from stateset_hpo.trial import TrialSpec  # noqa: E402
from stateset_hpo.validation import test_metric  # noqa: E402

RACE_TOP_K, RACE_SEEDS = 3, 1
TEST_OFFSET = 40_000  # the yardstick's seeds: apart from the search's, racing's and validation's


def spec_for(episodes: int) -> TrialSpec:
    return TrialSpec(environment=ConversationEnvironment("customer_service"), reward=domain_reward("customer_service"),
                     base_config=TrainingConfig(num_episodes=episodes, include_value_function=False))


def config_for(seed: int, trials: int, race_seeds: int, folder: str) -> HPOConfig:
    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=1e-2,
                                         default=1e-4), get_search_space("aggressive")["kl_penalty_coef"]])
    return HPOConfig(backend="optuna", search_space=space, n_trials=trials, objective_metric="eval_reward",
                     output_dir=f"{folder}/s{seed}-{trials}-{race_seeds}", verbose=False, save_plots=False,
                     validation_top_k=0, health_rules={"enabled": False}, race_seeds=race_seeds,
                     race_top_k=RACE_TOP_K, seed=seed, optuna_config={"sampler": "tpe", "pruner": "none"})


def test_score(config: HPOConfig, spec: TrialSpec, params, test_seeds: int) -> float:
    """The mean test score of a configuration over fresh seeds (failed runs count as 0, the
    score's floor, so that an unstable configuration cannot look better by failing)."""
    points = [{**params, "seed": spec.base_config.seed + TEST_OFFSET + i} for i in range(test_seeds)]
    runs = get_backend(config.backend).retrain(config, dataclasses.replace(spec, test_at_end=True, health=None), points)
    scores = []
    for run in runs:
        metric, _ = test_metric(config.objective_metric, run.metrics)
        value = run.metrics.get(metric)
        scores.append(value if value is not None and run.status is TrialStatus.SUCCESS else 0.0)
    return statistics.fmean(scores)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=128)
    parser.add_argument("--test-seeds", type=int, default=3)
    args = parser.parse_args()
    if min(args.seeds, args.trials, args.episodes, args.test_seeds) < 1:
        parser.error("--seeds, --trials, --episodes and --test-seeds must be at least 1")
    record = Record("racing", "the test score of the recommended configuration with racing (top 3, 1 fresh seed "
                    "each) against the same search without it and against a search given racing's runs as extra "
                    "trials, over search seeds", vars(args))
    spec = spec_for(args.episodes)
    rows, vs_search, vs_more, changed = [], [], [], 0
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            raced = run_study(config_for(seed, args.trials, RACE_SEEDS, folder), spec)
            search_best = dataclasses.replace(raced, racing=None).best_result
            more = run_study(config_for(seed, args.trials + RACE_TOP_K * RACE_SEEDS, 0, folder), spec).best_result
            picks = {"search": search_best, "search+race": raced.best_result, "more search": more}
            scores, seen = {}, {}
            for arm, pick in picks.items():
                key = tuple(sorted(pick.params.items()))
                if key not in seen:  # the same configuration is scored once (the same seeds give the same runs)
                    seen[key] = test_score(config_for(seed, 1, 0, folder), spec, pick.params, args.test_seeds)
                scores[arm] = seen[key]
            changed += raced.best_result.trial_id != search_best.trial_id
            vs_search.append(scores["search+race"] - scores["search"])
            vs_more.append(scores["search+race"] - scores["more search"])
            rows.append([seed, search_best.trial_id, raced.best_result.trial_id, more.trial_id,
                         *(f"{scores[arm]:.3f}" for arm in picks), f"{vs_search[-1]:+.3f}", f"{vs_more[-1]:+.3f}"])
            print(rows[-1], flush=True)
    record.table("Per search seed: the recommended trial of each arm and its test score (mean over "
                 f"{args.test_seeds} fresh seeds)",
                 ["seed", "search picks", "search+race picks", "more search picks", "search test",
                  "search+race test", "more search test", "race - search", "race - more search"], rows)
    record.table(f"Over {args.seeds} search seeds, median (range)", ["racing's test score minus", "value"],
                 [["the same search without racing", shown(spread(vs_search), 3)],
                  ["a search with racing's runs as extra trials", shown(spread(vs_more), 3)]])
    record.note(f"Racing changed the recommendation in {changed} of {args.seeds} studies; it cost "
                f"{RACE_TOP_K * RACE_SEEDS} runs on top of {args.trials} trials.")
    record.goal("racing minus no racing, test score, median over seeds", spread(vs_search)["median"], 0.0, digits=3)
    record.goal("racing minus more search at equal compute, test score, median over seeds",
                spread(vs_more)["median"], 0.0, digits=3)
    return record.finish()


if __name__ == "__main__":
    sys.exit(main())
