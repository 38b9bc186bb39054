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


@pytest.mark.slow
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
            "--space", "conservative", "--n-trials", "2", "--n-parallel-trials", "1", "--execution", "train",
            "--scheduler", "fifo", "--cpu-per-trial", "1", "--seed", "0", "--validation-top-k", "0",
            "--output-dir", str(tmp_path / "out"), "--set", "num_episodes=16", "--set", "group_size=4",
            "--set", "per_device_train_batch_size=2", "--set", "max_new_tokens=16"]
    env = {**os.environ, **SECRETS, "WANDB_MODE": "offline", "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert list((tmp_path / "out").rglob("*.wandb")) and list(Path(ray_tmp).rglob("*.log"))  # searched for real
    assert not secrets_found([tmp_path / "out", Path(ray_tmp)], [done.stdout, done.stderr])
