"""The study's result files: replaced whole, saved as the study goes (a failed save warns and
the study goes on), spreadsheet formulas neutralised, copied to the shared storage (a failed copy
fails the job), checkpoints deleted without error when already gone."""

import os
import warnings

import pytest
from helpers import LR_WIDE

from stateset_hpo import HPOConfig, HPOResult, HPOSummary, TrialStatus
from stateset_hpo.launch import main
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec


def test_trials_csv_neutralises_spreadsheet_formulas_and_keeps_numbers(tmp_path):
    results = [HPOResult("0", {"optimizer_type": "=HYPERLINK(\"http://x\")", "learning_rate": -1.0},
                         metrics={"eval_reward": -0.5}, best_metric=-0.5, status=TrialStatus.SUCCESS),
               HPOResult("1", {"optimizer_type": "adamw", "learning_rate": 1e-3}, status=TrialStatus.FAILED,
                         error="@SUM(A1:A9) went wrong")]
    HPOSummary("eval_reward", "maximize", results).write(tmp_path)
    text = (tmp_path / "trials.csv").read_text()
    assert "'=HYPERLINK" in text and "'@SUM" in text
    assert ",-0.5," in text and ",-1.0," in text  # numbers are not text: a minus stays a minus


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    summary = HPOSummary("eval_reward", "maximize", [HPOResult("0", {"a": 1}, best_metric=0.5, metrics={"eval_reward": 0.5})])
    summary.write(tmp_path)
    before = (tmp_path / "summary.json").read_text()

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    summary.all_results.append(HPOResult("1", {"a": 2}, best_metric=0.7, metrics={"eval_reward": 0.7}))
    with pytest.raises(OSError):
        summary.write(tmp_path)
    assert (tmp_path / "summary.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json", "trials.csv"]  # no temporary files left
    assert HPOSummary.load(tmp_path / "summary.json").n_trials == 1


def test_a_failed_periodic_save_warns_and_the_study_goes_on(tmp_path, monkeypatch):
    real_write = HPOSummary.write

    def flaky(self, folder):  # the periodic saves (fewer than all trials) hit a full disk
        if len(self.all_results) < 3:
            raise OSError(28, "No space left on device")
        real_write(self, folder)

    monkeypatch.setattr(HPOSummary, "write", flaky)
    config = HPOConfig(backend="optuna", search_space=LR_WIDE, n_trials=3, checkpoint_freq=1, output_dir=str(tmp_path),
                       validation_top_k=0, save_plots=False, verbose=False, seed=0, optuna_config={"sampler": "random"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = run_study(config, TrialSpec(objective=lambda p: {"eval_reward": p["learning_rate"]}))
    assert summary.n_trials == 3 and HPOSummary.load(tmp_path / "summary.json").n_trials == 3
    assert sum("could not save the study so far" in str(w.message) for w in caught) == 2


def test_deleting_a_checkpoint_that_is_already_gone_is_no_error(tmp_path):
    from stateset_hpo.study_monitor import delete_checkpoint

    folder = tmp_path / "ckpt"
    (folder / "inner").mkdir(parents=True)
    delete_checkpoint(f"file://{folder}")
    assert not folder.exists()
    delete_checkpoint(f"file://{folder}")  # (a resumed study deleting it again, or another process first)
    delete_checkpoint(str(folder))


def test_a_checkpoint_on_cloud_storage_is_recorded_with_its_scheme():
    """Tune keeps a checkpoint's path inside its storage's filesystem (no scheme): the results
    name it as a user, and retention, can open it."""
    from types import SimpleNamespace

    import pyarrow.fs

    from stateset_hpo.search.ray.storage import checkpoint_location

    def at(filesystem, path):
        return checkpoint_location(SimpleNamespace(filesystem=filesystem, path=path))

    assert at(pyarrow.fs.S3FileSystem(anonymous=True, region="us-east-1"), "bucket/hpo/ckpt") == "s3://bucket/hpo/ckpt"
    assert at(pyarrow.fs.GcsFileSystem(anonymous=True), "bucket/hpo/ckpt") == "gs://bucket/hpo/ckpt"
    assert at(pyarrow.fs.LocalFileSystem(), "/data/hpo/ckpt") == "/data/hpo/ckpt"
    assert checkpoint_location(None) is None


def test_a_checkpoint_retention_cannot_delete_is_reported_and_kept(tmp_path):
    from stateset_hpo import HPOConfig
    from stateset_hpo.results import HPOResult, TrialStatus
    from stateset_hpo.study_monitor import StudyMonitor

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")  # (a file where a folder should be: deleting it as a folder fails)
    gone = tmp_path / "ckpt-gone"
    gone.mkdir()
    results = [HPOResult("0", {}, {"eval_reward": 0.9}, best_metric=0.9, status=TrialStatus.SUCCESS,
                         checkpoint_path=str(tmp_path / "ckpt-best")),
               HPOResult("1", {}, {"eval_reward": 0.1}, best_metric=0.1, status=TrialStatus.SUCCESS,
                         checkpoint_path=str(blocked)),
               HPOResult("2", {}, {"eval_reward": 0.2}, best_metric=0.2, status=TrialStatus.SUCCESS,
                         checkpoint_path=str(gone))]
    monitor = StudyMonitor(HPOConfig(keep_best_n=1, output_dir=str(tmp_path)), None)
    with pytest.warns(UserWarning, match="could not delete the checkpoint of trial 1") as caught:
        monitor.finish(results)
        monitor.retain(results)  # (reported once)
    assert len([w for w in caught if "could not delete" in str(w.message)]) == 1
    assert results[1].checkpoint_path == str(blocked) and blocked.exists()  # kept, and still named
    assert results[2].checkpoint_path is None and not gone.exists()


def test_a_copy_counts_as_published_only_when_every_file_arrived_whole(tmp_path):
    from stateset_hpo.shared_storage import publish_results, unpublished

    out, shared = tmp_path / "out", tmp_path / "shared"
    (out / "plots").mkdir(parents=True)
    (out / "summary.json").write_text('{"run": 2}')
    (out / "trials.csv").write_text("trial_id\n0\n")
    (out / "plots" / "history.png").write_bytes(b"png" * 10)
    assert unpublished(out, str(shared)) == ["summary.json", "trials.csv", "plots/history.png"]
    publish_results(out, str(shared))
    assert unpublished(out, str(shared)) == [] and unpublished(out, f"file://{shared}") == []
    (shared / "trials.csv").write_text("trial_id\n")  # a partial copy
    (shared / "summary.json").write_text('{"run": 1}')  # an earlier run's, the same size
    (shared / "plots" / "history.png").unlink()
    assert unpublished(out, str(shared)) == ["summary.json", "trials.csv", "plots/history.png"]


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_a_failed_copy_to_the_shared_storage_fails_the_job(tmp_path, monkeypatch, capsys):
    import stateset_hpo.shared_storage as shared_storage

    def unreachable(output_dir, destination):
        raise OSError("the bucket refused the upload")

    monkeypatch.setattr(shared_storage, "publish_results", unreachable)
    rc = main(["--space", "conservative", "--n-trials", "1", "--execution", "direct", "--set", "num_episodes=8",
               "--validation-top-k", "0", "--storage-path", str(tmp_path / "shared"), "--output-dir",
               str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "were not copied to the shared storage" in err and str(tmp_path / "out") in err


def test_a_multi_objective_study_keeps_every_pareto_checkpoint(tmp_path):
    """keep_best_n ranks by the first objective; every trial on the Pareto front keeps its
    checkpoint anyway (here the low-KL trial, second on reward), then the n best of the rest."""
    from stateset_hpo.study_monitor import StudyMonitor

    config = HPOConfig(backend="optuna", search_space=LR_WIDE, objective_metrics=["eval_reward", "kl"],
                       directions=["maximize", "minimize"], keep_best_n=1, output_dir=str(tmp_path))
    monitor = StudyMonitor(config, None)
    trials = {"0": (0.9, 0.5), "1": (0.5, 0.01), "2": (0.4, 0.6), "3": (0.3, 0.7)}  # 2 and 3: dominated by 0
    for trial_id, (reward, kl) in trials.items():
        folder = tmp_path / "checkpoints" / trial_id
        folder.mkdir(parents=True)
        monitor.on_trial_end(HPOResult(trial_id, {"learning_rate": 1e-3}, {"eval_reward": reward, "kl": kl},
                                       best_metric=reward, checkpoint_path=str(folder)))
    left = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert left == ["0", "1", "2"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_result_files_get_the_permissions_the_user_s_umask_gives(tmp_path, umask):
    import os
    import stat

    from stateset_hpo.atomic import write_atomically

    old = os.umask(umask)
    try:
        path = write_atomically(tmp_path / "summary.json", "{}")
        (tmp_path / "plain.txt").write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o666 & ~umask


@pytest.mark.slow
@pytest.mark.ray
def test_retention_deletes_checkpoints_on_an_s3_storage(tmp_path):
    """A Ray study whose storage is an S3 bucket (moto's S3 server, started here): the results
    name the kept checkpoint with its s3:// scheme, and retention (keep_best_n 1) really deletes
    the other trials' checkpoints in the bucket."""
    import json
    import subprocess
    import sys
    import tempfile

    import boto3
    from moto.server import ThreadedMotoServer

    from helpers import stop_processes_under

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    ray_tmp = tempfile.mkdtemp(prefix="rs3", dir="/tmp")  # (short: Ray's socket paths live under it)
    try:
        s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
        s3.create_bucket(Bucket="bucket")
        (tmp_path / "study.yaml").write_text("keep_best_n: 1\nvalidation_top_k: 0\n")
        env = {**os.environ, **aws, "RAY_TMPDIR": ray_tmp}
        env.pop("RAY_ADDRESS", None)
        done = subprocess.run(
            [sys.executable, "-m", "stateset_hpo.launch", "--config", str(tmp_path / "study.yaml"), "--backend",
             "ray_tune", "--execution", "direct", "--space-file", "examples/data/lr_space.yaml", "--n-trials", "3",
             "--set", "num_episodes=8", "--set", "per_device_train_batch_size=2", "--set", "group_size=4",
             "--set", "max_new_tokens=16", "--no-health-rules", "--storage-path", "s3://bucket/hpo",
             "--output-dir", str(tmp_path / "out"), "--quiet", "--seed", "0"],
            capture_output=True, text=True, timeout=400, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        trials = json.loads((tmp_path / "out" / "summary.json").read_text())["all_results"]
        kept = [t["checkpoint_path"] for t in trials if t["checkpoint_path"]]
        assert len(kept) == 1 and kept[0].startswith("s3://bucket/hpo/"), [t["checkpoint_path"] for t in trials]
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bucket", Prefix="hpo/")
                for o in page.get("Contents", [])]
        folders = {k.split("/checkpoint_")[0] + "/checkpoint_" + k.split("/checkpoint_")[1].split("/")[0]
                   for k in keys if "/checkpoint_" in k}
        assert folders == {kept[0][len("s3://bucket/"):]}, folders
    finally:
        stop_processes_under(ray_tmp)
        server.stop()
