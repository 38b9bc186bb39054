"""The W&B Sweeps backend, offline: W&B's open sweep engine proposes, each trial is an offline
W&B run with its per-iteration metrics, hyperband early termination really stops trials."""

import struct

import pytest
import yaml

from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType, TrialStatus
from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec

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
    base = dict(num_episodes=8, per_device_train_batch_size=2, group_size=4, max_new_tokens=24,
                include_value_function=False, warmup_ratio=0.0)
    return TrialSpec(environment=ConversationEnvironment("customer_service"),
                     reward=domain_reward("customer_service"), base_config=TrainingConfig(**{**base, **overrides}))


def config(tmp_path, space=LR_SPACE, n_trials=3, **wandb_config):
    return HPOConfig(backend="wandb", search_space=space, n_trials=n_trials, output_dir=str(tmp_path),
                     objective_metric="eval_reward", verbose=False, save_plots=False, wandb_config=wandb_config)


def wandb_records(path):
    """The protobuf records of an offline run file (.wandb: a 7-byte header, then LevelDB-log
    framed records in 32 KiB blocks); wandb 0.31 ships no reader for it."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, chunk = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        if length == 0 and kind == 0:
            break
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(chunk)
            chunk = b""
            yield record


def logged_run(folder):
    """(config, [per-iteration metrics]) of the one offline W&B run under a trial's folder."""
    files = list(folder.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    key = lambda item: item.key or "/".join(item.nested_key)  # noqa: E731
    config, history = {}, []
    for record in wandb_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config = {key(u): yaml.safe_load(u.value_json) for u in record.run.config.update if key(u) != "_wandb"}
        elif kind == "history":
            history.append({key(i): yaml.safe_load(i.value_json) for i in record.history.item})
    return config, sorted(history, key=lambda h: h["_step"])


@pytest.mark.parametrize("method", ["random", "bayes", "grid"])
def test_each_sweep_method_runs_real_trials_logged_as_offline_runs(tmp_path, method):
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
    from stateset_hpo.search.wandb_sweep import sweep_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps
    for name in list_search_spaces():
        for method in ("grid", "random", "bayes"):
            cfg = HPOConfig(backend="wandb", search_space_name=name, wandb_config={
                "method": method, "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 3}})
            sweep = sweep_config(cfg, get_search_space(name))
            assert sweeps.schema_violations_from_proposed_config(sweep) == []
            if method == "grid":  # W&B enumerates the whole grid (3^26 points for `full`)
                continue
            proposal = sweeps.next_run(sweep, [])
            get_search_space(name).validate_point({k: getattr(v["value"], "item", lambda: v["value"])()
                                                   for k, v in proposal.config.items()})


def test_hyperband_early_termination_stops_hopeless_trials(tmp_path):
    cfg = config(tmp_path, HOPELESS_SPACE, n_trials=6, method="grid",
                 early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2})
    summary = run_study(cfg, spec(num_episodes=32))  # 4 iterations each when not stopped
    assert summary.n_pruned > 0 and summary.best_params["learning_rate"] == 3e-3
    assert all(len(r.history) < 4 for r in summary.all_results if r.status is TrialStatus.PRUNED)
    assert sum(len(r.history) for r in summary.all_results) < 6 * 4


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    space = SearchSpace([SearchDimension("max_new_tokens", C, choices=[24, 0], default=24)])
    summary = run_study(config(tmp_path, space, n_trials=2, method="grid"), spec())
    failed = [r for r in summary.all_results if r.status is TrialStatus.FAILED]
    assert len(failed) == 1 and "max_new_tokens" in failed[0].error and summary.n_successful == 1


def test_timeout_stops_the_sweep_and_returns_what_finished(tmp_path):
    cfg = config(tmp_path, n_trials=50, method="random").replace(timeout=4.0)
    summary = run_study(cfg, spec(num_episodes=4000))  # 500 planned iterations: far past the deadline
    assert 1 <= summary.n_trials < 50 and summary.total_time < 60
    assert summary.all_results[-1].status is TrialStatus.PRUNED


def test_log_to_wandb_on_the_optuna_backend(tmp_path):
    cfg = HPOConfig(backend="optuna", search_space=LR_SPACE, n_trials=2, output_dir=str(tmp_path), verbose=False,
                    objective_metric="eval_reward", log_to_wandb=True, optuna_config={"seed": 0, "pruner": "none"})
    summary = run_study(cfg, spec(num_episodes=16))
    for r in summary.all_results:
        logged_config, logged = logged_run(tmp_path / "trials" / r.trial_id)
        assert logged_config == r.params and [h["iteration"] for h in logged] == [1, 2]


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
