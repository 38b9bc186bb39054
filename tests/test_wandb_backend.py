"""The W&B Sweeps backend, offline: W&B's open sweep engine proposes, each trial is an offline
W&B run with its per-iteration metrics, hyperband early termination really stops trials."""

import pytest
import yaml

from helpers import NO_FROZEN_RULES, failing_spec, logged_config, logged_history, logged_project, tiny_spec

from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType, TrialStatus
from stateset_hpo.study import run_study


C = SearchSpaceType.CHOICE
LR_SPACE = SearchSpace([
    SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-4, high=3e-3, default=1e-3),
    SearchDimension("group_size", C, choices=[4, 8], default=4),
])
HOPELESS_SPACE = SearchSpace([SearchDimension("learning_rate", C, choices=[3e-3, 1e-9], default=3e-3),
                              SearchDimension("seed", C, choices=[0, 1, 2], default=0)])


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")


def spec(**overrides):
    return tiny_spec(**overrides)


def config(tmp_path, space=LR_SPACE, n_trials=3, grid_points=3, **wandb_config):
    return HPOConfig(backend="wandb", search_space=space, n_trials=n_trials, output_dir=str(tmp_path),
                     objective_metric="eval_reward", verbose=False, save_plots=False, validation_top_k=0,
                     grid_points=grid_points, wandb_config=wandb_config)


def logged_run(folder):
    """(config, [per-iteration metrics]) of the one offline W&B run under a trial's folder."""
    files = list(folder.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    return logged_config(files[0]), logged_history(files[0])


@pytest.mark.parametrize("method", ["bayes", "grid"])  # every method against the contract: test_backend_contract.py
def test_sweep_methods_run_real_trials_logged_as_offline_runs(tmp_path, method):
    space = LR_SPACE
    summary = run_study(config(tmp_path, space, n_trials=4 if method == "grid" else 3, method=method, grid_points=2),
                        spec())
    assert summary.n_successful == summary.n_trials == (4 if method == "grid" else 3)
    if method != "grid":
        assert summary.all_results[0].params == space.baseline() and summary.baseline_trial_id == "0"
    sweep = yaml.safe_load((tmp_path / "sweep.yaml").read_text())
    assert sweep["method"] == method and sweep["metric"] == {"name": "eval_reward", "goal": "maximize"}
    assert set(sweep["parameters"]) == {"learning_rate", "group_size"}
    for r in summary.all_results:
        space.validate_point(r.params)
        logged_config, logged = logged_run(tmp_path / "trials" / r.trial_id)
        assert logged_config == r.params
        assert [h["iteration"] for h in logged] == [h["iteration"] for h in r.history]
        assert [h["eval_reward"] for h in logged] == pytest.approx([h["eval_reward"] for h in r.history])
    if method == "grid":
        assert sorted((r.params["learning_rate"], r.params["group_size"]) for r in summary.all_results) == \
            [(1e-4, 4), (1e-4, 8), (3e-3, 4), (3e-3, 8)]


def test_sweep_yaml_is_a_valid_w_and_b_sweep_for_every_predefined_space(tmp_path):
    import warnings

    from stateset_hpo import get_search_space, list_search_spaces
    from stateset_hpo.search.wandb.backend import sweep_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps
    for name in list_search_spaces():
        for method in ("grid", "random", "bayes"):
            cfg = HPOConfig(backend="wandb", search_space_name=name, n_trials=10**15, wandb_config={
                "method": method, "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 3}})
            sweep = sweep_config(cfg, get_search_space(name))
            assert sweeps.schema_violations_from_proposed_config(sweep) == []
            if method == "grid":  # W&B enumerates the whole grid (3^26 points for `full`)
                continue
            proposal = sweeps.next_run(sweep, [])
            get_search_space(name).validate_point({k: getattr(v["value"], "item", lambda: v["value"])()
                                                   for k, v in proposal.config.items()})


@pytest.mark.slow
def test_hyperband_early_termination_stops_hopeless_trials(tmp_path):
    cfg = config(tmp_path, HOPELESS_SPACE, n_trials=6, method="grid",
                 early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2})
    cfg = cfg.replace(health_rules=NO_FROZEN_RULES)  # lr 1e-9 is left to HyperBand, not to the rules
    summary = run_study(cfg, spec(num_episodes=32))  # 4 iterations each when not stopped
    assert summary.n_pruned > 0 and summary.best_params["learning_rate"] == 3e-3
    assert all(len(r.history) < 4 for r in summary.all_results if r.status is TrialStatus.PRUNED)
    assert sum(len(r.history) for r in summary.all_results) < 6 * 4


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    space = SearchSpace([SearchDimension("learning_rate", C, choices=[1e-3, 3e-3], default=1e-3)])
    summary = run_study(config(tmp_path, space, n_trials=2, method="grid"), failing_spec())
    failed = [r for r in summary.all_results if r.status is TrialStatus.FAILED]
    assert len(failed) == 1 and "boom" in failed[0].error and summary.n_successful == 1


@pytest.mark.slow
def test_timeout_stops_the_sweep_and_returns_what_finished(tmp_path):
    cfg = config(tmp_path, n_trials=50, method="random").replace(timeout=4.0)
    summary = run_study(cfg, spec(num_episodes=4000))  # 500 planned iterations: far past the deadline
    assert 1 <= summary.n_trials < 50 and summary.total_time < 60
    assert summary.all_results[-1].status is TrialStatus.PRUNED


def test_log_to_wandb_on_the_optuna_backend_goes_to_the_logging_project(tmp_path):
    cfg = HPOConfig(backend="optuna", search_space=LR_SPACE, n_trials=2, output_dir=str(tmp_path), verbose=False,
                    objective_metric="eval_reward", log_to_wandb=True, validation_top_k=0, seed=0,
                    optuna_config={"pruner": "none"}, wandb_logging={"project": "agents-hpo"})
    summary = run_study(cfg, spec(num_episodes=16))
    for r in summary.all_results:
        logged_config, logged = logged_run(tmp_path / "trials" / r.trial_id)
        assert logged_config == r.params and [h["iteration"] for h in logged] == [1, 2]
        (run_file,) = (tmp_path / "trials" / r.trial_id).glob("wandb/offline-run-*/run-*.wandb")
        assert logged_project(run_file) == "agents-hpo"


def test_a_wandb_backend_project_on_another_backend_s_logging_study_is_refused():
    # the user meant the logged trials to go there: wandb_config only configures the W&B sweep backend
    with pytest.raises(ValueError, match=r"set wandb_logging=\{'project': 'mine'\}"):
        HPOConfig(backend="optuna", log_to_wandb=True, wandb_config={"project": "mine"})
    HPOConfig(backend="wandb", log_to_wandb=True, wandb_config={"project": "mine"})  # the sweep's project
    HPOConfig(backend="optuna", wandb_config={"project": "mine"})  # nothing is logged


@pytest.mark.parametrize("kwargs, message", [
    (dict(resume=True), "cannot resume"),
])
def test_unsupported_requests_are_clear_errors(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_study(config(tmp_path), spec(), **kwargs)
    with pytest.raises(ValueError, match="one trial at a time"):
        run_study(config(tmp_path).replace(n_parallel_trials=2), spec())
    with pytest.raises(ValueError, match="the grid has 8 points but n_trials is 3"):
        run_study(config(tmp_path, method="grid", grid_points=4), spec())


class FakeRun:
    """What a W&B sweep agent's run gives a trial: its config, and where metrics go."""

    def __init__(self, params):
        self.config, self.summary, self.logged = params, {}, []

    def log(self, metrics, step=None):
        self.logged.append(metrics)

    def finish(self, exit_code=0):
        self.exit_code = exit_code


def test_an_online_sweep_ends_on_the_studys_patience_between_trials(tmp_path, monkeypatch):
    """W&B's hosted sweep cannot be reached here: its agent is faked (it gives each call's
    function one run of the sweep, as `wandb.agent(count=1)` does)."""
    import wandb

    from stateset_hpo.search.wandb import backend
    from stateset_hpo.trial import TrialSpec

    agent_calls = []
    monkeypatch.setattr(backend, "wandb_mode", lambda: "online")
    monkeypatch.setattr(wandb, "sweep", lambda sweep, project=None, entity=None: "sweep-1")
    monkeypatch.setattr(wandb, "init", lambda **kwargs: FakeRun({"learning_rate": 1e-3, "group_size": 4}))

    def agent(sweep_id, function, project=None, entity=None, count=None):
        agent_calls.append(count)
        for _ in range(count):
            function()

    monkeypatch.setattr(wandb, "agent", agent)
    study = config(tmp_path, n_trials=8).replace(early_stopping_patience=2, objective_metric="score")
    summary = run_study(study, TrialSpec(objective=lambda params: {"score": 1.0}))  # never improves
    assert summary.n_trials == 3 and agent_calls == [1, 1, 1]  # the best, then 2 without a gain: stop
