"""Nothing lost when a study stops: interrupted, killed or resumed studies finish their trials
and count each once; a resumed study with other settings is refused; processes sharing a new
SQLite study all open it; the fault bench injects every kind of fault."""

import json
from pathlib import Path

import pytest
from helpers import LR_WIDE

from stateset_hpo import HPOConfig, TrialStatus
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec


def test_resuming_an_optuna_study_finishes_its_n_trials(tmp_path):
    class StopAfterOne:
        should_stop = False

        def on_trial_end(self, result):
            self.should_stop = True

    db = f"sqlite:///{tmp_path / 'hpo.db'}"
    config = HPOConfig(backend="optuna", search_space=LR_WIDE, n_trials=3, output_dir=str(tmp_path), validation_top_k=0,
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
    config = HPOConfig(backend="optuna", search_space=LR_WIDE, n_trials=3, output_dir=str(tmp_path), validation_top_k=0,
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
    config = HPOConfig(backend="optuna", search_space=LR_WIDE, n_trials=3, output_dir=str(tmp_path), validation_top_k=0,
                       save_plots=False, verbose=False, seed=0, optuna_config={"storage": db, "sampler": "random"})
    spec = TrialSpec(objective=lambda p: {"eval_reward": p["learning_rate"]})
    with pytest.raises((StudyInterrupted, KeyboardInterrupt)):
        run_study(config, spec, callbacks=[CtrlCInSecondTrial()])
    summary = run_study(config, spec, resume=True)
    assert summary.n_trials == 3 and summary.n_successful == 3  # not 4 with one "failed"
    assert CtrlCInSecondTrial.started[1] in [r.params for r in summary.all_results]  # run again as it was


@pytest.mark.slow
@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_sigterm_stops_an_optuna_study_cleanly_and_resume_finishes_it(tmp_path, sigint):
    """`ray job stop` sends SIGTERM: exit 130 with one line saying how to continue, no
    traceback; --resume then finishes the study's n_trials. Also when the process started with
    SIGINT ignored (``cmd &`` in a non-interactive script), where a SIGTERM turned into SIGINT
    would be ignored too."""
    import signal
    import subprocess
    import sys

    args = [sys.executable, "-m", "stateset_hpo.launch", "--backend", "optuna", "--space", "conservative",
            "--n-trials", "4", "--storage", f"sqlite:///{tmp_path / 'hpo.db'}", "--set", "num_episodes=16",
            "--validation-top-k", "0", "--output-dir", str(tmp_path / "out")]
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint == "ignored" else None
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ignore)
    for line in proc.stdout:  # wait for the first finished trial, then stop the job
        if line.startswith("[1/4]"):
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err and "Traceback" not in err
    if sigint == "ignored":  # (what resume does after a stop is the same either way: checked once)
        return
    finished = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    import optuna

    study = optuna.load_study(study_name="grpo_hpo", storage=f"sqlite:///{tmp_path / 'hpo.db'}")
    done = [t for t in study.trials if t.state.is_finished()]
    assert len(done) >= 4 and not [t for t in study.trials if t.state is optuna.trial.TrialState.RUNNING]


def test_resuming_a_ray_study_with_other_settings_names_the_difference(tmp_path):
    from stateset_hpo.search.ray.resume import SETTINGS_FILE, check_resumable, study_settings
    from stateset_hpo.shared_storage import write_text

    experiment = str(tmp_path / "ray_results" / "grpo_hpo")
    started = HPOConfig(backend="ray_tune", search_space=LR_WIDE, n_trials=8, ray_config={"scheduler": "asha"})
    write_text(f"{experiment}/{SETTINGS_FILE}", json.dumps(study_settings(started, LR_WIDE)))
    check_resumable(experiment, study_settings(started, LR_WIDE))  # the same settings: fine
    changed = started.replace(ray_config={"scheduler": "hyperband"}, n_trials=16)
    with pytest.raises(ValueError, match=r"scheduler \(was 'asha', now 'hyperband'\), .*n_trials|n_trials .*scheduler"):
        check_resumable(experiment, study_settings(changed, LR_WIDE))
    wider = LR_WIDE.narrow("learning_rate", low=1e-4, high=1e-2)
    with pytest.raises(ValueError, match="the search space"):
        check_resumable(experiment, study_settings(started, wider))
    check_resumable(str(tmp_path / "never_started"), study_settings(started, LR_WIDE))  # nothing saved: Tune's own error


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
