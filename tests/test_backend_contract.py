"""The backend contract, checked in seconds with objective trials (a function of the
parameters, no model): every backend, and every search algorithm, scheduler, sampler, pruner
and sweep method its registry names, runs trials that start from the space's defaults, stay
inside the space, record statuses, histories and errors, fire the study callbacks in order on
the driver, and run exactly the points validation asks for.

What only a real GRPO run shows (pruning mid-run, checkpoints, PBT exploits, Train workers)
is in test_ray_backend.py / test_optuna_backend.py / test_wandb_backend.py."""

import functools
import math
import os
import sys
import threading
import time
import uuid

import optuna
import pytest
from helpers import study_config
from ray import cloudpickle

from stateset_hpo import SearchDimension, SearchSpace, SearchSpaceType, TrialStatus
from stateset_hpo.dashboard import JOURNAL_NAME, dashboard_storage
from stateset_hpo.search.base import backend_names, get_backend
from stateset_hpo.search.optuna.storage import open_storage
from stateset_hpo.search.optuna.pruners import PRUNERS
from stateset_hpo.search.optuna.samplers import SAMPLERS
from stateset_hpo.search.ray.schedulers import SCHEDULERS
from stateset_hpo.search.ray.searchers import SEARCHERS
from stateset_hpo.search.optuna.space import to_optuna
from stateset_hpo.search.wandb.space import WANDB_METHODS
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec

# Ray's workers cannot import this test module: its objectives travel by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])
T = SearchSpaceType
SPACE = SearchSpace([
    SearchDimension("learning_rate", T.LOGUNIFORM, low=1e-5, high=1e-2, default=1e-4),
    SearchDimension("per_device_train_batch_size", T.CHOICE, choices=[1, 2, 4], default=2),
    SearchDimension("optimizer_type", T.CATEGORICAL, choices=["adamw", "sgd"], default="adamw"),
    SearchDimension("lora_r", T.INT, low=4, high=16, default=8),
])
BASELINE = SPACE.baseline()


def score(params):
    """Best at learning_rate 1e-3, batch 4, adamw, lora_r 16 (a subset of SPACE: the rest at
    their defaults)."""
    params = {**BASELINE, **params}
    return {"score": -(math.log10(params["learning_rate"]) + 3) ** 2 + 0.1 * params["per_device_train_batch_size"]
            + (0.2 if params["optimizer_type"] == "adamw" else 0.0) + 0.01 * params["lora_r"]}


def failing_second(folder, params):
    """score(), except that the study's second call fails (counted in files, so it works
    across processes)."""
    calls = len(os.listdir(folder))
    open(os.path.join(folder, f"call-{calls}"), "x").close()
    if calls == 1:
        raise RuntimeError("boom on the second trial")
    return score(params)


def failing_on_call(params):
    raise AssertionError("no trial may run")


def timed(folder, objective, params):
    """objective(params), taking a moment and recording when it ran (a file per call)."""
    start = time.time()
    time.sleep(0.3)
    with open(os.path.join(folder, uuid.uuid4().hex), "w") as f:
        f.write(f"{start} {time.time()}")
    return objective(params)


def most_at_once(folder):
    """The largest number of timed() calls that were running at the same moment."""
    edges = []
    for name in os.listdir(folder):
        start, end = map(float, open(os.path.join(folder, name)).read().split())
        edges += [(start, 1), (end, -1)]
    running = peak = 0
    for _, step in sorted(edges):
        running += step
        peak = max(peak, running)
    return peak


class Recorder:
    def __init__(self):
        self.events = []

    def on_hpo_start(self, space, n_trials):
        self.events.append(("hpo_start",))

    def on_trial_start(self, trial_id, params):
        self.events.append(("start", trial_id))

    def on_trial_result(self, trial_id, metrics):
        self.events.append(("result", trial_id))

    def on_trial_end(self, result):
        self.events.append(("end", result.trial_id))

    def on_hpo_end(self, summary):
        self.events.append(("hpo_end",))


def make_config(tmp_path, backend, n_trials=4, **changes):
    return study_config(tmp_path, backend, n_trials=n_trials, search_space=changes.pop("search_space", SPACE),
                        objective_metric="score", **changes)


def in_space(params):
    return all(SPACE[name].contains(value) for name, value in params.items()) and set(params) == set(SPACE.names)


@pytest.mark.parametrize("backend", backend_names())
def test_a_study_records_every_trial_and_fires_callbacks_in_order(tmp_path, backend, ray_if_needed):
    (tmp_path / "calls").mkdir()
    recorder = Recorder()
    spec = TrialSpec(objective=functools.partial(failing_second, str(tmp_path / "calls")))
    summary = run_study(make_config(tmp_path, backend), spec, callbacks=[recorder])

    assert summary.n_trials == 4
    assert summary.all_results[0].params == BASELINE and summary.baseline_trial_id == summary.all_results[0].trial_id
    assert all(in_space(r.params) for r in summary.all_results)
    failed = [r for r in summary.all_results if r.status is TrialStatus.FAILED]
    assert len(failed) == 1 and "boom on the second trial" in failed[0].error
    for r in summary.all_results:
        if r.status is TrialStatus.SUCCESS:
            assert r.best_metric == pytest.approx(score(r.params)["score"]) and len(r.history) == 1
    best = max((r for r in summary.all_results if r.status is TrialStatus.SUCCESS), key=lambda r: r.best_metric)
    assert summary.best_trial_id == best.trial_id

    assert recorder.events[0] == ("hpo_start",) and recorder.events[-1] == ("hpo_end",)
    ids = {r.trial_id for r in summary.all_results}
    for trial_id in ids:
        mine = [e[0] for e in recorder.events if e[1:] == (trial_id,)]
        assert mine[0] == "start" and mine[-1] == "end" and mine.count("end") == 1, (trial_id, mine)
    assert {e[1] for e in recorder.events if e[0] == "end"} == ids
    assert (tmp_path / "out" / "summary.json").is_file() and (tmp_path / "out" / "trials.csv").is_file()

    # every trial is also in optuna-dashboard's storage (a journal file in output_dir), as Optuna reads it
    mirrored = optuna.load_study(study_name="grpo_hpo", storage=open_storage(str(tmp_path / "out" / JOURNAL_NAME)))
    states = {"success": "COMPLETE", "failed": "FAIL", "pruned": "PRUNED"}
    assert [(t.user_attrs["trial_id"], t.state.name) for t in mirrored.trials] == \
        [(r.trial_id, states[r.status.value]) for r in summary.all_results]
    for t, r in zip(mirrored.trials, summary.all_results):
        assert t.params == r.params and t.distributions == {n: to_optuna(SPACE)[n] for n in r.params}
        if r.status is TrialStatus.SUCCESS:
            assert t.value == r.best_metric and t.intermediate_values == {1: r.best_metric}
    assert "boom on the second trial" in mirrored.trials[[r.trial_id for r in summary.all_results].index(
        failed[0].trial_id)].user_attrs["error"]


def test_the_dashboard_storage_can_be_chosen_or_turned_off_and_a_bad_one_fails_before_any_trial(tmp_path):
    stored = make_config(tmp_path, "optuna", optuna_config={"storage": f"sqlite:///{tmp_path}/own.db"})
    assert dashboard_storage(stored) == f"sqlite:///{tmp_path}/own.db"  # the Optuna study itself: no copy
    run_study(make_config(tmp_path, "wandb", n_trials=1, dashboard_storage=None), TrialSpec(objective=score))
    assert not (tmp_path / "out" / JOURNAL_NAME).exists()
    shared = str(tmp_path / "shared.journal")
    for _ in range(2):  # a shared storage keeps an earlier study of the same name and adds this one beside it
        run_study(make_config(tmp_path, "wandb", n_trials=1, dashboard_storage=shared), TrialSpec(objective=score))
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(open_storage(shared))) == \
        ["grpo_hpo", "grpo_hpo-2"]
    with pytest.raises(ValueError, match="neither a database URL"):
        run_study(make_config(tmp_path, "wandb", dashboard_storage=str(tmp_path / "no" / "such" / "f.journal")),
                  TrialSpec(objective=failing_on_call))


@pytest.mark.parametrize("backend", backend_names())
def test_validation_points_run_exactly_as_asked(tmp_path, backend, ray_if_needed):
    config = make_config(tmp_path, backend)  # one trial at a time (n_parallel_trials=1)
    # (the third lacks a key, as a conditional space's point may: it must stay absent, never sampled)
    points = [dict(BASELINE, seed=10_000), dict(BASELINE, learning_rate=1e-3, seed=10_001),
              {**{k: v for k, v in BASELINE.items() if k != "lora_r"}, "seed": 10_002}]
    (tmp_path / "runs").mkdir()
    objective = functools.partial(timed, str(tmp_path / "runs"), lambda p: {"score": score(p)["score"],
                                                                           "seen_seed": p["seed"]})
    finished = get_backend(backend).retrain(config, TrialSpec(objective=objective), points)
    assert sorted((r.params["seed"], r.status) for r in finished) == [(10_000, TrialStatus.SUCCESS),
                                                                      (10_001, TrialStatus.SUCCESS),
                                                                      (10_002, TrialStatus.SUCCESS)]
    for r in finished:
        assert r.params in points and r.metrics["seen_seed"] == r.params["seed"]
    assert most_at_once(tmp_path / "runs") == 1  # the study's concurrency limit holds for validation too


@pytest.mark.slow  # (several studies per backend: CI runs it, the inner loop does not)
@pytest.mark.parametrize("backend", backend_names())
def test_one_seed_on_the_config_makes_every_backend_repeat_its_search(tmp_path, backend, ray_if_needed):
    """HPOConfig.seed drives each backend's own search (Optuna's sampler, the Ray searcher,
    W&B's sweep engine): the same seed proposes the same trials whatever the process's global
    generators hold (W&B's engine draws from them otherwise), another seed others."""
    import random

    import numpy as np

    def proposals(seed, run):
        random.seed(run)
        np.random.seed(run)
        config = make_config(tmp_path / f"{seed}-{run}", backend, n_trials=4, seed=seed)
        return [r.params for r in run_study(config, TrialSpec(objective=score)).all_results]

    first = proposals(1, 0)
    assert proposals(1, 1) == first
    assert proposals(2, 0)[1:] != first[1:]  # (the first trial is the space's defaults in both)


@pytest.mark.parametrize("backend", backend_names())
def test_patience_ends_the_study_early(tmp_path, backend, ray_if_needed):
    spec = TrialSpec(objective=lambda p: {"score": 1.0})  # nothing ever improves on the first trial
    summary = run_study(make_config(tmp_path, backend, n_trials=12, early_stopping_patience=2), spec)
    assert 3 <= summary.n_trials < 12


@pytest.mark.parametrize("backend", backend_names())
def test_a_non_finite_objective_is_a_failed_trial(tmp_path, backend, ray_if_needed):
    spec = TrialSpec(objective=lambda p: {"score": float("nan") if p == BASELINE else 1.0})
    summary = run_study(make_config(tmp_path, backend, n_trials=2), spec)
    first = summary.all_results[0]
    assert first.status is TrialStatus.FAILED and "not a finite number" in first.error


class HoldsALock(Recorder):
    """A callback that cannot be pickled, like one holding a file, a logger or a DB connection."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()


@pytest.mark.parametrize("backend", backend_names())
def test_a_callback_need_not_be_picklable(tmp_path, backend, ray_if_needed):
    callback = HoldsALock()
    summary = run_study(make_config(tmp_path, backend, n_trials=2), TrialSpec(objective=score), callbacks=[callback])
    assert summary.n_successful == 2 and sum(e[0] == "end" for e in callback.events) == 2


class GuideLogger:
    """The guide's callback: formats best_metric, which a failed trial does not have."""

    def __init__(self):
        self.lines = []

    def on_trial_end(self, result):
        self.lines.append(f"trial {result.trial_id}: {result.best_metric:.4f}")


class StrictLogger(GuideLogger):
    errors_stop_the_study = True


def test_a_raising_callback_is_reported_once_in_each_study():
    from types import SimpleNamespace

    from stateset_hpo.callbacks import fire

    logger, failed = GuideLogger(), SimpleNamespace(trial_id="0", best_metric=None)
    for _ in range(2):  # the same callback in two studies: each study reports it once
        with pytest.warns(UserWarning, match="GuideLogger.on_trial_end raised TypeError") as caught:
            fire([logger], "on_hpo_start", SPACE, 2)
            fire([logger], "on_trial_end", failed)
            fire([logger], "on_trial_end", failed)
        assert len(caught) == 1


@pytest.mark.slow  # (several studies per backend: CI runs it, the inner loop does not)
@pytest.mark.parametrize("backend", backend_names())
def test_a_callback_that_raises_is_reported_once_and_the_study_goes_on(tmp_path, backend, ray_if_needed):
    spec = TrialSpec(objective=functools.partial(failing_second, str(tmp_path / "calls")))
    (tmp_path / "calls").mkdir()
    logger = GuideLogger()
    with pytest.warns(UserWarning, match="study callback GuideLogger.on_trial_end raised TypeError") as caught:
        summary = run_study(make_config(tmp_path, backend, n_trials=4), spec, callbacks=[logger])
    assert summary.n_trials == 4 and summary.n_failed == 1 and len(logger.lines) == 3
    assert sum("GuideLogger" in str(w.message) for w in caught) == 1
    if backend == "ray_tune":  # (strictness is the same fire() everywhere: checked on the in-process backends)
        return
    (tmp_path / "calls2").mkdir()
    spec = TrialSpec(objective=functools.partial(failing_second, str(tmp_path / "calls2")))
    with pytest.raises(TypeError, match="unsupported format string"):  # a strict callback ends the study
        run_study(make_config(tmp_path / "strict", backend, n_trials=4), spec, callbacks=[StrictLogger()])


def paired_scheduler(search_alg):
    """The scheduler a searcher works with alone (BOHB's HyperBand), or nothing."""
    return {"scheduler": name for name, s in SCHEDULERS.items() if s.searcher == search_alg}


# -- every registered algorithm --------------------------------------------------------------------
@pytest.mark.usefixtures("ray_local")
# (the model-based searchers, 4-6 s each, are slow-marked: the inner loop stays under 5 minutes)
@pytest.mark.parametrize("search_alg", [pytest.param(s, marks=pytest.mark.slow)
                                        if s in ("ax", "bayesopt", "bohb", "hyperopt") else s for s in sorted(SEARCHERS)])
def test_each_ray_search_algorithm(tmp_path, search_alg):
    grid = search_alg == "grid"
    space = SPACE.subset(["learning_rate", "optimizer_type"]) if grid else SPACE  # a grid of 4
    # one trial at a time, on a cluster with room for two (a searcher with a scheduler of its own: with it)
    config = make_config(tmp_path, "ray_tune", n_trials=4, search_space=space, n_parallel_trials=1,
                         grid_points=2, ray_config={"search_alg": search_alg, **paired_scheduler(search_alg)})
    (tmp_path / "runs").mkdir()
    summary = run_study(config, TrialSpec(objective=functools.partial(timed, str(tmp_path / "runs"), score)))
    assert summary.n_trials == 4 and summary.n_successful == 4
    assert most_at_once(tmp_path / "runs") == 1
    assert all(space[n].contains(v) for r in summary.all_results for n, v in r.params.items())
    if not grid:
        assert summary.all_results[0].params == BASELINE


def with_pid(params):
    return {**score(params), "process": os.getpid()}


@pytest.mark.usefixtures("ray_local")
def test_ray_trials_packed_into_one_worker_process(tmp_path):
    config = make_config(tmp_path, "ray_tune", n_trials=4, n_parallel_trials=2, ray_config={"trials_per_worker": 2})
    recorder = Recorder()
    summary = run_study(config, TrialSpec(objective=with_pid), callbacks=[recorder])
    assert summary.n_trials == 4 and summary.n_successful == 4 and summary.all_results[0].params == BASELINE
    assert len({r.metrics["process"] for r in summary.all_results}) == 1  # 2 at once, 2 per worker: one worker
    assert sum(e[0] == "end" for e in recorder.events) == 4


@pytest.mark.parametrize("changes, message", [
    (dict(ray_config={"trials_per_worker": 2, "execution": "train"}, n_parallel_trials=2), "execution='direct'"),
    (dict(ray_config={"trials_per_worker": 4}, n_parallel_trials=2), "at least 4"),
])
def test_packing_that_cannot_work_is_refused_when_configured(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        make_config(tmp_path, "ray_tune", **changes)


@pytest.mark.usefixtures("ray_local")
# (bohb's, with its model-based searcher, is slow-marked like the model-based searchers)
@pytest.mark.parametrize("scheduler", [pytest.param(s, marks=pytest.mark.slow) if s == "bohb" else s
                                       for s in sorted(SCHEDULERS)])
def test_each_ray_scheduler(tmp_path, scheduler):
    searcher = {"search_alg": SCHEDULERS[scheduler].searcher} if SCHEDULERS[scheduler].searcher else {}
    config = make_config(tmp_path, "ray_tune", n_trials=3, n_parallel_trials=2,
                         ray_config={"scheduler": scheduler, **searcher})
    if SCHEDULERS[scheduler].exploits:  # PBT needs checkpoints, which a custom objective does not have
        with pytest.raises(ValueError, match="custom objective reports once"):
            run_study(config, TrialSpec(objective=score))
        return
    summary = run_study(config, TrialSpec(objective=score))
    assert summary.n_trials == 3 and summary.n_successful == 3


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_each_optuna_sampler(tmp_path, sampler):
    summary = run_study(make_config(tmp_path, "optuna", n_trials=4, optuna_config={"sampler": sampler}),
                        TrialSpec(objective=score))
    assert summary.n_successful == 4 and summary.all_results[0].params == BASELINE
    assert all(in_space(r.params) for r in summary.all_results)


@pytest.mark.parametrize("pruner", sorted(PRUNERS))
def test_each_optuna_pruner(tmp_path, pruner):
    summary = run_study(make_config(tmp_path, "optuna", n_trials=3, optuna_config={"pruner": pruner}),
                        TrialSpec(objective=score))
    assert summary.n_successful == 3  # one report per trial: nothing to prune, nothing breaks


@pytest.mark.parametrize("method", WANDB_METHODS)
def test_each_wandb_method(tmp_path, method):
    n = SPACE.grid_size(2) if method == "grid" else 4
    summary = run_study(make_config(tmp_path, "wandb", n_trials=n, grid_points=2, wandb_config={"method": method}),
                        TrialSpec(objective=score))
    assert summary.n_trials == n and summary.n_successful == n
    assert all(in_space(r.params) for r in summary.all_results)


# -- Ax, the searcher added through the registry ---------------------------------------------------
@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_ax_handles_the_full_space_and_a_seed_makes_it_reproducible(tmp_path):
    from stateset_hpo import get_search_space

    full = get_search_space("full")

    def objective(p):
        return {"score": -abs(math.log10(p["learning_rate"]) + 4) + 0.01 * p["lora_r"]}

    runs = []
    for i in range(2):
        config = make_config(tmp_path / str(i), "ray_tune", n_trials=7, search_space=full,
                             seed=3, ray_config={"search_alg": "ax"})
        summary = run_study(config, TrialSpec(objective=objective))
        assert summary.n_successful == 7 and summary.all_results[0].params == full.baseline()
        assert all(full[n].contains(v) for r in summary.all_results for n, v in r.params.items())
        runs.append([r.params for r in summary.all_results])
    assert runs[0] == runs[1]
    assert len({repr(p) for p in runs[0]}) == 7  # it proposes, it does not repeat the baseline


def test_the_ax_searcher_saves_and_restores_its_experiment(tmp_path):
    """Tune saves a searcher with the study and restores it on --resume: the restored Ax
    experiment keeps every finished trial and goes on proposing points of the space."""
    from stateset_hpo.search.ray.ax_search import AxClientSearch

    searcher = AxClientSearch(SPACE, metric="score", mode="max", points_to_evaluate=[BASELINE], seed=0)
    proposed = []
    for i in range(3):
        proposed.append(searcher.suggest(f"t{i}"))
        searcher.on_trial_complete(f"t{i}", {"score": score(proposed[-1])["score"]})
    assert proposed[0] == BASELINE and all(in_space(p) for p in proposed)
    searcher.save(str(tmp_path / "searcher.json"))

    restored = AxClientSearch(SPACE, metric="score", mode="max", seed=0)
    restored.restore(str(tmp_path / "searcher.json"))
    trials = restored._client._experiment.trials  # what Ax itself recorded
    assert len(trials) == 3 and all(t.status.is_completed for t in trials.values())
    following = restored.suggest("t3")
    assert in_space(following)
