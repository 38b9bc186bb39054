"""Nothing lost, nothing leaked: numbers as people write them, mistyped URIs and impossible GPU
requests refused before any work, result files replaced whole, spreadsheet formulas and
database passwords kept out of what a study writes and prints."""

import json
import os
import warnings
from pathlib import Path

import pytest

from stateset_hpo import HPOConfig, HPOResult, HPOSummary, SearchDimension, SearchSpace, SearchSpaceType, TrialStatus
from stateset_hpo.launch import main
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec
from stateset_hpo.yaml_io import load_yaml

SPACE = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=1e-2, default=1e-4)])


def test_numbers_written_with_an_exponent_are_numbers_everywhere(tmp_path, capsys):
    assert load_yaml("a: 1e-5\nb: -3E+2\nc: '1e-5'\nd: e5\ne: 7") == {"a": 1e-5, "b": -300.0, "c": "1e-5", "d": "e5",
                                                                      "e": 7}
    assert main(["--space", "conservative", "--set", "learning_rate=1e-5", "--dry-run"]) == 0
    assert "'learning_rate': 1e-05" in capsys.readouterr().out
    (tmp_path / "hpo.yaml").write_text("backend: optuna\ntimeout: 3e3\nbase_training_config:\n  learning_rate: 2e-4\n")
    config = HPOConfig.from_yaml(tmp_path / "hpo.yaml")
    assert config.timeout == 3000.0 and config.base_training_config == {"learning_rate": 2e-4}
    space = SearchSpace.from_yaml("learning_rate:\n  type: loguniform\n  low: 1e-6\n  high: 1e-3\n")
    assert space["learning_rate"].low == 1e-6


@pytest.mark.parametrize("args, message", [
    (["--gpu-per-trial", "1.5"], "must be a whole number of GPUs"),
    (["--gpu-per-trial", "0.5", "--workers-per-trial", "2"], "several ranks of one trial on one GPU"),
    (["--storage-path", "s3:/bucket/hpo"], "looks like a URI missing a slash"),
    (["--backend", "optuna", "--storage", "sqlite:/hpo.db"], "write sqlite:///hpo.db (the file hpo.db here) or "
                                                              "sqlite:////hpo.db"),
])
def test_impossible_requests_exit_2_before_anything_starts(args, message, capsys):
    assert main(["--space", "conservative", *args, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_database_password_is_never_printed(capsys):
    url = "postgresql://hpo:s3cret-pw@db.internal:5432/studies"
    assert main(["--space", "conservative", "--backend", "optuna", "--storage", url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out and "postgresql://hpo:***@db.internal:5432/studies" in out
    config = HPOConfig(backend="optuna", search_space=SPACE, n_trials=1, optuna_config={"storage": url})
    with pytest.raises(ValueError) as caught:  # no such server: the error names the storage, masked
        run_study(config, TrialSpec(objective=lambda p: {"eval_reward": 1.0}))
    assert "s3cret-pw" not in str(caught.value) and "***" in str(caught.value)


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
    config = HPOConfig(backend="optuna", search_space=SPACE, n_trials=3, checkpoint_freq=1, output_dir=str(tmp_path),
                       validation_top_k=0, save_plots=False, verbose=False, seed=0, optuna_config={"sampler": "random"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = run_study(config, TrialSpec(objective=lambda p: {"eval_reward": p["learning_rate"]}))
    assert summary.n_trials == 3 and HPOSummary.load(tmp_path / "summary.json").n_trials == 3
    assert sum("could not save the study so far" in str(w.message) for w in caught) == 2


def test_resuming_an_optuna_study_finishes_its_n_trials(tmp_path):
    class StopAfterOne:
        should_stop = False

        def on_trial_end(self, result):
            self.should_stop = True

    db = f"sqlite:///{tmp_path / 'hpo.db'}"
    config = HPOConfig(backend="optuna", search_space=SPACE, n_trials=3, output_dir=str(tmp_path), validation_top_k=0,
                       save_plots=False, verbose=False, seed=0, optuna_config={"storage": db, "sampler": "random"})
    spec = TrialSpec(objective=lambda p: {"eval_reward": p["learning_rate"]})
    assert run_study(config, spec, callbacks=[StopAfterOne()]).n_trials == 1  # interrupted after one trial
    assert run_study(config, spec, resume=True).n_trials == 3  # finished: 3 in all, not 1 + 3
    assert run_study(config, spec, resume=True).n_trials == 3  # nothing left to do


def test_a_trial_left_running_by_a_killed_process_is_failed_and_run_again(tmp_path, monkeypatch):
    import time

    import optuna

    from stateset_hpo.search.optuna import storage

    monkeypatch.setattr(storage, "HEARTBEAT_S", 1)
    monkeypatch.setattr(storage, "GRACE_S", 1)
    db = f"sqlite:///{tmp_path / 'hpo.db'}"
    study = optuna.create_study(storage=storage.open_storage(db), study_name="grpo_hpo", direction="maximize")
    orphan = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True)})
    study._storage.record_heartbeat(orphan._trial_id)  # then its process dies: no more heartbeats
    time.sleep(2)
    config = HPOConfig(backend="optuna", search_space=SPACE, n_trials=3, output_dir=str(tmp_path), validation_top_k=0,
                       save_plots=False, verbose=False, seed=0, optuna_config={"storage": db, "sampler": "random"})
    summary = run_study(config, TrialSpec(objective=lambda p: {"eval_reward": p["learning_rate"]}), resume=True)
    states = {t.number: t.state for t in optuna.load_study(study_name="grpo_hpo", storage=db).trials}
    assert states[orphan.number] is optuna.trial.TrialState.FAIL  # not RUNNING forever
    rerun = [r for r in summary.all_results if r.params == orphan.params and r.status is TrialStatus.SUCCESS]
    assert rerun, "the orphaned trial was not run again"
    assert str(orphan.number) not in {r.trial_id for r in summary.all_results}  # its rerun stands for it


def test_an_interrupted_optuna_trial_runs_again_on_resume_and_counts_once(tmp_path):
    from stateset_hpo.results import StudyInterrupted

    class CtrlCInSecondTrial:
        started = []

        def on_trial_start(self, trial_id, params):
            self.started.append(params)
            if len(self.started) == 2:
                raise KeyboardInterrupt

    db = f"sqlite:///{tmp_path / 'hpo.db'}"
    config = HPOConfig(backend="optuna", search_space=SPACE, n_trials=3, output_dir=str(tmp_path), validation_top_k=0,
                       save_plots=False, verbose=False, seed=0, optuna_config={"storage": db, "sampler": "random"})
    spec = TrialSpec(objective=lambda p: {"eval_reward": p["learning_rate"]})
    with pytest.raises((StudyInterrupted, KeyboardInterrupt)):
        run_study(config, spec, callbacks=[CtrlCInSecondTrial()])
    summary = run_study(config, spec, resume=True)
    assert summary.n_trials == 3 and summary.n_successful == 3  # not 4 with one "failed"
    assert CtrlCInSecondTrial.started[1] in [r.params for r in summary.all_results]  # run again as it was


def test_an_unwritable_output_dir_fails_before_any_trial(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["--space", "conservative", "--output-dir", str(blocker / "results"), "--dry-run"]) == 2
    assert "is not a writable folder" in capsys.readouterr().err
    calls = []
    config = HPOConfig(backend="optuna", search_space=SPACE, n_trials=2, output_dir=str(blocker / "results"))
    with pytest.raises(ValueError, match="is not a writable folder"):
        run_study(config, TrialSpec(objective=lambda p: calls.append(p) or {"eval_reward": 1.0}))
    assert calls == []  # no trial ran


def test_an_unreachable_cluster_address_is_one_line_in_seconds(monkeypatch, capsys):
    import socket
    import time

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    start = time.monotonic()
    assert main(["--space", "conservative", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"cannot connect to the Ray cluster at '127.0.0.1:{port}'" in err and len(err.strip().splitlines()) == 1
    assert time.monotonic() - start < 30


def test_deleting_a_checkpoint_that_is_already_gone_is_no_error(tmp_path):
    from stateset_hpo.study_monitor import delete_checkpoint

    folder = tmp_path / "ckpt"
    (folder / "inner").mkdir(parents=True)
    delete_checkpoint(f"file://{folder}")
    assert not folder.exists()
    delete_checkpoint(f"file://{folder}")  # (a resumed study deleting it again, or another process first)
    delete_checkpoint(str(folder))


@pytest.mark.slow
def test_sigterm_stops_an_optuna_study_cleanly_and_resume_finishes_it(tmp_path):
    """`ray job stop` sends SIGTERM: exit 130 with one line saying how to continue, no
    traceback; --resume then finishes the study's n_trials."""
    import signal
    import subprocess
    import sys

    args = [sys.executable, "-m", "stateset_hpo.launch", "--backend", "optuna", "--space", "conservative",
            "--n-trials", "4", "--storage", f"sqlite:///{tmp_path / 'hpo.db'}", "--set", "num_episodes=16",
            "--validation-top-k", "0", "--output-dir", str(tmp_path / "out")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait for the first finished trial, then stop the job
        if line.startswith("[1/4]"):
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err and "Traceback" not in err
    finished = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    import optuna

    study = optuna.load_study(study_name="grpo_hpo", storage=f"sqlite:///{tmp_path / 'hpo.db'}")
    done = [t for t in study.trials if t.state.is_finished()]
    assert len(done) >= 4 and not [t for t in study.trials if t.state is optuna.trial.TrialState.RUNNING]


@pytest.mark.parametrize("metric, message", [("rewrd", "objective metric 'rewrd' is reported by no trial"),
                                             ("test_reward", "objective metric 'test_reward' is reported by no trial")])
def test_an_objective_no_trial_reports_fails_before_any_trial(metric, message, capsys):
    assert main(["--space", "conservative", "--metric", metric, "--dry-run"]) == 2
    assert message in capsys.readouterr().err
    assert main(["--space", "conservative", "--metric", "kl", "--direction", "minimize", "--dry-run"]) == 0


def test_every_choice_and_range_end_of_the_space_is_checked_before_any_trial(tmp_path, capsys):
    from helpers import tiny_spec

    bad_choice = SearchSpace([SearchDimension("max_new_tokens", SearchSpaceType.CHOICE, choices=[24, 0], default=24)])
    bad_end = SearchSpace([SearchDimension("warmup_ratio", SearchSpaceType.UNIFORM, low=0.0, high=1.5, default=0.1)])
    for space, message in [(bad_choice, "'max_new_tokens': the value 0 cannot be trained"),
                           (bad_end, "'warmup_ratio': the value 1.5 cannot be trained")]:
        config = HPOConfig(backend="optuna", search_space=space, n_trials=2, output_dir=str(tmp_path))
        with pytest.raises(ValueError, match=message):
            run_study(config, tiny_spec())
    (tmp_path / "space.yaml").write_text(bad_choice.to_yaml())
    assert main(["--space-file", str(tmp_path / "space.yaml"), "--dry-run"]) == 2
    assert "the value 0 cannot be trained" in capsys.readouterr().err


def test_a_hub_model_name_is_checked_and_the_check_says_what_it_found(monkeypatch, capsys):
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    from stateset_hpo.grpo.agent import hub_model_status

    def unknown(name, **kwargs):  # what the Hub answers for a name it does not have
        import httpx2

        request = httpx2.Request("GET", f"https://huggingface.co/api/models/{name}")
        raise RepositoryNotFoundError(f"404: {name}", response=httpx2.Response(404, request=request))

    hub_model_status.cache_clear()
    monkeypatch.setattr(huggingface_hub, "model_info", unknown)
    assert main(["--space", "conservative", "--model", "nobody/no-such-model", "--dry-run"]) == 2
    assert "neither a local path nor a model on the Hugging Face Hub" in capsys.readouterr().err
    hub_model_status.cache_clear()
    monkeypatch.setattr(huggingface_hub, "model_info", lambda name, **kwargs: object())
    assert main(["--space", "conservative", "--model", "someone/a-model", "--dry-run"]) == 0
    assert "model: someone/a-model: on the Hub (not cached: each node downloads it) (checked on" in capsys.readouterr().out
    hub_model_status.cache_clear()


def test_published_finds_the_copied_results(tmp_path):
    from stateset_hpo.shared_storage import publish_results, published

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.json").write_text("{}")
    assert not published(str(tmp_path / "shared"))
    publish_results(tmp_path / "out", str(tmp_path / "shared"))
    assert published(str(tmp_path / "shared")) and published(f"file://{tmp_path / 'shared'}")


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


def test_resuming_a_ray_study_with_other_settings_names_the_difference(tmp_path):
    from stateset_hpo.search.ray.backend import SETTINGS_FILE, check_resumable, study_settings
    from stateset_hpo.shared_storage import write_text

    experiment = str(tmp_path / "ray_results" / "grpo_hpo")
    started = HPOConfig(backend="ray_tune", search_space=SPACE, n_trials=8, ray_config={"scheduler": "asha"})
    write_text(f"{experiment}/{SETTINGS_FILE}", json.dumps(study_settings(started, SPACE)))
    check_resumable(experiment, study_settings(started, SPACE))  # the same settings: fine
    changed = started.replace(ray_config={"scheduler": "hyperband"}, n_trials=16)
    with pytest.raises(ValueError, match=r"scheduler \(was 'asha', now 'hyperband'\), .*n_trials|n_trials .*scheduler"):
        check_resumable(experiment, study_settings(changed, SPACE))
    wider = SPACE.narrow("learning_rate", low=1e-4, high=1e-2)
    with pytest.raises(ValueError, match="the search space"):
        check_resumable(experiment, study_settings(started, wider))
    check_resumable(str(tmp_path / "never_started"), study_settings(started, SPACE))  # nothing saved: Tune's own error


# A Train-worker study in its own Ray instance (RAY_TMPDIR keeps it apart from this session's).
_TRAIN_STUDY = """
import sys, time
sys.path.insert(0, {tests!r})
from helpers import tiny_spec
from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.study import run_study
{init}
space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-4, high=3e-3, default=1e-3)])
# (the sampled training reward at iteration 2, after one update, differs between learning rates, so ASHA
# stops some; the greedy held-out score of such short runs ties, and ties stop nobody)
cfg = HPOConfig(backend="ray_tune", search_space=space, n_trials=4, output_dir={out!r}, objective_metric="reward",
                cpu_per_trial=1, n_parallel_trials=1, verbose=False, save_plots=False, validation_top_k=0,
                ray_config=dict(execution="train", scheduler="asha", grace_period=2, reduction_factor=2, seed=0))
summary = run_study(cfg, tiny_spec(num_episodes=48, per_device_train_batch_size=4))  # 3 iterations of 16
print("STATUSES", sorted(r.status.value for r in summary.all_results))
"""


def _train_study(tmp_path, init="", timeout=400):
    import subprocess
    import sys
    import tempfile

    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths live under it
    os.makedirs(f"{ray_tmp}/ray")
    with open(f"{ray_tmp}/ray/ray_current_cluster", "w") as f:  # what a killed `ray start` leaves
        f.write("127.0.0.1:9\n")
    code = _TRAIN_STUDY.format(tests=os.path.dirname(__file__), out=str(tmp_path / "out"), init=init)
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_a_stale_ray_current_cluster_file_does_not_hang_a_train_study(tmp_path):
    """ASHA stops trials by ending their Train controllers, whose placement groups only Train's
    cleaner frees, through the State API; its workers used to look that API up through the
    stale file and wait for a dead cluster, so the study hung after the first pruned trial."""
    done = _train_study(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    statuses = done.stdout.split("STATUSES")[1]
    assert "pruned" in statuses and statuses.count("success") + statuses.count("pruned") == 4


@pytest.mark.slow
def test_a_cluster_without_the_state_api_is_one_clear_error_before_any_trial(tmp_path):
    import time

    start = time.monotonic()
    done = _train_study(tmp_path, init="import ray; ray.init(address='local', num_cpus=2, include_dashboard=False)",
                        timeout=200)
    assert done.returncode == 1 and "STATUSES" not in done.stdout
    assert "ValueError: Ray's State API (the dashboard) does not answer" in done.stderr, done.stderr[-3000:]
    assert time.monotonic() - start < 120
    assert not (tmp_path / "out" / "ray_results" / "grpo_hpo").exists()  # no trial started


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


def test_processes_starting_together_on_a_new_sqlite_study_all_open_it(tmp_path):
    """Each creates the database's tables; the losers of that race used to stop with
    "cannot be opened: IntegrityError: UNIQUE constraint failed: alembic_version"."""
    import subprocess
    import sys

    code = "import sys; from stateset_hpo.search.optuna.storage import open_storage; open_storage(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, f"sqlite:///{tmp_path / 'hpo.db'}"],
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), [e.splitlines()[-1] for e in errors if e]


@pytest.mark.slow
def test_the_fault_bench_finds_no_trial_lost_counted_twice_or_mislabelled(tmp_path):
    """bench/faults.py's in-process part (trial exceptions, NaN rewards, a full disk on every
    periodic save; Optuna and W&B): every fault injected, none lost, twice or mislabelled."""
    import json
    import subprocess
    import sys

    bench = Path(__file__).resolve().parents[1] / "bench" / "faults.py"
    done = subprocess.run([sys.executable, str(bench), "--only", "in-process", "--trials", "4",
                           "--record-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads((tmp_path / "faults.json").read_text())["tables"][0]["rows"]
    assert [row[0] for row in rows] == ["trial exception", "NaN reward", "full disk", "trial exception", "NaN reward"]
    assert all(row[-3:] == ["0", "0", "0"] and int(row[2]) > 0 for row in rows)