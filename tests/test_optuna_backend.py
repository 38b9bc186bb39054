"""The standalone Optuna backend: real GRPO trials in this process, each iteration reported to
Optuna's pruner, persistent studies, failures recorded, multi-objective fronts."""

import dataclasses
import math
import subprocess
import sys

import optuna
import pytest

from helpers import NO_FROZEN_RULES, failing_spec, tiny_spec

from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType, TrialStatus
from stateset_hpo.study import run_study


C = SearchSpaceType.CHOICE
LR_SPACE = SearchSpace([
    SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-4, high=3e-3, default=1e-3),
    SearchDimension("kl_penalty_coef", SearchSpaceType.LOGUNIFORM, low=1e-3, high=1e-1, default=1e-2),
    SearchDimension("group_size", C, choices=[4, 8], default=4),
])
# Half of these can learn, half cannot (learning rate 1e-9): a pruner should stop the latter.
HOPELESS_SPACE = SearchSpace([SearchDimension("learning_rate", C, choices=[3e-3, 1e-9], default=3e-3),
                              SearchDimension("seed", C, choices=[0, 1, 2], default=0)])


def spec(**overrides):
    return tiny_spec(**overrides)


def config(tmp_path, space=LR_SPACE, n_trials=3, **optuna_config):
    settings = dict(backend="optuna", search_space=space, n_trials=n_trials, output_dir=str(tmp_path),
                    objective_metric="eval_reward", verbose=False, save_plots=False, validation_top_k=0)
    for key in ("objective_metrics", "directions", "timeout", "n_parallel_trials", "seed"):
        if key in optuna_config:
            settings[key] = optuna_config.pop(key)
    return HPOConfig(**{"seed": 0, **settings}, optuna_config={"n_startup_trials": 1, "pruner": "none", **optuna_config})


@pytest.mark.parametrize("sampler", ["tpe", "gp"])  # every sampler against the contract: test_backend_contract.py
def test_samplers_run_real_trials_starting_from_the_baseline(tmp_path, sampler):
    summary = run_study(config(tmp_path, sampler=sampler), spec())
    assert summary.n_trials == 3 and summary.n_successful == 3
    assert summary.all_results[0].params == LR_SPACE.baseline() and summary.baseline_trial_id == "0"
    for r in summary.all_results:
        LR_SPACE.validate_point(r.params)
        assert len(r.history) == 1 and 0 <= r.best_metric <= 1 and r.best_metric == r.metrics["eval_reward"]
    # the sampler moves away from the baseline (GP may propose one point twice when the scores tie)
    assert len({r.params["learning_rate"] for r in summary.all_results}) >= (2 if sampler == "gp" else 3)
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "trials.csv").is_file()


@pytest.mark.slow  # six real trials (the pruner's contract on every backend: test_backend_contract.py)
def test_median_pruner_stops_hopeless_trials_and_saves_iterations(tmp_path):
    cfg = config(tmp_path, HOPELESS_SPACE, n_trials=6, sampler="random", pruner="median",
                 pruner_startup_trials=1, n_warmup_steps=0)
    cfg = cfg.replace(health_rules=NO_FROZEN_RULES)  # lr 1e-9 is left to the pruner, not to the rules
    summary = run_study(cfg, spec(num_episodes=64, group_size=8))  # 4 iterations each when not pruned
    assert summary.n_pruned > 0 and summary.best_params["learning_rate"] == 3e-3
    pruned = [r for r in summary.all_results if r.status is TrialStatus.PRUNED]
    assert all(len(r.history) < 4 for r in pruned)
    assert sum(len(r.history) for r in summary.all_results) < 6 * 4  # without pruning: 24 iterations


@pytest.mark.slow  # (9 s: the inner loop stays under 5 minutes; CI runs it)
def test_a_pruner_acts_where_the_objective_was_measured_when_trials_evaluate_every_few_iterations(tmp_path):
    cfg = config(tmp_path, HOPELESS_SPACE, n_trials=4, sampler="random", pruner="median", pruner_startup_trials=1,
                 n_warmup_steps=0)
    cfg = cfg.replace(health_rules=NO_FROZEN_RULES)  # lr 1e-9 is left to the pruner, not to the rules
    summary = run_study(cfg, spec(num_episodes=64, group_size=8, eval_every=2))  # evaluated at iterations 2 and 4
    assert summary.n_failed == 0 and summary.n_trials == 4
    for r in summary.all_results:
        assert [("eval_reward" in h) for h in r.history] == [False, True, False, True][:len(r.history)]


def test_pruners_see_episodes_so_batch_sizes_meet_at_equal_compute(tmp_path):
    import optuna

    space = SearchSpace([SearchDimension("per_device_train_batch_size", C, choices=[2, 1], default=2)])
    # (a pruner that never prunes and no health rules: what it is shown must not depend on the scores)
    cfg = config(tmp_path, space, n_trials=2, sampler="random", pruner="median", n_warmup_steps=100,
                 storage=str(tmp_path / "j.log"), seed=1)
    run_study(dataclasses.replace(cfg, health_rules={"enabled": False}), spec(num_episodes=16))
    study = optuna.load_study(study_name="grpo_hpo", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log"))))
    steps = {t.params["per_device_train_batch_size"]: sorted(t.intermediate_values) for t in study.trials}
    # steps are episodes, not iterations (the last iteration is not reported: nothing is left to prune)
    assert steps[2] == [8] and steps[1] == [4, 8, 12]


@pytest.mark.slow
@pytest.mark.parametrize("pruner", ["percentile", "hyperband", "successive_halving", "wilcoxon"])
def test_other_pruners_run(tmp_path, pruner):
    cfg = config(tmp_path, HOPELESS_SPACE, n_trials=3, sampler="random", pruner=pruner, pruner_startup_trials=1,
                 n_warmup_steps=0)
    summary = run_study(cfg, spec(num_episodes=32))  # 2 iterations
    assert summary.n_trials == 3 and summary.n_failed == 0 and summary.n_successful >= 1


@pytest.mark.slow  # (5 s: the inner loop stays under 5 minutes; CI runs it)
def test_a_stored_study_continues_across_runs(tmp_path):
    db = f"sqlite:///{tmp_path / 'hpo.db'}"
    first = run_study(config(tmp_path / "a", n_trials=2, storage=db, study_name="warm"), spec())
    second = run_study(config(tmp_path / "b", n_trials=2, storage=db, study_name="warm"), spec())
    assert first.n_trials == 2 and second.n_trials == 4
    assert [r.trial_id for r in second.all_results] == ["0", "1", "2", "3"]
    assert second.all_results[:2] == first.all_results  # the earlier trials, as recorded then
    assert second.best_metric == max(r.best_metric for r in second.all_results)
    study = optuna.load_study(study_name="warm", storage=db)
    assert len(study.trials) == 4 and sum(t.params == LR_SPACE.baseline() for t in study.trials) == 1


@pytest.mark.slow
def test_two_processes_share_one_journal_study(tmp_path):
    """Two CLI processes on one journal file: every trial recorded once, none lost."""
    journal = tmp_path / "journal.log"
    args = [sys.executable, "-m", "stateset_hpo.launch", "--backend", "optuna", "--space", "conservative",
            "--n-trials", "2", "--storage", str(journal), "--pruner", "none", "--quiet", "--validation-top-k", "0",
            "--set", "num_episodes=8", "--set", "group_size=4", "--set", "per_device_train_batch_size=2",
            "--set", "max_new_tokens=16"]
    procs = [subprocess.Popen(args + ["--output-dir", str(tmp_path / f"out{i}")], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="grpo_hpo", storage=optuna.storages.JournalStorage(
        JournalFileBackend(str(journal))))
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 4  # the defaults once, not twice


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tmp_path):
    space = SearchSpace([SearchDimension("learning_rate", C, choices=[1e-3, 3e-3], default=1e-3)])
    ends = []

    class OnlyEnd:
        def on_trial_end(self, result):
            ends.append((result.trial_id, result.status))

    summary = run_study(config(tmp_path, space, n_trials=4, sampler="random"), failing_spec(),
                        callbacks=[OnlyEnd()])
    failed = [r for r in summary.all_results if r.status is TrialStatus.FAILED]
    assert failed and all("boom" in r.error and r.params["learning_rate"] == 3e-3 for r in failed)
    assert summary.n_successful + len(failed) == 4 and summary.best_params == {"learning_rate": 1e-3}
    assert ends == [(r.trial_id, r.status) for r in summary.all_results]


def test_multi_objective_study_gives_a_pareto_front(tmp_path):
    cfg = config(tmp_path, n_trials=4, sampler="nsga2", objective_metrics=["eval_reward", "kl"],
                 directions=["maximize", "minimize"])
    assert cfg.optuna_config["pruner"] == "none"
    summary = run_study(cfg, spec())
    front = summary.pareto_front
    assert front and set(front) <= {r.trial_id for r in summary.all_results}
    points = {r.trial_id: (r.metrics["eval_reward"], -r.metrics["kl"]) for r in summary.all_results}
    for trial_id in front:  # nothing beats a front member on both objectives
        assert not any(p[0] >= points[trial_id][0] and p[1] >= points[trial_id][1] and p != points[trial_id]
                       for p in points.values())
    assert summary.to_dict()["pareto_front"] == front


def test_a_derived_composite_metric_is_the_objective(tmp_path):
    composite = {"composite": lambda m: 0.7 * m["reward"] + 0.3 * m["safety_score"]}
    s = spec()
    s.derived_metrics = composite
    summary = run_study(config(tmp_path, n_trials=2).replace(objective_metric="composite"), s)
    for r in summary.all_results:
        assert math.isclose(r.best_metric, 0.7 * r.metrics["reward"] + 0.3 * r.metrics["safety_score"])


@pytest.mark.slow
def test_timeout_stops_the_running_trial_and_returns_what_finished(tmp_path):
    cfg = config(tmp_path, n_trials=50, timeout=4.0)
    summary = run_study(cfg, spec(num_episodes=4000))  # 500 planned iterations: far past the deadline
    assert 1 <= summary.n_trials < 50 and summary.total_time < 60
    cut = summary.all_results[-1]
    assert cut.status is TrialStatus.PRUNED and 1 <= len(cut.history) < 500


def test_parallel_trials_in_one_process(tmp_path):
    summary = run_study(config(tmp_path, n_trials=4, n_parallel_trials=2), spec())
    assert summary.n_successful == 4


@pytest.mark.parametrize("settings, message", [
    (dict(storage="sqlite:////no/such/dir/hpo.db"), "cannot be opened"),
    (dict(storage="/no/such/dir/journal.log"), "neither a database URL"),
    (dict(sampler="cmaes", objective_metrics=["reward", "kl"]), "optimises one objective"),
])
def test_bad_settings_fail_before_any_trial(tmp_path, settings, message):
    started = []

    class Watch:
        def on_trial_start(self, trial_id, params):
            started.append(trial_id)

    with pytest.raises(ValueError, match=message):
        run_study(config(tmp_path, **settings), spec(), callbacks=[Watch()])
    assert not started


@pytest.mark.parametrize("kwargs, message", [
    (dict(objective_metrics=["reward", "kl"], directions=["maximize"]), "one direction per objective metric"),
    (dict(objective_metrics=["reward", "kl"], optuna_config={"pruner": "median"}), "needs a single objective"),
    (dict(objective_metrics=["reward", "kl"], backend="wandb"), "needs backend='optuna' or 'ray_tune'"),
    (dict(directions=["maximize"]), "needs objective_metrics"),
])
def test_bad_objective_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HPOConfig(**kwargs)


def test_resume_without_storage_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="needs a persistent"):
        run_study(config(tmp_path), spec(), resume=True)
