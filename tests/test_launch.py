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
    (["--search-alg", "ax"], "invalid choice: 'ax'"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--backend", "optuna", "--scheduler", "asha"], "--scheduler applies to --backend ray_tune, not optuna"),
    (["--sampler", "tpe"], "--sampler applies to --backend optuna, not ray_tune"),
    (["--backend", "wandb", "--seed", "1"], "--seed applies to --backend optuna or ray_tune"),
    (["--gpu-per-trial", "-1"], "gpu_per_trial must be a number >= 0"),
    (["--config", "/no/such/hpo.yaml"], "config file '/no/such/hpo.yaml' does not exist"),
    (["--space", "grpo", "--space-file", "x.yaml"], "--space or --space-file"),
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
    space.write_text("lr: {type: loguniform, low: 1.0e-6, high: 1.0e-3}\nbs: {type: choice, choices: [2, 4]}\n")
    assert main(["--space-file", str(space), "--backend", "wandb", "--model", "gpt2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "space=custom (2 dimensions)" in out and "'model_name': 'gpt2'" in out
    assert "W&B sweep parameters (bayes): 2" in out
    space.write_text("lr: {type: loguniform, low: 0, high: 1}\n")
    assert main(["--space-file", str(space), "--dry-run"]) == 2
    assert "needs low > 0" in capsys.readouterr().err


def test_grid_search_alg_reports_the_grid_size(capsys):
    assert main(["--space", "conservative", "--search-alg", "grid", "--dry-run"]) == 0
    assert "Ray Tune grid: 81 points" in capsys.readouterr().out


def test_running_without_dry_run_says_what_is_missing(capsys):
    assert main(["--space", "grpo", "--backend", "optuna"]) == 1
    assert "not implemented yet" in capsys.readouterr().err
