"""A custom objective that reports every step (``objective(params, report)``, or its own Hugging
Face trainer with `integrations.hf.ReportCallback`) is pruned mid-way like an engine trial."""

import sys

import pytest
from ray import cloudpickle

from helpers import study_config
from stateset_hpo import SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.integrations.hf import ReportCallback
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this module

# the first trial is the default, 1.0: every later one is below it at every step
SPACE = SearchSpace([SearchDimension("x", SearchSpaceType.UNIFORM, low=0.0, high=1.0, default=1.0)])


def curve(params, report):
    """10 steps whose score is x at every step."""
    for _ in range(10):
        if report({"score": params["x"]}):
            return


@pytest.mark.parametrize("backend", ["optuna", pytest.param("ray_tune", marks=pytest.mark.slow)])
def test_a_reporting_objective_is_pruned_at_a_step(tmp_path, backend, ray_if_needed):
    section = {"optuna": {"optuna_config": {"pruner": "median", "pruner_startup_trials": 1, "n_warmup_steps": 2}},
               "ray_tune": {"ray_config": {"scheduler": "asha", "grace_period": 2, "reduction_factor": 2}}}[backend]
    config = study_config(tmp_path, backend, n_trials=3, search_space=SPACE, objective_metric="score", **section)
    summary = run_study(config, TrialSpec(objective=curve, objective_steps=10))
    first, *later = summary.all_results
    assert first.params["x"] == 1.0 and first.status.value == "success" and len(first.history) == 10
    for r in later:
        assert r.status.value == "pruned" and 2 <= len(r.history) < 10, r.history


def test_a_reporting_objective_must_say_how_many_steps_it_plans():
    with pytest.raises(ValueError, match="needs TrialSpec.objective_steps"):
        TrialSpec(objective=curve)


def test_a_reporting_objective_that_returns_metrics_or_stops_short_fails_saying_why(tmp_path):
    def returns(params, report):
        report({"score": 1.0})
        return {"score": 1.0}

    def short(params, report):
        report({"score": 1.0})

    for objective, message in ((returns, "returns None"), (short, "reported 1 steps of the 3")):
        summary = run_study(study_config(tmp_path, "optuna", n_trials=1, search_space=SPACE, objective_metric="score"),
                            TrialSpec(objective=objective, objective_steps=3))
        assert message in summary.all_results[0].error


def test_the_hf_callback_reports_each_log_and_stops_the_trainer_when_told(tiny_model_path, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    ids = tokenizer(["hello , how can i help you today ?"] * 8)["input_ids"]
    data = [{"input_ids": torch.tensor(i), "labels": torch.tensor(i)} for i in ids]
    reports = []

    def report(metrics):
        reports.append(metrics)
        return len(reports) == 3  # the study stops the trial at its third report

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=10, logging_steps=1, per_device_train_batch_size=2,
                             report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[ReportCallback(report)])
    trainer.train()
    assert [r["global_step"] for r in reports] == [1.0, 2.0, 3.0] and all("loss" in r for r in reports)
    assert trainer.state.global_step == 3
    with pytest.raises(ValueError, match="must be one of log, evaluate"):
        ReportCallback(report, on="step")
