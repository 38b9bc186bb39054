"""Trials per hour of a whole study, per way of running its trials, measured side by side.

The study is the README main job's, scaled up: 16 trials of the `aggressive` space on the tiny
model, 160 episodes each, pruned by ASHA (Ray) or Optuna's successive halving, random search
with seed 0, no validation re-runs, two trials at a time on a 2-CPU cluster unless said:
  ray train       the default: each trial a Ray Train worker group (loads the model, every trial)
  ray direct      each trial in its Tune process, reused with its loaded base model (warm)
  ray k per worker  direct trials packed k to a worker process (one host with both CPUs, one
                  loaded base model, the trials taking turns an iteration at a time)
  optuna k at once  trials in this process, k at a time in threads, sharing one loaded base model
Each way runs `--repeats` times, interleaved. Prints, medians with their range: wall time, the
work done per hour (episodes and generated tokens, not only trials: a pruned trial is cheap), the
speed-up in episodes per hour against the default, the best objective; and for the Ray rows
(same searcher and seed, so the same configurations) how many trials trained to the same metrics
at every iteration both ran as under the default (timings aside). Goal: `direct` trials do at
least 3x the default's episodes per hour.

    python bench/study_throughput.py [--trials 16] [--repeats 3]
"""

import argparse
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

from harness import Record, interleaved, shown, spread  # noqa: E402

TIMING = {"step_time", "rollout_time", "tokens_per_s", "time_total_s", "time_this_iter_s"}


def study(folder, n, backend, parallel=2, cpu=1, **section):
    from stateset_hpo import HPOConfig
    from stateset_hpo.study import run_study, spec_from_config

    config = HPOConfig(backend=backend, search_space_name="aggressive", n_trials=n, output_dir=folder,
                       verbose=False, save_plots=False, validation_top_k=0, cpu_per_trial=cpu,
                       n_parallel_trials=parallel, base_training_config={"num_episodes": 160}, **section)
    start = time.perf_counter()
    summary = run_study(config, spec_from_config(config))
    return time.perf_counter() - start, summary


def histories(summary):
    """{params: every iteration's metrics without timings} for every trial that reported."""
    return {repr(sorted(r.params.items())): [{k: v for k, v in step.items() if k not in TIMING} for step in r.history]
            for r in summary.all_results if r.history}


def same_training(default, other) -> int:
    """Configurations of ``default`` that trained to the same metrics under ``other`` at every
    iteration both ran (a scheduler may stop a trial at another point in either)."""
    theirs = histories(other)
    return sum(1 for key, steps in histories(default).items()
               if key in theirs and all(a == b for a, b in zip(steps, theirs[key])))


def main() -> int:
    import ray

    from stateset_hpo.search.ray.connect import connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.trials < 1 or args.repeats < 1:
        parser.error("--trials and --repeats must be at least 1")
    record = Record("study_throughput", "the work a whole study does per hour, per way of running its trials",
                    vars(args))
    ray_settings = dict(scheduler="asha", search_alg="random", seed=0)
    optuna_settings = dict(sampler="random", pruner="successive_halving", seed=0)
    runs = iter(range(10**6))
    with tempfile.TemporaryDirectory() as folder:
        def ray_study(execution, parallel=2, cpu=1, **more):
            return lambda: study(f"{folder}/{next(runs)}", args.trials, "ray_tune", parallel=parallel, cpu=cpu,
                                 ray_config=dict(ray_settings, execution=execution, **more))

        def optuna_study(k):
            return lambda: study(f"{folder}/{next(runs)}", args.trials, "optuna", parallel=k,
                                 optuna_config=optuna_settings)

        sides = {"ray train": ray_study("train"), "ray direct": ray_study("direct"),
                 **{f"ray {k} per worker": ray_study("direct", parallel=k, cpu=2, trials_per_worker=k) for k in (2, 4)},
                 **{f"optuna {k} at once": optuna_study(k) for k in (1, 2, 4)}}
        connect(None, num_cpus=2)
        try:
            found = interleaved(sides, args.repeats)
        finally:
            ray.shutdown()

    def per_hour(key):
        return {name: spread([s.cost[key] / wall * 3600 for wall, s in results]) for name, results in found.items()}

    episodes, tokens = per_hour("episodes"), per_hour("generated_tokens")
    default = episodes["ray train"]["median"]
    record.table(f"{args.trials}-trial studies, median of {args.repeats} interleaved repeats (range)",
                 ["way", "wall s", "trials/h", "episodes/h", "generated tokens/h", "x default (episodes/h)", "best"],
                 [[name, shown(spread([w for w, _ in results]), 0),
                   shown(spread([args.trials / w * 3600 for w, _ in results]), 0), shown(episodes[name], 0),
                   shown(tokens[name], 0), f"{episodes[name]['median'] / default:.2f}",
                   shown(spread([s.best_metric for _, s in results]), 4)] for name, results in found.items()])
    train = found["ray train"][0][1]
    record.table("Configurations that trained to the same metrics at every iteration both ran as under ray train "
                 "(first repeat)", ["way", "same / configurations"],
                 [[name, f"{same_training(train, found[name][0][1])} / {len(histories(train))}"]
                  for name in ("ray direct", "ray 2 per worker", "ray 4 per worker")])
    record.goal("ray direct / ray train, episodes per hour", episodes["ray direct"]["median"] / default, 3.0)
    return record.finish()


if __name__ == "__main__":
    sys.exit(main())
