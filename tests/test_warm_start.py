"""Warm starts: an earlier study's trials start a new one, told to its searcher when they are
comparable, else run first in their earlier order; what does not fit the new space is reported."""

import json
import sys

import optuna
import pytest
from ray import cloudpickle

from helpers import study_config
from stateset_hpo import SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.launch import main
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec
from stateset_hpo.warm_start import load

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this module

T = SearchSpaceType
SPACE = SearchSpace([SearchDimension("learning_rate", T.LOGUNIFORM, low=1e-5, high=1e-2, default=1e-4),
                     SearchDimension("optimizer_type", T.CATEGORICAL, choices=["adamw", "sgd"], default="adamw")])


def score(params):
    """Best near learning rate 1e-3 with adamw."""
    import math

    return {"score": -abs(math.log10(params["learning_rate"]) + 3) + (0.5 if params["optimizer_type"] == "adamw" else 0)}


def earlier_study(tmp_path, backend="optuna", n_trials=6, **changes):
    config = study_config(tmp_path / "earlier", backend, n_trials=n_trials, search_space=SPACE,
                          objective_metric="score", **changes)
    return config, run_study(config, TrialSpec(objective=score))


def test_without_comparable_the_earlier_best_run_first_in_their_order(tmp_path):
    _, before = earlier_study(tmp_path, seed=3)
    ranked = [r.params for r in before.ranked()]
    above = ranked[:ranked.index(SPACE.baseline())]  # what scored better than the earlier run of the defaults
    below = ranked[ranked.index(SPACE.baseline()) + 1:]
    assert len(above) == 3 and len(below) == 2, "the earlier study (seed 3) had trials on both sides of its defaults"
    config = study_config(tmp_path / "now", "optuna", n_trials=5, search_space=SPACE, objective_metric="score",
                          warm_start=str(tmp_path / "earlier" / "out"))
    after = run_study(config, TrialSpec(objective=score))
    assert after.all_results[0].params == SPACE.baseline()  # the baseline stays first
    assert [r.params for r in after.all_results[1:4]] == above  # then what beat it, in the earlier order
    assert after.all_results[4].params not in below  # then the sampler: nothing the defaults beat runs first
    assert after.warm_start["first"] == above  # recorded as they were ranked
    saved = json.loads((tmp_path / "now" / "out" / "summary.json").read_text())["warm_start"]
    assert saved["source"] == str(tmp_path / "earlier" / "out") and not saved["comparable"]
    assert "<h2>Warm start</h2>" in (tmp_path / "now" / "out" / "report.html").read_text()


def test_comparable_trials_are_told_to_optuna_and_are_not_this_studys_trials(tmp_path):
    earlier, before = earlier_study(tmp_path, optuna_config={"sampler": "tpe", "storage": f"sqlite:///{tmp_path}/s.db"},
                                    study_name="earlier")
    config = study_config(tmp_path / "now", "optuna", n_trials=3, search_space=SPACE, objective_metric="score",
                          warm_start=f"sqlite:///{tmp_path}/s.db#earlier", warm_start_comparable=True,
                          optuna_config={"sampler": "tpe", "storage": f"sqlite:///{tmp_path}/s.db"}, study_name="now")
    after = run_study(config, TrialSpec(objective=score))
    assert after.n_trials == 3  # the earlier trials are observations, not trials of this study
    now = optuna.load_study(study_name="now", storage=f"sqlite:///{tmp_path}/s.db")
    told = [t for t in now.trials if "warm_start" in t.user_attrs]
    assert len(told) == before.n_successful == 6 and all(t.state.name == "COMPLETE" for t in told)
    assert sorted(t.value for t in told) == sorted(r.best_metric for r in before.all_results)
    best = before.ranked()[0].params
    assert len(after.warm_start["told"]) == 6 and after.warm_start["first"] == [best]
    if best != SPACE.baseline():  # the earlier best is measured again at once, after the baseline
        assert after.all_results[1].params == best


def test_what_no_longer_fits_the_space_is_reported_and_dropped(tmp_path):
    earlier_study(tmp_path)
    narrower = SearchSpace([SearchDimension("learning_rate", T.LOGUNIFORM, low=1e-4, high=3e-4, default=2e-4),
                            SearchDimension("lora_r", T.CHOICE, choices=[8, 16], default=8)])
    with pytest.raises(ValueError, match="no earlier trial fits this study's space"):  # lora_r is new: nothing fits
        load(str(tmp_path / "earlier" / "out"), False, narrower, "score", "maximize")
    warm = load(str(tmp_path / "earlier" / "out"), True, narrower.subset(["learning_rate"]), "score", "maximize")
    assert "optimizer_type (no longer searched; dropped from 6 trials)" in warm.dropped
    outside = [d for d in warm.dropped if "outside the space" in d]
    inside = [p for p, _ in warm.told]
    assert outside and inside and all(1e-4 <= p["learning_rate"] <= 3e-4 for p in inside)  # never clipped into it
    assert len(outside) + len(inside) == 6


def flat(params):
    """Every configuration scores the same (as on the tiny task, where most leave the untrained
    model's greedy held-out score where it was)."""
    return {"score": 0.082}


def none_better(params):
    """No configuration beats the defaults, some do worse (as in seed 16 of bench/warm_start.py
    --source half-episodes: one trial above the baseline during training, and its final score below)."""
    return {"score": 0.0 if params["optimizer_type"] == "sgd" else 0.082}


@pytest.mark.parametrize("comparable", [True, False])
@pytest.mark.parametrize("earlier, why", [
    (flat, "all 5 fitting trials scored 0.082: they rank nothing"),
    (none_better, "no fitting trial scored better than the earlier run of this space's defaults (0.082): it found "
                  "nothing to start from")], ids=["all tied", "none above the defaults"])
def test_an_earlier_study_that_found_nothing_above_its_defaults_transfers_nothing_and_says_why(tmp_path, comparable,
                                                                                                 earlier, why):
    config = study_config(tmp_path / "earlier", "optuna", n_trials=5, search_space=SPACE, objective_metric="score")
    assert len({r.best_metric for r in run_study(config, TrialSpec(objective=earlier)).all_results}) == (
        1 if earlier is flat else 2)
    cold = study_config(tmp_path / "cold", "optuna", n_trials=4, search_space=SPACE, objective_metric="score", seed=3)
    warm = cold.replace(output_dir=str(tmp_path / "warm" / "out"), warm_start=str(tmp_path / "earlier" / "out"),
                        warm_start_comparable=comparable)
    cold_run, warm_run = run_study(cold, TrialSpec(objective=score)), run_study(warm, TrialSpec(objective=score))
    assert warm_run.warm_start["told"] == [] and warm_run.warm_start["first"] == []
    assert warm_run.warm_start["dropped"][0] == why
    # nothing steers the search: the warm study proposes what the cold one with its seed did
    assert [r.params for r in warm_run.all_results] == [r.params for r in cold_run.all_results]
    assert f"nothing transferred ({why}" in warm_run.format_summary()
    assert "/out: nothing transferred</p>" in (tmp_path / "warm" / "out" / "report.html").read_text()


@pytest.mark.parametrize("args, message", [
    (["--warm-start", "nowhere/summary.json"], "no summary.json there"),
    (["--warm-start", "1" * 400], "not a path this machine can read (File name too long)"),
    (["--warm-start", "sqlite:///missing.db#nope"], "no Optuna study 'nope'"),
    (["--warm-start-comparable"], "set warm_start too"),
    (["--warm-start", "EARLIER", "--backend", "ray_tune", "--search-alg", "grid"], "a warm start cannot order it"),
    (["--warm-start", "EARLIER", "--metric", "kl", "--direction", "minimize"], "not this study's objective 'kl'"),
])
def test_a_bad_warm_start_is_one_line_before_any_trial(tmp_path, monkeypatch, capsys, args, message):
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "summary.json").write_text(json.dumps(
        {"objective_metric": "eval_reward", "direction": "maximize", "all_results": [
            {"trial_id": "0", "params": {"learning_rate": 1e-3}, "metrics": {"eval_reward": 0.1}}]}))
    monkeypatch.chdir(tmp_path)
    args = [a.replace("EARLIER", str(tmp_path / "earlier")) for a in args]
    assert main(["--space", "conservative", "--backend", "optuna", *args, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("backend, search_alg, told", [
    ("optuna", None, True), ("ray_tune", "optuna", True), ("ray_tune", "bayesopt", True),
    ("ray_tune", "random", False), ("ray_tune", "hyperopt", False), ("wandb", None, False)])
def test_a_comparable_warm_start_is_what_the_studys_searcher_takes_and_says_so(tmp_path, backend, search_alg, told):
    """Told where the searcher takes observations; where it takes none, the earlier best run
    first, and the start line, summary and report say so rather than claiming they were told."""
    from stateset_hpo.warm_start import first_points, observations, of_study

    _, before = earlier_study(tmp_path, seed=3)
    above = [r.params for r in before.ranked()][:3]  # (seed 3: three trials beat the defaults)
    config = study_config(tmp_path / "now", backend, n_trials=8, search_space=SPACE, objective_metric="score",
                          warm_start=str(tmp_path / "earlier" / "out"), warm_start_comparable=True,
                          **({"ray_config": {"search_alg": search_alg}} if search_alg else {}))
    warm = of_study(config, SPACE)
    if told:
        assert len(observations(config, SPACE)) == 6 and first_points(config, SPACE) == [SPACE.baseline(), above[0]]
        assert "6 earlier trials told to the searcher as observations, the earlier best run first" in warm.describe()
    else:
        assert observations(config, SPACE) == [] and first_points(config, SPACE) == [SPACE.baseline(), *above]
        assert ("the earlier best 3 configurations run first (their scores order them only; comparable, but this "
                "study's searcher takes no observations)") in warm.describe()
    assert warm.record()["told"] == [{"params": p, "value": v} for p, v in observations(config, SPACE)]


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("search_alg", ["optuna", "random"])
def test_a_warm_start_on_ray_tells_the_optuna_searcher_or_runs_the_earlier_best_first(tmp_path, search_alg):
    _, before = earlier_study(tmp_path)
    config = study_config(tmp_path / "now", "ray_tune", n_trials=3, search_space=SPACE, objective_metric="score",
                          warm_start=str(tmp_path / "earlier" / "out"), warm_start_comparable=True,
                          ray_config={"search_alg": search_alg})
    after = run_study(config, TrialSpec(objective=score))
    assert after.n_trials == 3 and after.all_results[0].params == SPACE.baseline()
    best_earlier = [r.params for r in before.ranked() if r.params != SPACE.baseline()][0]
    if search_alg == "random":  # takes no observations: the earlier best run first instead
        assert after.all_results[1].params == best_earlier
    else:  # told, and only the earlier best runs again (then Optuna's sampler proposes)
        assert len(after.warm_start["told"]) == before.n_successful
        if before.ranked()[0].params != SPACE.baseline():
            assert after.all_results[1].params == before.ranked()[0].params


@pytest.mark.parametrize("search_alg", ["bayesopt", pytest.param("ax", marks=pytest.mark.slow)])
def test_a_comparable_warm_start_is_told_to_the_bayesopt_and_ax_searchers(tmp_path, search_alg):
    """Our own searchers on Ray take observations too: each earlier result is in the model
    before its first proposal (bayes_opt's registered points, Ax's completed trials), and the
    earlier best is the first point after the baseline."""
    from stateset_hpo.search.ray.searchers import build_search

    _, before = earlier_study(tmp_path)
    config = study_config(tmp_path / "now", "ray_tune", n_trials=4, search_space=SPACE, objective_metric="score",
                          warm_start=str(tmp_path / "earlier" / "out"), warm_start_comparable=True,
                          ray_config={"search_alg": search_alg})
    searcher = build_search(config, SPACE, "score", "max", 2)[0].searcher  # (inside its ConcurrencyLimiter)
    if search_alg == "bayesopt":
        values = sorted(point["target"] for point in searcher._optimizer.res)
    else:
        values = sorted(t.fetch_data().df["mean"].iloc[0] for t in searcher._client._experiment.trials.values())
    assert values == pytest.approx(sorted(r.best_metric for r in before.all_results))
    best = before.ranked()[0].params
    assert searcher.suggest("a") == SPACE.baseline()
    if best != SPACE.baseline():
        assert searcher.suggest("b") == best
