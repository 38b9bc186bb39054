"""Per-trial orchestration overhead of the Ray backend, against raw Ray Tune, in one run.

Three ways to run N trials one after another on a local Ray cluster:
  raw tune        a Tune function trainable that reports once and returns;
  raw tune+train  a Tune function that runs a one-worker Train V2 TorchTrainer that reports once;
  ours (direct / train)  run_study with trials of one tiny GRPO iteration, minus the time the
                  engine measured for that iteration (step_time), i.e. what our orchestration
                  adds around the work, loading the model included;
  ours (cold / warm)  the same trials in this process (Optuna backend), each loading the base
                  model (cold) or borrowing the one loaded before (warm: grpo/model_pool.py).
Prints seconds per trial for each and the ratios to raw Tune.

    python bench/overhead.py [--trials 6]
"""

import argparse
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")


def raw_tune(n: int, storage: str) -> float:
    from ray import tune

    def trainable(config):
        tune.report({"score": 1.0})

    start = time.perf_counter()
    tune.Tuner(tune.with_resources(trainable, {"cpu": 1}), param_space={"x": tune.uniform(0, 1)},
               tune_config=tune.TuneConfig(num_samples=n, max_concurrent_trials=1),
               run_config=tune.RunConfig(storage_path=storage, name="raw", verbose=0)).fit()
    return (time.perf_counter() - start) / n


def raw_tune_train(n: int, storage: str) -> float:
    import ray.train
    from ray import tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    def worker(config):
        ray.train.report({"score": 1.0})

    def trainable(config):
        TorchTrainer(worker, scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
                     run_config=ray.train.RunConfig(storage_path=storage, callbacks=[TuneReportCallback()])).fit()

    start = time.perf_counter()
    tune.Tuner(tune.with_resources(trainable, {"cpu": 0.1}), param_space={"x": tune.uniform(0, 1)},
               tune_config=tune.TuneConfig(num_samples=n, max_concurrent_trials=1),
               run_config=tune.RunConfig(storage_path=storage, name="raw_train", verbose=0)).fit()
    return (time.perf_counter() - start) / n


class ColdStarts:
    """A study callback that drops the process's loaded base models after every trial, so the
    next trial loads its own (what every trial did before warm trials)."""

    def on_trial_end(self, result):
        from stateset_hpo.grpo import model_pool

        model_pool.release_all()


def ours(n: int, storage: str, execution: str) -> float:
    """execution: "direct" / "train" (Ray backend), or "warm" / "cold" (trials in this
    process, the Optuna backend, with or without the loaded base model kept)."""
    from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType
    from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward
    from stateset_hpo.study import run_study
    from stateset_hpo.trial import TrialSpec

    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=1e-3)])
    spec = TrialSpec(environment=ConversationEnvironment("customer_service"), reward=domain_reward("customer_service"),
                     base_config=TrainingConfig(num_episodes=2, per_device_train_batch_size=1, group_size=2,
                                                max_new_tokens=8, include_value_function=False))
    if execution in ("warm", "cold"):
        config = HPOConfig(backend="optuna", search_space=space, n_trials=n, output_dir=f"{storage}/{execution}",
                           verbose=False, save_plots=False, validation_top_k=0,
                           optuna_config={"sampler": "random", "pruner": "none", "seed": 0})
    else:
        config = HPOConfig(backend="ray_tune", search_space=space, n_trials=n, output_dir=f"{storage}/{execution}",
                           cpu_per_trial=1, verbose=False, save_plots=False, validation_top_k=0,
                           ray_config={"execution": execution, "scheduler": "fifo", "search_alg": "random"})
    start = time.perf_counter()
    summary = run_study(config, spec, callbacks=[ColdStarts()] if execution == "cold" else [])
    wall = time.perf_counter() - start
    work = sum(step["step_time"] for r in summary.all_results for step in r.history)
    return (wall - work) / n


def main() -> None:
    import ray

    from stateset_hpo.search.ray.connect import connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    args = parser.parse_args()
    connect(None, num_cpus=2)
    try:
        with tempfile.TemporaryDirectory() as storage:
            rows = [("raw tune", raw_tune(args.trials, storage)),
                    ("raw tune+train", raw_tune_train(args.trials, storage)),
                    ("ours direct", ours(args.trials, storage, "direct")),
                    ("ours train", ours(args.trials, storage, "train")),
                    ("(imports)", ours(1, storage + "/imports", "cold")),  # torch, peft: not timed below
                    ("ours cold", ours(args.trials, storage, "cold")),
                    ("ours warm", ours(args.trials, storage, "warm"))]
    finally:
        ray.shutdown()
    base = rows[0][1]
    print(f"{'':16s} {'s/trial':>8s} {'x raw tune':>10s}")
    rows = [row for row in rows if row[0] != "(imports)"]
    for name, sec in rows:
        print(f"{name:16s} {sec:8.2f} {sec / base:10.1f}")
    print(f"ours train / raw tune+train: {rows[3][1] / rows[1][1]:.2f}x; "
          f"ours direct / raw tune: {rows[2][1] / rows[0][1]:.2f}x; "
          f"ours warm / ours cold (in-process trials): {rows[5][1] / rows[4][1]:.2f}x")


if __name__ == "__main__":
    main()
