"""HPOConfig: every field validated on construction, profiles, YAML loading."""

import pytest

from stateset_hpo import HPOConfig, SearchSpace, get_hpo_config, get_search_space
from stateset_hpo import SearchDimension as D
from stateset_hpo import SearchSpaceType as T


def test_defaults_follow_the_guide_and_fill_backend_sections():
    c = HPOConfig()
    assert (c.backend, c.search_space_name, c.n_trials, c.objective_metric, c.direction) == \
        ("optuna", "grpo", 100, "eval_reward", "maximize")  # held-out selection score, not the sampled reward
    assert (c.checkpoint_freq, c.keep_best_n, c.early_stopping_patience) == (10, 5, None)
    assert c.optuna_config["sampler"] == "tpe" and c.optuna_config["pruner"] == "median"
    assert c.ray_config["scheduler"] == "asha" and c.wandb_config["method"] == "bayes"
    assert c.resolve_search_space() == get_search_space("grpo")


def test_guide_example_settings_are_accepted_and_kept():
    c = HPOConfig(backend="ray_tune", search_space_name="full", n_trials=200, n_parallel_trials=8,
                  ray_config={"scheduler": "asha", "search_alg": "bayesopt", "max_concurrent": 8})
    assert c.ray_config["search_alg"] == "bayesopt" and c.max_concurrent_trials == 8
    o = HPOConfig(optuna_config={"sampler": "tpe", "pruner": "median", "n_startup_trials": 10,
                                 "n_warmup_steps": 5, "storage": "sqlite:///optuna.db", "study_name": "my_study"})
    assert o.optuna_config["storage"] == "sqlite:///optuna.db"
    assert o.study_name == o.resolved_study_name == "my_study" and "study_name" not in o.optuna_config


def test_a_given_space_wins_over_the_name():
    space = SearchSpace([D("lr", T.LOGUNIFORM, low=1e-5, high=1e-3)])
    assert HPOConfig(search_space=space).resolve_search_space() is space
    assert HPOConfig(search_space=space.to_dict()).resolve_search_space() == space


@pytest.mark.parametrize("kwargs, message", [
    (dict(backend="ray"), "HPOConfig.backend unknown value 'ray'; valid values: optuna, ray_tune, wandb"),
    (dict(search_space_name="nope"), "unknown search space 'nope'"),
    (dict(search_space=SearchSpace([])), "is empty"),
    (dict(search_space=[1, 2]), "must be a SearchSpace"),
    (dict(n_trials=0), "HPOConfig.n_trials must be an integer >= 1"),
    (dict(n_trials=2.5), "n_trials must be an integer"),
    (dict(n_trials=True), "n_trials must be an integer"),
    (dict(timeout=-1), "HPOConfig.timeout must be a number > 0"),
    (dict(direction="up"), "HPOConfig.direction unknown value 'up'"),
    (dict(objective_metric=""), "objective_metric must be a non-empty string"),
    (dict(n_parallel_trials=0), "n_parallel_trials"),
    (dict(gpu_per_trial=-0.5), "HPOConfig.gpu_per_trial must be a number >= 0"),
    (dict(cpu_per_trial=0), "HPOConfig.cpu_per_trial must be a number > 0"),
    (dict(cpu_per_trial=-2), "cpu_per_trial"),
    (dict(keep_best_n=0), "keep_best_n"),
    (dict(checkpoint_freq=-1), "checkpoint_freq"),
    (dict(early_stopping_patience=0), "early_stopping_patience"),
    (dict(verbose="yes"), "HPOConfig.verbose must be True or False"),
    (dict(output_dir=""), "output_dir must be a path"),
    (dict(optuna_config={"sampler": "bogus"}), "optuna_config['sampler'] unknown value 'bogus'; valid values: tpe"),
    (dict(optuna_config={"pruner": "asha"}), "optuna_config['pruner'] unknown value 'asha'"),
    (dict(optuna_config={"samplr": "tpe"}), "optuna_config: unknown keys ['samplr']"),
    (dict(optuna_config={"n_warmup_steps": -1}), "n_warmup_steps"),
    (dict(optuna_config={"percentile": 150}), "percentile"),
    (dict(optuna_config="tpe"), "optuna_config must be a mapping"),
    (dict(ray_config={"scheduler": "pbt2"}), "ray_config['scheduler'] unknown value 'pbt2'"),
    (dict(ray_config={"search_alg": "nevergrad"}), "ray_config['search_alg'] unknown value 'nevergrad'"),
    (dict(ray_config={"max_concurrent": 0}), "max_concurrent"),
    (dict(ray_config={"workers_per_trial": 0}), "workers_per_trial"),
    (dict(ray_config={"schedular": "asha"}), "ray_config: unknown keys ['schedular']"),
    (dict(wandb_config={"method": "hyperband"}), "wandb_config['method'] unknown value 'hyperband'"),
    (dict(wandb_config={"early_terminate": {"type": "envelope"}}), "early_terminate"),
    (dict(wandb_config={"early_terminate": {"min_iter": 3}}), "needs a 'type'"),
    (dict(wandb_config={"early_terminate": {"type": "hyperband", "eta": 1}}), "eta"),
    (dict(study_name="a", optuna_config={"study_name": "b"}), "differ"),
    (dict(n_parallel_trials=4, ray_config={"max_concurrent": 8}), "differ"),
    (dict(optuna_config={"seed": 0}), "optuna_config['seed'] is a setting every backend shares: set HPOConfig.seed"),
    (dict(ray_config={"grid_points": 2}), "ray_config['grid_points'] is a setting every backend shares"),
    (dict(wandb_config={"grid_points": 2}), "set HPOConfig.grid_points (--grid-points)"),
    (dict(seed=-1), "HPOConfig.seed"),
    (dict(seed=2**32), "HPOConfig.seed must be an integer from 0 to 4294967295 or None"),
    (dict(study_name="../../escape"), "HPOConfig.study_name must be a plain name"),
    (dict(study_name="/abs/name"), "HPOConfig.study_name must be a plain name"),
    (dict(optuna_config={"study_name": ".."}), "HPOConfig.study_name must be a plain name"),
    (dict(grid_points=1), "HPOConfig.grid_points"),
    (dict(dashboard_storage="sqlite:/dash.db"), "HPOConfig.dashboard_storage 'sqlite:/dash.db' looks like a database URL"),
])
def test_invalid_settings_raise_one_clear_error(kwargs, message):
    with pytest.raises(ValueError) as info:
        HPOConfig(**kwargs)
    assert message in str(info.value)


def test_w_and_b_early_terminate_is_accepted():
    c = HPOConfig(backend="wandb", wandb_config={"method": "random",
                                                  "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 3}})
    assert c.wandb_config["early_terminate"] == {"type": "hyperband", "min_iter": 2, "eta": 3}


def test_construction_touches_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    HPOConfig(output_dir="results/here")
    get_hpo_config("distributed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("profile, expected", [
    ("conservative", ("optuna", "conservative", 50, "tpe", "median")),
    ("aggressive", ("optuna", "aggressive", 100, "tpe", "hyperband")),
    ("quick", ("optuna", "grpo", 20, "random", "median")),
])
def test_optuna_profiles(profile, expected):
    c = get_hpo_config(profile)
    assert (c.backend, c.search_space_name, c.n_trials, c.optuna_config["sampler"], c.optuna_config["pruner"]) == expected


def test_distributed_profile_and_fresh_copies():
    c = get_hpo_config("distributed")
    assert (c.backend, c.search_space_name, c.n_trials, c.n_parallel_trials) == ("ray_tune", "full", 200, 8)
    assert c.ray_config["scheduler"] == "asha" and c.ray_config["max_concurrent"] == 8
    c.ray_config["scheduler"] = "pbt"
    c.n_trials = 3
    again = get_hpo_config("distributed")
    assert again.ray_config["scheduler"] == "asha" and again.n_trials == 200


def test_profile_overrides_merge_into_the_profile_sections():
    c = get_hpo_config("quick", n_trials=5, optuna_config={"pruner": "none"}, seed=7)
    assert c.n_trials == 5 and c.optuna_config["sampler"] == "random" and c.optuna_config["pruner"] == "none"
    assert c.seed == 7
    with pytest.raises(ValueError, match="unknown HPO profile 'fast'; valid profiles: conservative"):
        get_hpo_config("fast")


def test_yaml_round_trip_and_loading(tmp_path):
    original = HPOConfig(backend="ray_tune", search_space=get_search_space("conservative"), n_trials=7,
                         ray_config={"scheduler": "hyperband"}, base_training_config={"model_name": "gpt2"})
    path = tmp_path / "hpo.yaml"
    path.write_text(original.to_yaml())
    loaded = HPOConfig.from_yaml(path)
    assert loaded == original


@pytest.mark.parametrize("text, message", [
    ("backend: optuna\nn_trails: 3\n", "unknown HPOConfig keys ['n_trails']"),
    ("backend: [unclosed\n", "is not readable YAML"),
    ("- 1\n- 2\n", "must be a mapping"),
    ("ray_config: {scheduler: nope}\n", "ray_config['scheduler']"),
])
def test_bad_yaml_files_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        HPOConfig.from_yaml(path)
    assert "bad.yaml" in str(info.value) and message in str(info.value)


def test_missing_yaml_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        HPOConfig.from_yaml(tmp_path / "missing.yaml")


def test_replace_revalidates():
    with pytest.raises(ValueError, match="n_trials"):
        HPOConfig().replace(n_trials=-3)


def test_resources_auto_and_feasibility_against_the_cluster():
    from stateset_hpo.search.ray.backend import resolve_resources

    laptop = {"CPU": 2.0}
    assert resolve_resources(HPOConfig(backend="ray_tune"), "train", laptop) == (1.0, 0.0)
    assert resolve_resources(HPOConfig(backend="ray_tune"), "direct", {"CPU": 16.0, "GPU": 2.0}) == (4.0, 1.0)
    with pytest.raises(ValueError, match="needs 1.1 CPUs and 1 GPUs .* has 2 CPUs and 0 GPUs"):
        resolve_resources(HPOConfig(backend="ray_tune", gpu_per_trial=1), "train", laptop)
    # an autoscaling cluster starts GPU nodes on demand: not an error, but no "auto" either
    scaling = HPOConfig(backend="ray_tune", gpu_per_trial=1, cpu_per_trial=4, ray_config={"autoscaling": True})
    assert resolve_resources(scaling, "train", {"CPU": 2.0}) == (4.0, 1.0)
    with pytest.raises(ValueError, match="needs gpu_per_trial and cpu_per_trial set explicitly"):
        HPOConfig(backend="ray_tune", gpu_per_trial=1, ray_config={"autoscaling": True})
