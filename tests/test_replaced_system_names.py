"""Names the replaced system's `training.hpo` has and the guide does not show: code written for
it keeps working (thin aliases), and where a value is given twice the two must agree."""

import pytest

from stateset_hpo import (HPOConfig, HPOResult, HPOSummary, SearchDimension, SearchSpaceType, TrialStatus,
                          get_search_space, list_available_search_spaces, list_search_spaces)
from stateset_hpo.grpo import AgentConfig, TINY_MODEL
from stateset_hpo.search_spaces import list_available_search_spaces as from_search_spaces


def test_space_names():
    space = get_search_space("grpo")
    assert space.get_dimension("learning_rate") is space["learning_rate"]
    with pytest.raises(KeyError, match="no dimension 'lr'"):
        space.get_dimension("lr")
    assert list_available_search_spaces() == from_search_spaces() == list_search_spaces()
    dim = SearchDimension("group_size", SearchSpaceType.CHOICE, choices=[4, 8, 16])
    assert dim.choices == [4, 8, 16] and dim.choices == (4, 8, 16) and dim.choices != [4, 8]
    assert [4, 8, 16] == dim.choices and hash(dim.choices) == hash((4, 8, 16))


def test_backend_config_is_the_chosen_backends_section(tmp_path):
    config = HPOConfig(backend="optuna", output_dir=str(tmp_path), optuna_config={"sampler": "random"})
    section = config.get_backend_config()
    assert section == config.optuna_config and section["sampler"] == "random"
    section["sampler"] = "tpe"  # a copy
    assert config.optuna_config["sampler"] == "random"


def test_results_built_positionally_and_saved(tmp_path):
    result = HPOResult("3", {"learning_rate": 1e-4}, {"eval_reward": 0.6}, 0.6, 12.5)
    assert (result.best_metric, result.training_time, result.history) == (0.6, 12.5, [])
    assert HPOResult.load(result.save(tmp_path / "trial.json")) == result
    with pytest.raises(ValueError, match="trial file .* does not exist"):
        HPOResult.load(tmp_path / "missing.json")
    pruned = HPOResult("4", {"learning_rate": 1e-2}, status=TrialStatus.PRUNED)
    summary = HPOSummary("eval_reward", "maximize", [result, pruned], total_trials=2, successful_trials=1)
    assert (summary.total_trials, summary.successful_trials) == (2, 1) == (summary.n_trials, summary.n_successful)
    with pytest.raises(ValueError, match="total_trials=3 does not match all_results, which holds 2"):
        HPOSummary("eval_reward", "maximize", [result, pruned], total_trials=3)


def test_the_stub_model_is_the_tiny_local_model():
    assert AgentConfig(use_stub_model=True).model_name == TINY_MODEL
    with pytest.raises(ValueError, match="use_stub_model=True means the tiny local model"):
        AgentConfig(use_stub_model=True, model_name="Qwen/Qwen2.5-0.5B-Instruct")
