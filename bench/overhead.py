"""Per-trial orchestration overhead of the Ray backend, against raw Ray Tune, in one run.

Ways to run N trials one after another on a local Ray cluster:
  raw tune        a Tune function trainable that reports once and returns, with
                  `reuse_actors=True` (what a Tune user sets for many short trials; ours reuses
                  the trial process too, so this is the like-for-like baseline);
  raw tune + our trial  the same with the trainable running our engine's trial (`run_trial`:
                  the warm base model, one iteration, the held-out evaluation) and reporting its
                  final checkpoint to Tune (as ours keeps every trial's, for the recommendation
                  and `train_with_best_params`): the same work as ours direct, so the two differ
                  by the Ray backend's orchestration alone;
  raw tune+train  a Tune function that runs a one-worker Train V2 TorchTrainer that reports once
                  (no reuse: Tune cannot reuse a trial that starts its own worker group, nor
                  can ours);
  ours (direct / train)  run_study with trials of one tiny GRPO iteration, minus the time the
                  engine measured for that iteration (step_time), i.e. what our orchestration
                  adds around the work, loading the model included;
  ours (cold / warm)  the same trials in this process (Optuna backend), each loading the base
                  model (cold) or borrowing the one loaded before (warm: grpo/model_pool.py).
Each side runs a study of `--trials` trials, `--repeats` times interleaved (after one untimed
run of ours in this process, which pays the imports); a study's time splits into a per-trial
cost (the spacing of consecutive trials, one at a time, less their training: the work every
further trial adds) and its start-up (the rest). Figures are medians with their range.
Goals: a warm trial's overhead <= 0.5 s; a `direct` trial's <= 1.2x that of raw Tune with
`reuse_actors=True` running the same trial.

    python bench/overhead.py [--trials 8] [--train-trials 2] [--repeats 5]
"""

import argparse
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

from harness import Record, interleaved, shown, spread  # noqa: E402


def cost(wall: float, marks, work=()) -> dict:
    """A study's seconds split into start-up and a steady per-trial cost. ``marks``: one moment
    per trial at the same point of each (its last report, or when the driver saw it end); with one
    trial at a time, the spacing of consecutive marks is one trial's overhead plus its work
    (``work``: seconds each trial spent training, in mark order), and what is left of the wall
    time is the study's start-up (cluster connection, first process, imports, first model load)."""
    marks = sorted(marks)
    per_trial = (marks[-1] - marks[0] - sum(list(work)[1:])) / (len(marks) - 1)
    return {"per_trial": per_trial, "startup": wall - sum(work) - per_trial * (len(marks) - 1)}


def raw_tune(n: int, storage: str) -> dict:
    from ray import tune

    def trainable(config):
        tune.report({"ended": time.time()})

    start = time.perf_counter()
    grid = tune.Tuner(tune.with_resources(trainable, {"cpu": 1}), param_space={"x": tune.uniform(0, 1)},
                      tune_config=tune.TuneConfig(num_samples=n, max_concurrent_trials=1, reuse_actors=True),
                      run_config=tune.RunConfig(storage_path=storage, name="raw", verbose=0)).fit()
    return cost(time.perf_counter() - start, [r.metrics["ended"] for r in grid])


def raw_tune_train(n: int, storage: str) -> dict:
    import ray.train
    from ray import tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    def worker(config):
        ray.train.report({"ended": time.time()})

    def trainable(config):
        TorchTrainer(worker, scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
                     run_config=ray.train.RunConfig(storage_path=storage, callbacks=[TuneReportCallback()])).fit()

    start = time.perf_counter()
    grid = tune.Tuner(tune.with_resources(trainable, {"cpu": 0.1}), param_space={"x": tune.uniform(0, 1)},
                      tune_config=tune.TuneConfig(num_samples=n, max_concurrent_trials=1),
                      run_config=tune.RunConfig(storage_path=storage, name="raw_train", verbose=0)).fit()
    return cost(time.perf_counter() - start, [r.metrics["ended"] for r in grid])


def raw_tune_engine(n: int, storage: str) -> dict:
    """Raw Tune with `reuse_actors=True` whose trainable runs our engine's trial and reports its
    final checkpoint (the same work as ours direct: the warm base model, one iteration, the
    held-out evaluation, the checkpoint), so the difference from ours direct is the Ray
    backend's orchestration alone."""
    from ray import tune

    def trainable(config):
        from stateset_hpo.trial import run_trial

        def report(metrics, trainer):  # the last report with the trial's checkpoint, as ours keeps it
            with tempfile.TemporaryDirectory() as folder:
                trainer.save_checkpoint(folder)
                tune.report({"ended": time.time(), "work": metrics["step_time"]},
                            checkpoint=tune.Checkpoint.from_directory(folder))

        run_trial(trial_spec(), {"learning_rate": config["learning_rate"]}, report)

    start = time.perf_counter()
    grid = tune.Tuner(tune.with_resources(trainable, {"cpu": 1}),
                      param_space={"learning_rate": tune.loguniform(1e-5, 1e-3)},
                      tune_config=tune.TuneConfig(num_samples=n, max_concurrent_trials=1, reuse_actors=True),
                      run_config=tune.RunConfig(storage_path=storage, name="raw_engine", verbose=0)).fit()
    results = sorted(grid, key=lambda r: r.metrics["ended"])
    return cost(time.perf_counter() - start, [r.metrics["ended"] for r in results],
                [r.metrics["work"] for r in results])


def trial_spec():
    from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward
    from stateset_hpo.trial import TrialSpec

    return TrialSpec(environment=ConversationEnvironment("customer_service"), reward=domain_reward("customer_service"),
                     base_config=TrainingConfig(num_episodes=2, per_device_train_batch_size=1, group_size=2,
                                                max_new_tokens=8, include_value_function=False))


class ColdStarts:
    """A study callback that drops the process's loaded base models after every trial, so the
    next trial loads its own (what every trial did before warm trials)."""

    def on_trial_end(self, result):
        from stateset_hpo.grpo import model_pool

        model_pool.release_all()


def ours(n: int, storage: str, execution: str) -> dict:
    """execution: "direct" / "train" (Ray backend), or "warm" / "cold" (trials in this
    process, the Optuna backend, with or without the loaded base model kept)."""
    from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType
    from stateset_hpo.study import run_study

    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=1e-3)])
    spec = trial_spec()
    if execution in ("warm", "cold"):
        config = HPOConfig(backend="optuna", search_space=space, n_trials=n, output_dir=f"{storage}/{execution}",
                           verbose=False, save_plots=False, validation_top_k=0,
                           seed=0, optuna_config={"sampler": "random", "pruner": "none"})
    else:
        config = HPOConfig(backend="ray_tune", search_space=space, n_trials=n, output_dir=f"{storage}/{execution}",
                           cpu_per_trial=1, verbose=False, save_plots=False, validation_top_k=0,
                           ray_config={"execution": execution, "scheduler": "fifo", "search_alg": "random"})
    start = time.perf_counter()
    summary = run_study(config, spec, callbacks=[ColdStarts()] if execution == "cold" else [])
    wall = time.perf_counter() - start
    trials = sorted(summary.all_results, key=lambda r: r.ended_at)
    return cost(wall, [r.ended_at for r in trials], [sum(step["step_time"] for step in r.history) for r in trials])


def main() -> int:
    import ray

    from stateset_hpo.search.ray.connect import connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--train-trials", type=int, default=2,
                        help="trials per study of the two Train-worker sides (about 15 s each)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if min(args.trials, args.train_trials) < 2 or args.repeats < 1:
        parser.error("--trials and --train-trials must be at least 2 (the spacing of trials is measured), "
                     "--repeats at least 1")
    record = Record("overhead", "seconds of orchestration per trial: ours against raw Ray Tune (reuse_actors=True) "
                    "and raw Tune + Train", vars(args))
    connect(None, num_cpus=2)
    try:
        with tempfile.TemporaryDirectory() as storage:
            runs = iter(range(10**6))  # a fresh folder for every study

            def folder():
                return f"{storage}/{next(runs)}"

            ours(2, folder(), "cold")  # imports torch, peft, transformers: not timed below
            sides = {"raw tune": lambda: raw_tune(args.trials, folder()),
                     "raw tune+train": lambda: raw_tune_train(args.train_trials, folder()),
                     "raw tune + our trial": lambda: raw_tune_engine(args.trials, folder()),
                     "ours direct": lambda: ours(args.trials, folder(), "direct"),
                     "ours train": lambda: ours(args.train_trials, folder(), "train"),
                     "ours cold": lambda: ours(args.trials, folder(), "cold"),
                     "ours warm": lambda: ours(args.trials, folder(), "warm")}
            runs = interleaved(sides, args.repeats)
    finally:
        ray.shutdown()
    per_trial = {name: spread([r["per_trial"] for r in values]) for name, values in runs.items()}
    startup = {name: spread([r["startup"] for r in values]) for name, values in runs.items()}
    base = per_trial["raw tune"]["median"]
    record.table(f"Seconds of overhead per trial after the first, and of the study's start-up, median of "
                 f"{args.repeats} interleaved studies of {args.trials} trials ({args.train_trials} with Train workers) "
                 "(range)",
                 ["way", "s/trial", "x raw tune", "start-up s"],
                 [[name, shown(figure), f"{figure['median'] / base:.1f}", shown(startup[name], 1)]
                  for name, figure in per_trial.items()])
    record.goal("warm in-process trial, seconds of overhead", per_trial["ours warm"]["median"], 0.5, at_least=False)
    record.goal("ours direct / raw tune (reuse_actors=True) running our trial, per trial",
                per_trial["ours direct"]["median"] / per_trial["raw tune + our trial"]["median"], 1.2, at_least=False)
    record.note(f"ours train / raw tune+train: "
                f"{per_trial['ours train']['median'] / per_trial['raw tune+train']['median']:.2f}x; "
                f"ours warm / ours cold: {per_trial['ours warm']['median'] / per_trial['ours cold']['median']:.2f}x")
    return record.finish()


if __name__ == "__main__":
    sys.exit(main())
