"""Trials per hour of a whole study, per way of running its trials, measured side by side.

The study is the README main job's, scaled up: 16 trials of the `aggressive` space on the tiny
model, 160 episodes each, pruned by ASHA (Ray) or Optuna's successive halving, random search
with seed 0, no validation re-runs, two trials at a time on a 2-CPU cluster unless said:
  ray train       the default: each trial a Ray Train worker group (loads the model, every trial)
  ray direct      each trial in its Tune process, reused with its loaded base model (warm)
  ray k per worker  direct trials packed k to a worker process (one host with both CPUs, one
                  loaded base model, the trials taking turns an iteration at a time)
  optuna k at once  trials in this process, k at a time in threads, sharing one loaded base model
Prints wall time, trials per hour against the default, the best objective, and for the Ray
rows (same searcher and seed, so the same configurations) how many trials trained to the same
first-iteration metrics as under the default.

    python bench/study_throughput.py [--trials 16]
"""

import argparse
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")
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


def first_iterations(summary):
    """{params: the first iteration's metrics without timings} for every trial that reported."""
    return {repr(sorted(r.params.items())): {k: v for k, v in r.history[0].items() if k not in TIMING}
            for r in summary.all_results if r.history}


def main() -> None:
    import ray

    from stateset_hpo.search.ray.connect import connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    args = parser.parse_args()
    ray_settings = dict(scheduler="asha", search_alg="random", seed=0)
    optuna_settings = dict(sampler="random", pruner="successive_halving", seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        connect(None, num_cpus=2)
        try:
            for execution in ("train", "direct"):
                rows.append((f"ray {execution}", *study(f"{folder}/{execution}", args.trials, "ray_tune",
                                                        ray_config=dict(ray_settings, execution=execution))))
            for k in (2, 4):
                rows.append((f"ray {k} per worker", *study(f"{folder}/packed{k}", args.trials, "ray_tune", parallel=k,
                                                           cpu=2, ray_config=dict(ray_settings, execution="direct",
                                                                                  trials_per_worker=k))))
        finally:
            ray.shutdown()
        for k in (1, 2, 4):
            rows.append((f"optuna {k} at once", *study(f"{folder}/optuna{k}", args.trials, "optuna", parallel=k,
                                                       optuna_config=optuna_settings)))
    default = rows[0][1]
    print(f"{'':16s} {'wall s':>7s} {'trials/h':>8s} {'x default':>9s} {'pruned':>6s} {'best':>7s}")
    for name, wall, summary in rows:
        print(f"{name:16s} {wall:7.0f} {args.trials / wall * 3600:8.0f} {default / wall:9.2f} "
              f"{summary.n_pruned:6d} {summary.best_metric:7.4f}")
    train = first_iterations(rows[0][2])
    for name, _, summary in rows[1:4]:
        other = first_iterations(summary)
        same = sum(1 for key, metrics in train.items() if other.get(key) == metrics)
        print(f"ray train and {name}: {same} of {len(train)} configurations trained to identical first-iteration "
              "metrics")


if __name__ == "__main__":
    main()
