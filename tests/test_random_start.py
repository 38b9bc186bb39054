"""A model-based searcher's random start fits the study's size: a quarter of the trials the study
expects (at least 2, at most the library's own number) unless the user sets n_startup_trials, on
the Optuna backend and Ray's searchers."""

import math

import pytest

from helpers import study_config

from stateset_hpo import SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.grpo import TrainingConfig
from stateset_hpo.launch import main
from stateset_hpo.search.random_start import random_start
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec

SPACE = SearchSpace([
    SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=1e-2, default=1e-4),
    SearchDimension("kl_penalty_coef", SearchSpaceType.LOGUNIFORM, low=1e-3, high=0.1, default=0.01)])


def score(params):
    lr, kl = math.log10(params["learning_rate"]), math.log10(params["kl_penalty_coef"])
    return {"score": -(lr + 3) ** 2 - (kl + 1.5) ** 2}


def optuna_study(tmp_path, name, n_trials, **optuna_config):
    return study_config(tmp_path / name, "optuna", n_trials=n_trials, search_space=SPACE, objective_metric="score",
                        optuna_config={"sampler": "tpe", "pruner": "none", **optuna_config})


@pytest.mark.parametrize("n_trials, expected", [(4, 2), (8, 2), (12, 3), (20, 5), (39, 10), (200, 10)])
def test_a_quarter_of_the_trials_at_least_2_at_most_optunas_10(tmp_path, n_trials, expected):
    config = optuna_study(tmp_path, "q", n_trials)
    assert random_start(config, TrialSpec(objective=score), SPACE) == expected


def test_an_episode_budget_counts_the_full_trials_it_holds(tmp_path):
    """A study capped by episodes (n_trials only an upper bound, as when a scheduler stops trials
    early) expects as many trials as the budget holds at full length: 768 / 64 = 12."""
    spec = TrialSpec(base_config=TrainingConfig(num_episodes=64, per_device_train_batch_size=2, group_size=4))
    config = optuna_study(tmp_path, "b", 96).replace(budget={"episodes": 768})
    assert random_start(config, spec, SPACE) == 3
    assert random_start(config.replace(budget=None), spec, SPACE) == 10


@pytest.mark.parametrize("search_alg, n_trials, expected", [("hyperopt", 12, 3), ("hyperopt", 200, 20),
                                                           ("ax", 12, 3), ("ax", 200, 5), ("optuna", 200, 10)])
def test_never_more_than_the_librarys_own_number(tmp_path, search_alg, n_trials, expected):
    """A large study starts as the library would (Ray's HyperOpt 20, Ax 5, Optuna 10)."""
    config = study_config(tmp_path, "ray_tune", n_trials=n_trials, search_space=SPACE, objective_metric="score",
                          ray_config={"search_alg": search_alg}, optuna_config={"sampler": "tpe"})
    assert random_start(config, TrialSpec(objective=score), SPACE) == expected


def test_the_users_number_is_kept(tmp_path):
    spec = TrialSpec(objective=score)
    assert random_start(optuna_study(tmp_path, "a", 12, n_startup_trials=7), spec, SPACE) == 7
    assert random_start(optuna_study(tmp_path, "b", 12, n_startup_trials=0), spec, SPACE) == 0


def test_a_small_optuna_study_models_after_its_random_start(tmp_path):
    """Unset, an 8-trial TPE study proposes what TPE with 2 random trials does, not what Optuna's
    default of 10 would (8 random trials: no model at all)."""
    def proposals(name, **optuna_config):
        return [r.params for r in run_study(optuna_study(tmp_path, name, 8, **optuna_config),
                                            TrialSpec(objective=score)).all_results]

    chosen = proposals("auto")
    assert chosen == proposals("two", n_startup_trials=2)
    assert chosen[3:] != proposals("ten", n_startup_trials=10)[3:]


@pytest.mark.parametrize("search_alg, library", [("hyperopt", 20), ("ax", 5)])
def test_rays_searchers_model_after_the_random_start_they_are_given(tmp_path, search_alg, library):
    """Ray's HyperOpt searcher samples 20 trials at random by default, Ax 5 (Sobol)."""
    from stateset_hpo.search.ray.searchers import build_search

    config = study_config(tmp_path, "ray_tune", n_trials=12, search_space=SPACE, objective_metric="score",
                          ray_config={"search_alg": search_alg})

    def proposals(start):
        searcher, param_space, _ = build_search(config, SPACE, "score", "max", start)
        searcher.set_search_properties("score", "max", param_space)
        got = []
        for i in range(4):
            got.append(searcher.suggest(str(i)))
            searcher.on_trial_complete(str(i), {"score": score(got[-1])["score"]})
        return got

    assert proposals(2) == proposals(2)  # (seeded)
    assert proposals(2)[2:] != proposals(library)[2:]


@pytest.mark.parametrize("argv, line", [
    (["--backend", "optuna", "--n-trials", "12"], "Optuna's tpe sampler proposes its first 3 trials at random"),
    (["--backend", "optuna", "--n-trials", "12", "--n-startup-trials", "5"],
     "Optuna's tpe sampler proposes its first 5 trials at random"),
    (["--backend", "ray_tune", "--search-alg", "hyperopt", "--n-trials", "20"],
     "HyperOpt proposes its first 5 trials at random"),
    (["--backend", "ray_tune", "--search-alg", "hyperopt", "--n-trials", "200"],
     "HyperOpt proposes its first 20 trials at random"),
    (["--backend", "optuna", "--sampler", "random", "--n-trials", "12"], None),
])
def test_the_start_line_says_how_many_trials_are_random(tmp_path, capsys, argv, line):
    assert main([*argv, "--space", "grpo", "--output-dir", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert (line in out) if line else ("at random" not in out)


def test_a_random_start_for_a_searcher_without_one_is_refused_or_said(tmp_path, capsys):
    """The flag is an error where nothing would use it; the same key in a config file (full
    dumps carry every key) is said on the start line, not silently dropped."""
    argv = ["--space", "grpo", "--output-dir", str(tmp_path), "--dry-run", "--n-startup-trials", "3"]
    assert main(["--backend", "optuna", "--sampler", "random", *argv]) == 2
    assert main(["--backend", "ray_tune", "--search-alg", "bohb", "--scheduler", "bohb", *argv]) == 2
    assert "has none" in capsys.readouterr().err
    (tmp_path / "hpo.yaml").write_text("backend: optuna\noptuna_config:\n  sampler: random\n  n_startup_trials: 3\n")
    assert main(["--config", str(tmp_path / "hpo.yaml"), "--space", "grpo", "--output-dir", str(tmp_path),
                 "--dry-run"]) == 0
    assert "n_startup_trials']=3 is not used" in capsys.readouterr().out


def test_a_gp_study_that_models_early_warns_of_no_missing_package(tmp_path, capfd, caplog):
    """Modelling after 2 trials, Optuna's GP sampler optimises its acquisition; without greenlet
    (a dependency since then) it falls back to one-by-one L-BFGS-B and says so on every proposal."""
    summary = run_study(optuna_study(tmp_path, "gp", 4, sampler="gp"), TrialSpec(objective=score))
    assert summary.n_successful == 4
    assert "greenlet" not in capfd.readouterr().err + caplog.text
