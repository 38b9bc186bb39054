"""The launch CLI: flags and config files merge into a validated study; bad input exits 2
with one line, before anything heavy starts."""

import subprocess
import sys

import pytest

from stateset_hpo.launch import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "stateset_hpo.launch", *args],
                          capture_output=True, text=True, timeout=120)


def test_dry_run_validates_and_compiles_the_study():
    proc = run_cli("--space", "full", "--backend", "ray_tune", "--scheduler", "asha", "--search-alg", "bayesopt",
                   "--n-trials", "8", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "space=full (26 dimensions)" in proc.stdout
    assert "scheduler=asha search_alg=bayesopt" in proc.stdout
    assert "bayes_opt bounds: 26" in proc.stdout
    assert "no trial was started" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--space", "fulll"], "unknown search space 'fulll'; valid names: grpo"),
    (["--n-trials", "0"], "n_trials must be an integer >= 1"),
    (["--n-trials", "many"], "invalid int value: 'many'"),
    (["--scheduler", "pbt2"], "invalid choice: 'pbt2'"),
    (["--search-alg", "nevergrad"], "invalid choice: 'nevergrad'"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--backend", "optuna", "--scheduler", "asha"], "--scheduler applies to --backend ray_tune, not optuna"),
    (["--pruner", "median"], "--pruner applies to --backend optuna, not ray_tune"),
    (["--backend", "wandb", "--sampler", "tpe"], "--sampler applies to --backend optuna or ray_tune, not wandb"),
    (["--search-alg", "random", "--sampler", "gp"], "--sampler picks the sampler of ray_tune's optuna search"),
    (["--grid-points", "1"], "HPOConfig.grid_points must be an integer >= 2"),
    (["--save-every", "0"], "HPOConfig.checkpoint_freq must be an integer >= 1"),
    (["--no-health-rules", "--health", "kl_max=2"], "--no-health-rules turns every health rule off, and --health sets kl_max"),
    (["--kl-budget", "0.1", "--constraint", "kl<=0.05"], "--constraint kl<=0.05 and --kl-budget 0.1 set the max of kl"),
    (["--backend", "wandb", "--seed", "-1"], "HPOConfig.seed must be an integer from 0 to 4294967295"),
    (["--gpu-per-trial", "-1"], "gpu_per_trial must be a number >= 0"),
    (["--config", "/no/such/hpo.yaml"], "config file '/no/such/hpo.yaml' does not exist"),
    (["--space", "grpo", "--space-file", "x.yaml"], "--space or --space-file"),
    (["--storage-path", "ftp://host/hpo"], "URI scheme 'ftp' is not one Ray Tune can write to"),
    (["--autoscaling", "--gpu-per-trial", "1"], "needs gpu_per_trial and cpu_per_trial set explicitly"),
    (["--backend", "optuna", "--storage-path", "/x"], "--storage-path applies to --backend ray_tune, not optuna"),
    (["--max-failures", "-1"], "ray_config['max_failures'] must be an integer >= 0"),
])
def test_bad_input_exits_2_with_one_line(capsys, args, message):
    assert main([*args, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_bad_flag_exits_2_before_ray_is_imported():
    proc = subprocess.run([sys.executable, "-c",
                           "import sys; from stateset_hpo.launch import main; rc = main(['--space', 'x']); "
                           "print('ray' in sys.modules); sys.exit(rc)"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout.strip() == "False"


def test_config_file_then_flags_override(tmp_path, capsys):
    config = tmp_path / "hpo.yaml"
    config.write_text("backend: optuna\nsearch_space_name: conservative\nn_trials: 9\n"
                      "optuna_config: {sampler: random}\n")
    assert main(["--config", str(config), "--pruner", "hyperband", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "backend=optuna space=conservative (4 dimensions) n_trials=9" in out
    assert "sampler=random pruner=hyperband" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("optuna_config: {sampler: nope}\n")
    assert main(["--config", str(bad), "--dry-run"]) == 2
    assert "bad.yaml" in capsys.readouterr().err


def test_space_file_and_model_flag(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: loguniform, low: 1.0e-6, high: 1.0e-3}\n"
                     "per_device_train_batch_size: {type: choice, choices: [2, 4]}\n")
    assert main(["--space-file", str(space), "--backend", "wandb", "--model", "gpt2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "space=custom (2 dimensions)" in out and "'model_name': 'gpt2'" in out
    assert "W&B sweep parameters (bayes): 2" in out
    space.write_text("lr: {type: loguniform, low: 0, high: 1}\n")
    assert main(["--space-file", str(space), "--dry-run"]) == 2
    assert "needs low > 0" in capsys.readouterr().err
    space.write_text("lr: {type: loguniform, low: 1.0e-6, high: 1.0e-3}\n")  # a dry run checks names too
    assert main(["--space-file", str(space), "--dry-run"]) == 2
    assert "['lr'] map to nothing" in capsys.readouterr().err


def test_grid_search_alg_reports_the_grid_size(capsys):
    assert main(["--space", "conservative", "--search-alg", "grid", "--dry-run"]) == 0
    assert "Ray Tune grid: 81 points" in capsys.readouterr().out


def test_a_small_wandb_sweep_from_the_command_line(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main(["--space", "conservative", "--backend", "wandb", "--sweep-method", "random", "--n-trials", "2",
                 "--set", "num_episodes=8", "--set", "group_size=4", "--set", "per_device_train_batch_size=2",
                 "--set", "max_new_tokens=16", "--validation-top-k", "0", "--output-dir", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "wandb: method=random" in out and "trials: 2  success: 2" in out
    assert (tmp_path / "sweep.yaml").is_file() and (tmp_path / "summary.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["--set", "learning_rat=1e-4"], "['learning_rat'] map to nothing"),
    (["--set", "num_episodes"], "--set takes KEY=VALUE"),
    (["--model", "/no/such/model"], "does not exist"),
    (["--space", "conservative", "--set", "learning_rate=1e-5", "--set", "kl_penalty_coef=0.1",
      "--set", "gamma=0.99", "--set", "max_grad_norm=1"], "nothing to search"),
    (["--set", "eval_detail_level=verbose"], "eval_detail_level must be one of"),
    (["--set", "num_iterations=2"], "lora_dropout must be 0 when num_iterations > 1"),
])
@pytest.mark.parametrize("dry_run", [False, True])  # a dry run makes the same checks
def test_bad_fixed_values_exit_2_before_ray(capsys, args, message, dry_run):
    assert main([*args, *(["--dry-run"] if dry_run else [])]) == 2
    assert message in capsys.readouterr().err


def test_set_removes_the_dimension_from_the_search(capsys):
    assert main(["--space", "aggressive", "--set", "temperature=0.9", "--set", "num_episodes=64", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "space=custom (3 dimensions)" in out and "'temperature': 0.9" in out and "'num_episodes': 64" in out


def test_a_space_that_would_move_the_yardstick_or_search_an_inert_clip_is_refused(tmp_path, capsys):
    from stateset_hpo import SearchDimension, SearchSpace, SearchSpaceType

    for name, dim, message in [
        ("eval", SearchDimension("eval_max_new_tokens", SearchSpaceType.CHOICE, choices=[16, 32]), "evaluation protocol"),
        ("clip", SearchDimension("clip_range", SearchSpaceType.UNIFORM, low=0.1, high=0.3), "no effect with num_iterations=1"),
    ]:
        path = tmp_path / f"{name}.yaml"
        path.write_text(SearchSpace([dim]).to_yaml())
        assert main(["--space-file", str(path), "--output-dir", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err
    # the evaluation protocol is set once per study, with --set
    assert main(["--space", "conservative", "--set", "eval_max_new_tokens=32", "--dry-run"]) == 0
    assert main(["--space", "conservative", "--set", "num_iterations=2", "--output-dir", str(tmp_path)]) == 2
    assert "lora_dropout must be 0 when num_iterations > 1" in capsys.readouterr().err


def test_a_domain_space_trains_on_its_domain_against_its_reward():
    from stateset_hpo import HPOConfig
    from stateset_hpo.grpo.rewards import DOMAIN_REWARDS
    from stateset_hpo.study import spec_from_config

    spec = spec_from_config(HPOConfig(search_space_name="sales_assistant"))
    assert spec.environment.domains == ["sales_assistant"] and spec.reward.weights == DOMAIN_REWARDS["sales_assistant"]
    assert spec_from_config(HPOConfig(search_space_name="grpo")).environment.domains == sorted(DOMAIN_REWARDS)
