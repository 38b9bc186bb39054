"""Reward under a KL budget: a trial that breaks a constraint is never the best nor on the
Pareto front, on every backend; Optuna's constrained samplers get the violations; the Ray
backend gives a Pareto front for several objectives."""

import csv
import math
import sys

import optuna
import pytest
from helpers import backends_ray_slow, study_config
from ray import cloudpickle

from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType, TrialStatus
from stateset_hpo.constraints import broken, check_constraints, feasible, parse_constraint
from stateset_hpo.launch import main
from stateset_hpo.results import HPOResult, HPOSummary
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec

cloudpickle.register_pickle_by_value(sys.modules[__name__])

T = SearchSpaceType
SPACE = SearchSpace([SearchDimension("learning_rate", T.LOGUNIFORM, low=1e-5, high=1e-1, default=1e-4)])


def reward_and_kl(params):
    """Reward and KL both grow with the learning rate: the best reward breaks a KL budget."""
    x = math.log10(params["learning_rate"]) + 5  # 0 .. 4
    return {"score": x, "kl": 0.01 * 10 ** x}


@pytest.mark.parametrize("value, message", [
    ({"kl": 0.05}, "must be a mapping with 'min' and/or 'max'"),
    ({"kl": {"below": 0.05}}, "must be a mapping with 'min' and/or 'max'"),
    ({"kl": {"max": "low"}}, r"\['kl'\]\['max'\] must be a finite number"),
    ({"kl": {"min": 1, "max": 0}}, "min 1 above max 0"),
    ([("kl", 1)], "must be a mapping such as"),
])
def test_bad_constraints_fail_when_the_config_is_built(tmp_path, value, message):
    with pytest.raises(ValueError, match=message):
        HPOConfig(constraints=value, output_dir=str(tmp_path))


def test_constraints_read_and_judge():
    assert parse_constraint("kl<=0.05") == {"kl": {"max": 0.05}}
    assert parse_constraint(" reward_std >= 1e-2") == {"reward_std": {"min": 0.01}}
    with pytest.raises(ValueError, match="METRIC<=NUMBER"):
        parse_constraint("kl=0.05")
    budget = check_constraints({"kl": {"max": 0.05}})
    assert feasible({"kl": 0.05}, budget) and not feasible({"kl": 0.06}, budget)
    assert not feasible({}, budget) and not feasible({"kl": float("nan")}, budget)
    assert broken({"kl": 0.06}, budget) == ["kl 0.06 > 0.05"] and broken({}, budget) == ["kl not reported > 0.05"]


def test_the_best_and_the_pareto_front_keep_to_the_constraints(tmp_path):
    results = [HPOResult("a", {}, metrics={"score": 0.9, "kl": 0.2}, best_metric=0.9),
               HPOResult("b", {}, metrics={"score": 0.6, "kl": 0.04}, best_metric=0.6),
               HPOResult("c", {}, metrics={"score": 0.5, "kl": 0.01}, best_metric=0.5)]
    summary = HPOSummary("score", "maximize", results, objective_metrics=["score", "kl"],
                         directions=["maximize", "minimize"], constraints={"kl": {"max": 0.05}})
    assert summary.best_trial_id == "b" and summary.pareto_front == ["b", "c"]
    assert "infeasible: kl 0.2 > 0.05" in summary.format_summary()
    summary.write(tmp_path)
    rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert [row["breaks_constraints"] for row in rows] == ["kl 0.2 > 0.05", "", ""]
    assert HPOSummary.load(tmp_path / "summary.json").best_trial_id == "b"
    none = HPOSummary("score", "maximize", results[:1], constraints={"kl": {"max": 0.05}})
    assert none.best_result is None and "within the constraints kl <= 0.05" in none.format_summary()


def config_for(tmp_path, backend, **changes):
    return study_config(tmp_path, backend, search_space=SPACE, n_trials=8, objective_metric="score",
                        optuna_config={"sampler": "tpe", "n_startup_trials": 3}, **changes)


@pytest.mark.parametrize("backend", backends_ray_slow())
def test_a_trial_over_the_kl_budget_is_never_the_best_on_any_backend(tmp_path, backend, ray_if_needed):
    config = config_for(tmp_path, backend, constraints={"kl": {"max": 1.0}})  # score <= 2 within it
    summary = run_study(config, TrialSpec(objective=reward_and_kl))
    scores = [r.metrics["score"] for r in summary.all_results if r.status is TrialStatus.SUCCESS]
    assert max(scores) > 2  # the search did try beyond the budget ...
    best = summary.best_result
    assert best.metrics["kl"] <= 1.0  # ... and recommends only within it
    assert best.best_metric == max(s for s in scores if 0.01 * 10 ** s <= 1.0)


def test_optuna_records_each_trials_violations_for_its_constrained_sampler(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    config = config_for(tmp_path, "optuna", constraints={"kl": {"max": 1.0}})
    config = config.replace(optuna_config={**config.optuna_config, "storage": storage})
    run_study(config, TrialSpec(objective=reward_and_kl))
    study = optuna.load_study(study_name=config.resolved_study_name, storage=storage)
    for t in study.trials:
        assert t.constraints == {"kl<=1": pytest.approx(t.user_attrs["history"][-1]["kl"] - 1.0)}


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_the_ray_backend_gives_a_pareto_front_of_reward_against_kl(tmp_path):
    config = config_for(tmp_path, "ray_tune", objective_metrics=["score", "kl"], directions=["maximize", "minimize"])
    summary = run_study(config, TrialSpec(objective=reward_and_kl))
    # reward and KL rise together: every trial is on the front (none better on both)
    assert sorted(summary.pareto_front) == sorted(r.trial_id for r in summary.all_results)


def test_cli_constraint_flags(tmp_path, capsys):
    assert main(["--space", "grpo", "--kl-budget", "0.05", "--dry-run", "--output-dir", str(tmp_path)]) == 0
    assert "constraints: kl <= 0.05" in capsys.readouterr().out
    assert main(["--space", "grpo", "--constraint", "kl<0.05", "--dry-run", "--output-dir", str(tmp_path)]) == 2
    assert main(["--space", "grpo", "--constraint", "kll<=0.05", "--dry-run", "--output-dir", str(tmp_path)]) == 2
    assert "constrained metric 'kll' is reported by no trial" in capsys.readouterr().err
