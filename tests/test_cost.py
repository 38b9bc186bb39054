"""Cost accounting: each trial's consumption is measured (tokens counted where they are
generated, worker-seconds from its wall time and held resources) and the study adds it up."""

import csv
import json
import sys

import pytest
from helpers import backends_ray_slow, study_config, tiny_spec
from ray import cloudpickle

from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.cost import COST_KEYS
from stateset_hpo.grpo import MultiTurnAgent
from stateset_hpo.results import HPOResult, HPOSummary, TrialStatus
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec, run_trial

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_generated_tokens_count_every_completion_token_of_training_and_evaluation(monkeypatch):
    counted = []
    generate = MultiTurnAgent.generate

    def spy(self, prompts, settings):
        out = generate(self, prompts, settings)
        counted.append(sum(len(c) for c in out))
        return out

    monkeypatch.setattr(MultiTurnAgent, "generate", spy)
    rows = []
    run_trial(tiny_spec(num_episodes=16, num_iterations=2, lora_dropout=0.0), {},
              lambda m, t: rows.append((m, len(counted))) or False)
    assert [m["generated_tokens"] for m, _ in rows] == [float(sum(counted[:n])) for _, n in rows]
    assert [m["optimizer_steps"] for m, _ in rows] == [2.0, 4.0]  # num_iterations updates per rollout


T = SearchSpaceType
SPACE = SearchSpace([SearchDimension("learning_rate", T.LOGUNIFORM, low=1e-4, high=1e-3, default=3e-4)])


@pytest.mark.parametrize("backend", backends_ray_slow())
def test_every_trial_records_what_it_consumed_and_the_study_adds_it_up(tmp_path, backend, ray_if_needed):
    config = study_config(tmp_path, backend, search_space=SPACE, n_trials=2, gpu_per_trial=0,
                          optuna_config={"pruner": "none"})
    summary = run_study(config, tiny_spec(num_episodes=16))
    for r in summary.all_results:
        assert r.status is TrialStatus.SUCCESS
        assert r.cost["episodes"] == 16 and r.cost["optimizer_steps"] == 2
        assert r.cost["generated_tokens"] == r.history[-1]["generated_tokens"] > 16
        assert r.cost["wall_seconds"] == r.training_time > 0
        assert r.cost["cpu_seconds"] == pytest.approx(r.training_time) and r.cost["gpu_seconds"] == 0
    assert summary.cost == {k: pytest.approx(sum(r.cost[k] for r in summary.all_results)) for k in COST_KEYS}
    stored = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert stored["cost"]["episodes"] == 32
    assert HPOSummary.load(tmp_path / "out" / "summary.json").all_results[0].cost == summary.all_results[0].cost
    rows = list(csv.DictReader((tmp_path / "out" / "trials.csv").open()))
    assert [float(row["cost_generated_tokens"]) for row in rows] == \
        [r.cost["generated_tokens"] for r in summary.all_results]


def result(trial_id, metric, tokens):
    return HPOResult(trial_id, {"x": trial_id}, metrics={"score": metric}, best_metric=metric,
                     cost={k: (tokens if k == "generated_tokens" else 0.0) for k in COST_KEYS})


def validated(verdict, gain):
    entry = {"label": "trial b", "role": "recommended", "mean": 0.7, "std": 0.0, "scores": [0.7], "seeds": [1],
             "errors": []}
    return {"metric": "test_score", "held_out": True, "configurations": [entry], "sentence": verdict,
            "comparison": {"verdict": verdict, "gain": gain}}


def test_the_recommendation_costs_the_trials_up_to_it_and_only_a_significant_gain_prices_it():
    results = [result("a", 0.5, 100), result("b", 0.7, 200), result("c", 0.6, 400)]
    summary = HPOSummary("score", "maximize", results, baseline_trial_id="a", validation=validated("better", 0.2))
    assert summary.cost["generated_tokens"] == 700
    assert summary.cost_to_recommendation["generated_tokens"] == 300  # a and b: b is the recommendation
    assert summary.gain == (pytest.approx(0.2), "validated gain on test_score")
    assert summary.cost_per_gain["generated_tokens"] == pytest.approx(3500)
    assert "cost per unit of validated gain on test_score (+0.2000)" in summary.format_summary()
    # a gain within noise (here +0.0001, as the README main job once found) prices nothing
    noise = HPOSummary("score", "maximize", results, validation=validated("no significant difference", 0.0001))
    assert noise.gain is None and noise.cost_per_gain is None
    assert "cost per unit of gain: none (the validation found no significant gain)" in noise.format_summary()
    unvalidated = HPOSummary("score", "maximize", results, baseline_trial_id="a")
    assert unvalidated.cost_per_gain is None and "(no validation ran)" in unvalidated.format_summary()


def sixteen_episodes(params):
    return {"score": -abs(params["learning_rate"] - 3e-4), "episodes": 16.0}


@pytest.mark.parametrize("backend", backends_ray_slow())
def test_a_budget_starts_no_trial_that_would_exceed_it_and_the_summary_says_so(tmp_path, backend, ray_if_needed):
    config = study_config(tmp_path, backend, search_space=SPACE, n_trials=6, objective_metric="score",
                          budget={"episodes": 40})
    summary = run_study(config, TrialSpec(objective=sixteen_episodes))
    # 16 + 16 = 32 spent; a third trial would bring it to 48 > 40
    assert summary.n_trials == 2 and summary.cost["episodes"] == 32
    assert summary.ended_by.startswith("the budget ended the study: episodes 32 spent of 40")
    assert "the budget ended the study" in (tmp_path / "out" / "report.html").read_text()
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["ended_by"] == summary.ended_by


@pytest.mark.parametrize("budget, message", [
    ({"gpu_hour": 1}, r"unknown keys \['gpu_hour'\]; valid keys: gpu_hours, cpu_hours, tokens"),
    ({"tokens": 0}, r"\['tokens'\] must be a number > 0"),
    (5, "must be a mapping"),
])
def test_a_bad_budget_fails_when_the_config_is_built(tmp_path, budget, message):
    with pytest.raises(ValueError, match=message):
        HPOConfig(budget=budget, output_dir=str(tmp_path))
