"""Conditional dimensions (``when``): a parameter searched only when another takes given values.
The space language checks them where they are declared; the searches that can skip a
dimension (Optuna define-by-run, standalone and on Ray; Ray's random; BOHB's ConfigSpace
conditions) propose only active ones; every other search refuses, before any trial."""

import json
import math
import sys

import pytest
from helpers import study_config
from ray import cloudpickle

from stateset_hpo import SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import this module
T = SearchSpaceType
SPACE = SearchSpace.from_yaml("""
learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-2, default: 1.0e-4}
optimizer_type: {type: categorical, choices: [adamw, sgd], default: sgd}
adam_beta2: {type: uniform, low: 0.95, high: 0.999, when: {optimizer_type: adamw}}
num_iterations: {type: choice, choices: [1, 2, 4], default: 1}
clip_range: {type: uniform, low: 0.1, high: 0.3, when: {num_iterations: [2, 4]}}
clip_range_high: {type: uniform, low: 0.3, high: 0.4, when: {num_iterations: 4, optimizer_type: adamw}}
""")


def score(params):
    """Best with adamw, beta2 near 0.99 and four clipped updates (the conditional ones count)."""
    value = -(math.log10(params["learning_rate"]) + 3) ** 2
    if params["optimizer_type"] == "adamw":
        value += 0.5 - abs(params["adam_beta2"] - 0.99)
    if params["num_iterations"] > 1:
        value += 0.1 * params["num_iterations"] - abs(params["clip_range"] - 0.2)
    return {"score": value}


def never_called(params):
    raise AssertionError("no trial may run")


# -- the language ------------------------------------------------------------------------------------
def test_a_conditional_dimension_is_active_only_where_its_parents_say():
    assert SPACE.conditional and not SPACE.without(["adam_beta2", "clip_range", "clip_range_high"]).conditional
    assert SPACE.baseline() == {"learning_rate": 1e-4, "optimizer_type": "sgd", "num_iterations": 1}
    names = lambda params: [d.name for d in SPACE.active(params)]  # noqa: E731
    assert names({"optimizer_type": "adamw", "num_iterations": 1}) == [
        "learning_rate", "optimizer_type", "adam_beta2", "num_iterations"]
    assert "clip_range_high" in names({"optimizer_type": "adamw", "num_iterations": 4})
    assert "clip_range_high" not in names({"optimizer_type": "sgd", "num_iterations": 4})  # both parents must match
    assert SPACE.activating("clip_range_high") == {"num_iterations": 4, "optimizer_type": "adamw"}
    SPACE.validate_point({"learning_rate": 1e-3, "optimizer_type": "sgd", "num_iterations": 2, "clip_range": 0.2})
    with pytest.raises(ValueError, match=r"set although their conditions do not hold \['adam_beta2'\]"):
        SPACE.validate_point({"learning_rate": 1e-3, "optimizer_type": "sgd", "num_iterations": 1, "adam_beta2": 0.99})
    with pytest.raises(ValueError, match=r"missing \['clip_range'\]"):
        SPACE.validate_point({"learning_rate": 1e-3, "optimizer_type": "sgd", "num_iterations": 2})
    assert "num_iterations in [4] and optimizer_type in ['adamw']" in SPACE.describe()


def test_a_conditional_space_survives_json_and_yaml():
    assert SearchSpace.from_json(SPACE.to_json()) == SPACE
    assert SearchSpace.from_yaml(SPACE.to_yaml()) == SPACE
    assert json.loads(SPACE.to_json())["dimensions"][2]["when"] == {"optimizer_type": ["adamw"]}
    assert SPACE.narrow("adam_beta2", low=0.98)["adam_beta2"].when == SPACE["adam_beta2"].when


@pytest.mark.parametrize("when, message", [
    ({"momentum": "x"}, "'momentum', which is not a dimension declared before it"),
    ({"learning_rate": 1e-3}, "'learning_rate', a range; a condition reads a categorical or choice dimension"),
    ({"optimizer_type": ["adam"]}, r"values \['adam'\] are not among its choices \['adamw', 'sgd'\]"),
    ({"extra": True}, "cannot depend on itself"),
    ({}, "when must be a non-empty mapping"),
    ({"optimizer_type": []}, "must be a value or a non-empty list of values"),
    ("optimizer_type", "when must be a non-empty mapping"),
])
def test_a_bad_condition_is_one_clear_error_naming_the_dimension(when, message):
    base = SPACE.subset(["learning_rate", "optimizer_type"])
    with pytest.raises(ValueError, match=message) as caught:
        SearchSpace([*base, SearchDimension("extra", T.CATEGORICAL, choices=[True, False], when=when)])
    assert str(caught.value).startswith("dimension 'extra'")


def test_a_parent_must_come_first_and_cannot_be_removed_from_under_its_children():
    child = SearchDimension("adam_beta2", T.UNIFORM, low=0.9, high=0.99, when={"optimizer_type": "adamw"})
    parent = SearchDimension("optimizer_type", T.CATEGORICAL, choices=["adamw", "sgd"])
    with pytest.raises(ValueError, match="not a dimension declared before it"):
        SearchSpace([child, parent])
    with pytest.raises(ValueError, match="'adam_beta2': when names 'optimizer_type'"):
        SPACE.without(["optimizer_type"])
    with pytest.raises(ValueError, match=r"values \['adamw'\] are not among its choices"):
        SPACE.narrow("optimizer_type", choices=["sgd"])


# -- the searches that take it -------------------------------------------------------------------------
# (the Ray studies, a few seconds each, are slow-marked: the inner loop stays under 5 minutes)
SEARCHES = [("optuna", {})] + [pytest.param("ray_tune", settings, marks=pytest.mark.slow) for settings in (
    {"search_alg": "optuna"}, {"search_alg": "random"}, {"search_alg": "bohb", "scheduler": "bohb"})]


@pytest.mark.parametrize("backend, settings", SEARCHES)
def test_each_search_that_takes_conditions_proposes_only_active_dimensions(tmp_path, backend, settings, request):
    if backend == "ray_tune":
        request.getfixturevalue("ray_local")
    section = {"ray_tune": {"ray_config": {**settings, "scheduler": settings.get("scheduler", "fifo")}}}.get(backend, {})
    config = study_config(tmp_path, backend, n_trials=10, search_space=SPACE, objective_metric="score",
                          n_parallel_trials=1, **section)
    summary = run_study(config, TrialSpec(objective=score))
    assert summary.n_successful == 10
    points = [r.params for r in summary.all_results]
    assert points[0] == SPACE.baseline()
    for point in points:
        SPACE.validate_point(point)  # every active dimension set, nothing inactive
    assert any("adam_beta2" in p for p in points) and any("adam_beta2" not in p for p in points)
    assert any("clip_range" in p for p in points)


def test_a_searcher_told_a_conditional_earlier_study_starts_from_it(tmp_path):
    earlier = run_study(study_config(tmp_path / "a", "optuna", n_trials=6, search_space=SPACE, objective_metric="score"),
                        TrialSpec(objective=score))
    config = study_config(tmp_path / "b", "optuna", n_trials=2, search_space=SPACE, objective_metric="score",
                          warm_start=str(tmp_path / "a" / "out"), warm_start_comparable=True)
    summary = run_study(config, TrialSpec(objective=score))
    assert len(summary.warm_start["told"]) == earlier.n_successful
    told = {json.dumps(t["params"], sort_keys=True) for t in summary.warm_start["told"]}
    assert told == {json.dumps(r.params, sort_keys=True) for r in earlier.all_results}  # inactive ones stay absent


# -- the ones that cannot, refused before any trial ------------------------------------------------------
@pytest.mark.parametrize("backend, settings, names", [
    ("ray_tune", {"search_alg": "hyperopt"}, "search_alg hyperopt"),
    ("ray_tune", {"search_alg": "bayesopt"}, "search_alg bayesopt"),
    ("ray_tune", {"search_alg": "grid"}, "a grid"),
    ("ray_tune", {"search_alg": "random", "scheduler": "pbt"}, "scheduler 'pbt'"),
    ("wandb", {"method": "bayes"}, "a W&B sweep"),
])
def test_a_search_that_cannot_skip_a_dimension_refuses_a_conditional_space(tmp_path, backend, settings, names):
    section = "ray_config" if backend == "ray_tune" else "wandb_config"
    with pytest.raises(ValueError, match="cannot search a conditional space") as caught:
        config = study_config(tmp_path, backend, n_trials=100, search_space=SPACE, objective_metric="score",
                              **{section: settings})
        run_study(config, TrialSpec(objective=never_called))
    assert str(caught.value).startswith(names) and "adam_beta2, clip_range, clip_range_high" in str(caught.value)
    assert not (tmp_path / "out" / "summary.json").exists()


def test_the_cli_refuses_a_conditional_space_on_hyperopt_in_one_line(tmp_path, capsys):
    from stateset_hpo.launch import main

    path = tmp_path / "space.yaml"
    SPACE.save(path)
    assert main(["--backend", "ray_tune", "--search-alg", "hyperopt", "--space-file", str(path), "--dry-run",
                 "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "search_alg hyperopt cannot search a conditional space" in err[0]



@pytest.mark.slow  # (a few seconds: the inner loop stays under 5 minutes)
def test_the_example_conditional_space_passes_a_dry_run_as_its_comment_says(tmp_path, capsys):
    from pathlib import Path

    from stateset_hpo.launch import main

    example = Path(__file__).resolve().parents[1] / "examples" / "data" / "conditional_space.yaml"
    command = [line.strip("# \\\n") for line in example.read_text().splitlines() if line.startswith("#  ")]
    args = " ".join(command).split()[3:]  # (after "python -m stateset_hpo.launch")
    args = [str(example) if a.endswith("conditional_space.yaml") else a for a in args]
    assert main([*args, "--dry-run", "--output-dir", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert "clip_range" in capsys.readouterr().out
