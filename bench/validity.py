"""Does a study's answer deserve trust? Two checks of the whole pipeline (search, recommendation,
validation, paired interval), with their figures printed.

A/A: a study whose parameter cannot change the expected outcome (a custom objective; runs in
milliseconds), repeated many times. Its scores have the structure real validation data has: a
difficulty per test conversation; a shift per training seed, shared by every configuration
trained with that seed (the comparison is paired by seed) plus each run's own; and, per
configuration, an effect per topic and per conversation (5 topics x 12 conversations), drawn
around 0: a configuration may suit this study's topics better by chance, but not topics in
general, so a "significant gain" is a false claim. Target: claims of a gain at most the
nominal 2.5% (one side of a 95% interval); the bench fails when the one-sided 95% lower
binomial bound of the observed rate is above it.

Engine A/A (``--engine-aa``): the same through the real engine. Paired runs of one configuration
with the same seed are identical, so such an A/A could never fail; here each study trains one
sensible configuration (the tiny model, lr 1e-3) twice per validation seed index, with two
different seeds (so the runs differ in every random stream while nothing else does), scores
every run on the test split as validation does (`run_points`, the validation re-runs' path),
and compares the two with the study's own paired interval (topics as a level). A "significant
gain" is a false claim; the target is the A/A's.

A/B: the tiny model, a learning-rate space against a sensible baseline (TrainingConfig's
default lr 5e-4, not a rate that cannot learn), one study per search seed. Each prints its
verdict and the power its design had at the gain it measured. Goals: false gains at the nominal
rate in both A/As; a significant gain in most A/B studies.

    python bench/validity.py   # all three (engine A/A about 7 s a study, A/B a few minutes a study, 2 cores)
    python bench/validity.py --engine-aa-studies 0 --ab-studies 0   # the synthetic A/A alone
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import Record  # noqa: E402
from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType, TrialStatus  # noqa: E402
from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward  # noqa: E402
from stateset_hpo.study import run_study  # noqa: E402
from stateset_hpo.trial import TrialSpec  # noqa: E402

LR = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=3e-3, default=1e-5)])
TOPICS, PER_TOPIC = 5, 12
CONVERSATIONS = TOPICS * PER_TOPIC
TOPIC_OF = [f"topic{c // PER_TOPIC}" for c in range(CONVERSATIONS)]


def null_objective(study: int):
    """Scores whose expectation no parameter moves (see the module docstring)."""
    difficulty = [random.Random(f"{study}/{c}").uniform(0.2, 0.8) for c in range(CONVERSATIONS)]
    runs = iter(range(10 ** 9))

    def objective(params):
        rng = random.Random(f"{study}/run/{next(runs)}")  # every run's own noise, whatever its params
        seed_shift = random.Random(f"{study}/seed/{params.get('seed')}").gauss(0, 0.03)  # shared by a seed's runs
        config = random.Random(f"{study}/config/{params['learning_rate']!r}")  # this configuration's luck
        topic = [config.gauss(0, 0.02) for _ in range(TOPICS)]
        conversation = [config.gauss(0, 0.02) for _ in range(CONVERSATIONS)]
        shift = seed_shift + rng.gauss(0, 0.02)
        metrics = {"eval_reward": 0.5 + shift + rng.gauss(0, 0.02)}
        for c in range(CONVERSATIONS):
            metrics[f"test_reward[{c}]"] = (difficulty[c] + topic[c // PER_TOPIC] + conversation[c] + shift
                                            + rng.gauss(0, 0.1))
        metrics["test_reward"] = statistics.fmean(metrics[f"test_reward[{c}]"] for c in range(CONVERSATIONS))
        return metrics
    return objective


def aa(studies: int, trials: int, seeds: int, topics: bool = True) -> list:
    """The synthetic A/A's verdicts, one per study."""
    logging.getLogger("optuna").setLevel(logging.WARNING)
    verdicts = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for study in range(studies):
            config = HPOConfig(backend="optuna", search_space=LR, n_trials=trials, output_dir=folder, verbose=False,
                               save_plots=False, validation_top_k=1, validation_seeds=seeds,
                               seed=study, optuna_config={"pruner": "none"})
            summary = run_study(config, TrialSpec(objective=null_objective(study),
                                                        test_topics=TOPIC_OF if topics else None))
            verdicts.append(summary.validation["comparison"]["verdict"])
    print(f"A/A: {len(verdicts)} studies ({trials} trials, {seeds} validation seeds x {CONVERSATIONS} test "
          f"conversations each) in {time.perf_counter() - start:.1f} s"
          + ("" if topics else ", topics ignored (conversations independent)"))
    return verdicts


def false_claims(name: str, verdicts, record: Record) -> list:
    """The row of a null comparison's verdicts (false gains with their 90% interval, losses);
    the goal: its one-sided 95% lower bound at most the nominal 2.5%."""
    from scipy.stats import beta

    n = len(verdicts)
    better, worse = verdicts.count("better"), verdicts.count("worse")
    low = beta.ppf(0.05, better, n - better + 1) if better else 0.0  # one-sided 95% lower bound (Clopper-Pearson)
    high = beta.ppf(0.95, better + 1, n - better)
    record.goal(f"{name}: one-sided 95% lower bound of the false-gain rate", low, 0.025, at_least=False, digits=3)
    return [name, n, f"{better} ({better / n:.1%})", f"[{low:.1%}, {high:.1%}]", f"{worse} ({worse / n:.1%})",
            n - better - worse]


def tiny_task(episodes: int, **parts) -> TrialSpec:
    """The A/A's and A/B's task: the tiny model on customer_service, ``episodes`` per run."""
    return TrialSpec(environment=ConversationEnvironment("customer_service"), reward=domain_reward("customer_service"),
                     base_config=TrainingConfig(num_episodes=episodes, per_device_train_batch_size=4, group_size=8,
                                                max_new_tokens=48, eval_max_new_tokens=48,
                                                include_value_function=False, warmup_ratio=0.0), **parts)


def engine_study(study: int, seeds: int, episodes: int) -> Tuple[str, float]:
    """One engine A/A study: (verdict, gain)."""
    import torch

    from stateset_hpo.comparison import paired_gain
    from stateset_hpo.search.trial_runner import run_points
    from stateset_hpo.validation import SEED_OFFSET, per_conversation

    torch.set_num_threads(1)
    spec = tiny_task(episodes, test_at_end=True, health=None)
    with tempfile.TemporaryDirectory() as folder:
        config = HPOConfig(backend="optuna", search_space=LR, output_dir=folder, verbose=False, save_plots=False)
        first = SEED_OFFSET + 1000 * study
        points = [{"learning_rate": 1e-3, "seed": first + copy * 100 + i} for copy in (0, 1) for i in range(seeds)]
        runs = run_points(config, spec, points)
    if any(r.status is not TrialStatus.SUCCESS for r in runs):
        raise RuntimeError(f"engine A/A study {study}: a run failed: {[r.error for r in runs]}")
    rows = [{i: per_conversation("test_reward", r.metrics) for i, r in enumerate(runs[copy * seeds:][:seeds])}
            for copy in (0, 1)]
    comparison = paired_gain(rows[1], rows[0], +1.0, groups=[s.topic for s in spec.environment.test_scenarios])
    return comparison["verdict"], comparison["gain"]


def engine_aa(studies: int, seeds: int, episodes: int, workers: int) -> list:
    """The engine A/A's verdicts, one per study."""
    from concurrent.futures import ProcessPoolExecutor

    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        found = list(pool.map(engine_study, range(studies), [seeds] * studies, [episodes] * studies))
    gains = [gain for _, gain in found]
    conversations = len(ConversationEnvironment("customer_service").test_scenarios)
    print(f"engine A/A: {studies} studies through the real engine (tiny model, customer_service, lr 1e-3, {episodes} "
          f"episodes, {seeds} seeds x 2 copies x {conversations} test conversations) in {time.perf_counter() - start:.0f} s; "
          f"gains: median {statistics.median(gains):+.4f}, spread (sd) {statistics.pstdev(gains):.4f}")
    return [verdict for verdict, _ in found]


def ab(studies: int, trials: int, episodes: int, seeds: int) -> list:
    """A/B studies (one per search seed) against a sensible baseline: a row per study."""
    from stateset_hpo.comparison import power_at

    spec = tiny_task(episodes)
    base = spec.base_config
    rows = []
    for study in range(studies):
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            config = HPOConfig(backend="optuna", search_space=LR, n_trials=trials, output_dir=folder, verbose=False,
                               save_plots=False, validation_top_k=1, validation_seeds=seeds,
                               seed=study, optuna_config={"pruner": "none", "n_startup_trials": 3})
            summary = run_study(config, spec)
        v = summary.validation
        print(f"A/B study {study}: tiny model, customer_service, {trials} trials of {episodes} episodes, baseline "
              f"lr {base.learning_rate:g} (TrainingConfig's default), {seeds} validation seeds, "
              f"{time.perf_counter() - start:.0f} s")
        for e in v["configurations"]:
            print(f"A/B:   {e['label']:<10} lr={e['params']['learning_rate']:.2e}  {v['metric']} = {e['mean']:.4f} "
                  f"+- {e['std']:.4f}  per seed {[round(x, 4) for x in e['scores']]}")
        comparison = v["comparison"]
        power = power_at(comparison, comparison["gain"]) if comparison.get("gain") is not None else None
        print(f"A/B: {v['sentence']}")
        print("A/B: power of this design at the gain it measured: " + ("-" if power is None else f"{power:.2f}"))
        best = next(e for e in v["configurations"] if e["role"] == "recommended")
        rows.append([study, f"{best['params']['learning_rate']:.2e}", f"{comparison['gain']:+.4f}",
                     f"[{comparison['ci95'][0]:+.4f}, {comparison['ci95'][1]:+.4f}]", comparison["verdict"],
                     "-" if power is None else f"{power:.2f}"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aa-studies", type=int, default=200, help="synthetic A/A studies (0: none)")
    parser.add_argument("--aa-trials", type=int, default=8)
    parser.add_argument("--engine-aa-studies", type=int, default=100, help="A/A studies through the engine (0: none)")
    parser.add_argument("--ab-studies", type=int, default=3, help="A/B studies (0: none)")
    parser.add_argument("--ab-trials", type=int, default=6)
    parser.add_argument("--ab-episodes", type=int, default=192)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ignore-topics", action="store_true",
                        help="A/A with the test conversations taken as independent (the design before topics)")
    parser.add_argument("--engine-episodes", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="processes for the engine A/A")
    args = parser.parse_args()
    if min(args.aa_studies, args.engine_aa_studies, args.ab_studies) < 0 or min(args.seeds, args.workers) < 1:
        parser.error("study counts must be >= 0, --seeds and --workers >= 1")
    record = Record("validity", "the study's verdict on null comparisons (A/A: synthetic, and through the real "
                    "engine) and against a sensible baseline (A/B on the tiny model)", vars(args))
    claims = []
    if args.aa_studies:
        claims.append(false_claims("synthetic A/A", aa(args.aa_studies, args.aa_trials, args.seeds,
                                                       topics=not args.ignore_topics), record))
    if args.engine_aa_studies:
        claims.append(false_claims("engine A/A", engine_aa(args.engine_aa_studies, args.seeds, args.engine_episodes,
                                                           args.workers), record))
    if claims:
        record.table("Null comparisons: verdicts of a significant gain (false claims) and loss",
                     ["comparison", "studies", "gains", "90% interval of the gain rate", "losses", "no difference"],
                     claims)
    if args.ab_studies:
        rows = ab(args.ab_studies, args.ab_trials, args.ab_episodes, args.seeds)
        record.table(f"A/B against lr 5e-4 (TrainingConfig's default), one study per search seed, {args.ab_trials} "
                     f"trials of {args.ab_episodes} episodes, {args.seeds} validation seeds",
                     ["study", "recommended lr", "gain", "95% CI", "verdict", "power at the gain"], rows)
        found = sum(row[4] == "better" for row in rows)
        record.goal("A/B: studies that found a significant gain over the sensible baseline", found,
                    args.ab_studies // 2 + 1, digits=0)
    return record.finish()


if __name__ == "__main__":
    sys.exit(main())
