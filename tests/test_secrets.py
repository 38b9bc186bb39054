"""Nothing leaked: a database password and the W&B / Hugging Face keys never reach what a study
prints or writes."""

import os
from pathlib import Path

import pytest
from helpers import LR_WIDE

from stateset_hpo import HPOConfig
from stateset_hpo.launch import main
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec


def test_a_database_password_is_never_printed(capsys):
    url = "postgresql://hpo:s3cret-pw@db.internal:5432/studies"
    assert main(["--space", "conservative", "--backend", "optuna", "--storage", url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out and "postgresql://hpo:***@db.internal:5432/studies" in out
    config = HPOConfig(backend="optuna", search_space=LR_WIDE, n_trials=1, optuna_config={"storage": url})
    with pytest.raises(ValueError) as caught:  # no such server: the error names the storage, masked
        run_study(config, TrialSpec(objective=lambda p: {"eval_reward": 1.0}))
    assert "s3cret-pw" not in str(caught.value) and "***" in str(caught.value)



@pytest.mark.parametrize("location, kept", [
    ("s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/hpo", "s3://AKIAEXAMPLE:***@bucket/hpo"),
    ("postgresql://hpo:s3cret-pw@db/studies?sslmode=require&password=s3cret-pw",
     "postgresql://hpo:***@db/studies?sslmode=require&password=***"),
    ("gs://bucket/hpo?token=ya29.s3cret-pw&x=1", "gs://bucket/hpo?token=***&x=1"),
    ("/shared/hpo", "/shared/hpo"),
])
def test_secrets_inside_a_location_are_masked(location, kept):
    from stateset_hpo.masking import masked

    assert masked(location) == kept


def test_no_secret_in_a_storage_path_or_a_mistyped_url_is_echoed(capsys):
    assert main(["--space", "conservative", "--storage-path", "s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/hpo",
                 "--dry-run"]) == 0
    assert "wJalrXUtnFEMI" not in capsys.readouterr().out
    assert main(["--space", "conservative", "--backend", "optuna", "--storage", "postgresql:/hpo:s3cret-pw@db/studies",
                 "--dry-run"]) == 2  # one slash: a mistyped URL, refused without echoing its password
    err = capsys.readouterr().err
    assert "s3cret-pw" not in err and "missing a slash" in err

@pytest.mark.slow
@pytest.mark.ray
def test_no_secret_reaches_any_file_or_log_of_a_study_that_logs_to_wandb(tmp_path):
    """The CLI on the Ray backend with Train workers and W&B logging (offline), secrets in its
    environment: none reaches output_dir (summary, trials.csv, report, Tune's folders, the W&B
    run files), Ray's session logs, or the console."""
    import subprocess
    import sys
    import tempfile

    from helpers import SECRETS, secrets_found

    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # this study's Ray session logs, and only its
    (tmp_path / "hpo.yaml").write_text("backend: ray_tune\nlog_to_wandb: true\n")
    args = [sys.executable, "-m", "stateset_hpo.launch", "--config", str(tmp_path / "hpo.yaml"),
            "--space", "conservative", "--n-trials", "1", "--n-parallel-trials", "1", "--execution", "train",
            "--scheduler", "fifo", "--cpu-per-trial", "1", "--seed", "0", "--validation-top-k", "0",
            "--output-dir", str(tmp_path / "out"), "--set", "num_episodes=16", "--set", "group_size=4",
            "--set", "per_device_train_batch_size=2", "--set", "max_new_tokens=16"]
    env = {**os.environ, **SECRETS, "WANDB_MODE": "offline", "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert list((tmp_path / "out").rglob("*.wandb")) and list(Path(ray_tmp).rglob("*.log"))  # searched for real
    assert not secrets_found([tmp_path / "out", Path(ray_tmp)], [done.stdout, done.stderr])
