"""Faults injected into real studies on the tiny model, and what the study's record says after.

For each kind of fault: how many were injected, and in the study's final record (summary.json,
or the Optuna database) how many trials were lost (planned or started, never recorded, or left
RUNNING), counted twice (a trial id twice, an iteration twice in a history, a failed run and
its rerun both counted), or given a wrong status. All of the last three must be 0.

  trial exception    a trial raises at its first report (Optuna and W&B backends)
  NaN reward         the reward function returns NaN in a trial (Optuna and W&B backends)
  full disk          every periodic save of the results fails with ENOSPC (Optuna backend)
  killed worker      the Train worker of each trial is killed (SIGKILL) at iteration 2 (Ray)
  driver stopped     SIGTERM (what `ray job stop` sends) after the first trial, then --resume
                     (the CLI, Ray and Optuna backends)
  killed process     one of two processes on a shared SQLite study is killed (SIGKILL)
                     mid-trial (heartbeat shortened to 1 s, grace to 2 s, so it runs in seconds)
  SIGINT ignored     the driver-stopped fault on a CLI started with SIGINT ignored (what `cmd &`
                     in a script does): SIGTERM must still stop it, resumable (Optuna backend)
  Pareto retention   keep_best_n 1 on a study of two objectives (reward up, KL down): every
                     trial on the Pareto front keeps its checkpoint (Optuna backend)
  object-store       keep_best_n 1 on a Ray study whose storage is an S3 bucket (moto's S3
  retention          server, started here): the kept checkpoint is in the bucket, the others deleted
  partial shared     the copy of the results to the shared storage cut short (trials.csv
  copy               truncated) and, in a second study, never made over an earlier run's
                     copy: the CLI must exit non-zero naming what is missing, not call it published

For the retention rows, "wrong status" counts a checkpoint kept that retention should have
deleted (a leak) or a recorded checkpoint path with nothing there; for the shared copy, a
copy called published although a file is missing or stale.

    python bench/faults.py            # about 4 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from harness import RESULTS, Record  # noqa: E402
from stateset_hpo import HPOConfig, HPOSummary, SearchDimension, SearchSpace, SearchSpaceType, TrialStatus  # noqa: E402
from stateset_hpo.grpo import CompositeReward, ConversationEnvironment, TrainingConfig, domain_reward  # noqa: E402
from stateset_hpo.study import run_study  # noqa: E402
from stateset_hpo.trial import TrialSpec  # noqa: E402

TINY = dict(num_episodes=16, per_device_train_batch_size=2, group_size=4, max_new_tokens=16,
            include_value_function=False, warmup_ratio=0.0)
LR = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=3e-3, default=1e-3)])
CLI_BUDGET = ["--set", "num_episodes=16", "--set", "group_size=4", "--set", "per_device_train_batch_size=2",
              "--set", "max_new_tokens=16", "--validation-top-k", "0", "--space", "conservative", "--seed", "0"]
Row = Tuple[str, str, int, int, int, int]  # kind, where, injected, lost, twice, wrong


def tally(summary: HPOSummary, expected: Dict[str, TrialStatus]) -> Tuple[int, int, int]:
    """(lost, twice, wrong) of a study's record against what each trial should be."""
    ids = [r.trial_id for r in summary.all_results]
    twice = len(ids) - len(set(ids)) + sum(
        len(r.history) != len({h["iteration"] for h in r.history}) for r in summary.all_results)
    lost = len(set(expected) - set(ids))
    wrong = sum(r.status is not expected[r.trial_id] for r in summary.all_results if r.trial_id in expected)
    return lost, twice, wrong


# -- in-process faults: a schedule decides, as each trial starts, which fault it gets ----------------
ARMED = {"fault": None}


class FaultSchedule:
    """A study callback: trial 1, 4, 7, ... raise at their first report, trial 2, 5, 8, ... get
    NaN rewards, the others run clean (they run in this process, so a flag is enough)."""

    def __init__(self) -> None:
        self.plan: Dict[str, str] = {}

    def on_trial_start(self, trial_id, params):
        ARMED["fault"] = ("none", "exception", "nan")[len(self.plan) % 3]
        self.plan[trial_id] = ARMED["fault"]


class NaNWhenArmed:
    name = "fault"

    def __call__(self, ctx) -> float:
        return math.nan if ARMED["fault"] == "nan" else 0.0


def raise_when_armed(metrics) -> float:
    if ARMED["fault"] == "exception":
        raise RuntimeError("injected fault")
    return 0.0


def in_process_faults(backend: str, n: int, folder: Path) -> List[Row]:
    schedule = FaultSchedule()
    reward = CompositeReward([*domain_reward("customer_service").components, (NaNWhenArmed(), 0.01)])
    spec = TrialSpec(environment=ConversationEnvironment("customer_service"), reward=reward,
                     base_config=TrainingConfig(**TINY), derived_metrics={"fault_check": raise_when_armed})
    full_disk = [0]
    real_write = HPOSummary.write

    def write(self, out):  # every save before the study's last one meets a full disk
        if len(self.all_results) < n:
            full_disk[0] += 1
            raise OSError(28, "No space left on device")
        real_write(self, out)

    config = HPOConfig(backend=backend, search_space=LR, n_trials=n, output_dir=str(folder), checkpoint_freq=1,
                       validation_top_k=0, save_plots=False, verbose=False,
                       seed=0, optuna_config={"sampler": "random", "pruner": "none"},
                       wandb_config={"method": "random"})
    HPOSummary.write = write if backend == "optuna" else real_write
    try:
        os.environ["WANDB_MODE"] = "offline"
        run_study(config, spec, callbacks=[schedule])
    finally:
        HPOSummary.write = real_write
        ARMED["fault"] = None
    summary = HPOSummary.load(folder / "summary.json")  # the record on disk
    errors = {r.trial_id: r.error or "" for r in summary.all_results}
    rows = []
    for kind, fault, says in (("trial exception", "exception", "injected fault"),
                              ("NaN reward", "nan", "non-finite reward")):
        hit = {t: TrialStatus.FAILED for t, f in schedule.plan.items() if f == fault}
        lost, twice, wrong = tally(summary, hit)
        wrong += sum(t in errors and says not in errors[t] for t in hit)  # failed, but not for this fault
        rows.append((kind, backend, len(hit), lost, twice, wrong))
    if backend == "optuna":  # the whole study against its plan, written after every save failed
        expected = {t: TrialStatus.SUCCESS if f == "none" else TrialStatus.FAILED for t, f in schedule.plan.items()}
        lost, twice, wrong = tally(summary, expected)
        rows.append(("full disk", backend, full_disk[0], lost + n - len(expected), twice, wrong))
    return rows


# -- Ray: a killed Train worker ------------------------------------------------------------------
def killed_workers(n: int, folder: Path) -> Row:
    import ray
    from ray.util.state import list_actors

    from stateset_hpo.search.ray.connect import connect

    killed: Dict[str, List[int]] = {}
    restarted = set()

    def alive():
        return [a.pid for a in list_actors(address=ray.get_runtime_context().gcs_address,
                                           filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])]

    class KillAtIteration2:
        def on_trial_result(self, trial_id, metrics):
            if metrics["iteration"] == 2 and trial_id not in killed:
                killed[trial_id] = alive()
                for pid in killed[trial_id]:
                    os.kill(pid, signal.SIGKILL)
            elif metrics["iteration"] == 3 and trial_id in killed and not set(alive()) & set(killed[trial_id]):
                restarted.add(trial_id)  # a new worker process reported

    spec = TrialSpec(environment=ConversationEnvironment("customer_service"), reward=domain_reward("customer_service"),
                     base_config=TrainingConfig(**{**TINY, "num_episodes": 32}))
    config = HPOConfig(backend="ray_tune", search_space=LR, n_trials=n, output_dir=str(folder), cpu_per_trial=1,
                       n_parallel_trials=1, validation_top_k=0, save_plots=False, verbose=False,
                       seed=0, ray_config={"execution": "train", "scheduler": "fifo", "search_alg": "random",
                                           "max_failures": 1})
    connect(None, num_cpus=2)
    try:
        run_study(config, spec, callbacks=[KillAtIteration2()])
    finally:
        ray.shutdown()
    summary = HPOSummary.load(folder / "summary.json")
    lost, twice, wrong = tally(summary, {r.trial_id: TrialStatus.SUCCESS for r in summary.all_results})
    lost += n - len(summary.all_results)
    twice += sum(r.history[-1]["iteration"] != 4 for r in summary.all_results)  # rows of a run that was redone
    wrong += len(killed) - len(restarted)  # a kill that restarted nothing
    return "killed worker", "ray_tune train", sum(len(p) for p in killed.values()), lost, twice, wrong


# -- the CLI stopped with SIGTERM after its first trial, then resumed -------------------------------
def driver_stopped(backend: str, n: int, folder: Path, sigint_ignored: bool = False) -> Row:
    args = [sys.executable, "-m", "stateset_hpo.launch", "--backend", backend, "--n-trials", str(n),
            "--output-dir", str(folder), *CLI_BUDGET]
    args += (["--storage", f"sqlite:///{folder}/hpo.db", "--pruner", "none"] if backend == "optuna" else
             ["--execution", "direct", "--scheduler", "fifo", "--n-parallel-trials", "1", "--cpu-per-trial", "1"])
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=ignore)
    for line in proc.stdout:
        if line.startswith(f"[1/{n}]"):
            proc.send_signal(signal.SIGTERM)
            break
    try:
        proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:  # SIGTERM did not stop it: only SIGKILL does, losing its resume state
        proc.kill()
        proc.communicate()
    stopped = proc.returncode == 130
    resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True, env=env, timeout=600)
    summary = HPOSummary.load(folder / "summary.json") if resumed.returncode == 0 else HPOSummary("eval_reward", "maximize", [])
    expected = {r.trial_id: TrialStatus.SUCCESS for r in summary.all_results}  # no fault of the trials' own
    lost, twice, wrong = tally(summary, expected)
    kind = "driver stopped, SIGINT ignored" if sigint_ignored else "driver stopped"
    return kind, backend, int(stopped), lost + n - len(summary.all_results), twice, wrong


# -- checkpoint retention ---------------------------------------------------------------------------
def pareto_retention(n: int, folder: Path) -> Row:
    """keep_best_n 1 with two objectives: the front keeps every checkpoint, the rest beyond the best go."""
    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=1e-2,
                                         default=1e-3)])
    spec = TrialSpec(environment=ConversationEnvironment("customer_service"), reward=domain_reward("customer_service"),
                     base_config=TrainingConfig(**TINY))
    config = HPOConfig(backend="optuna", search_space=space, n_trials=n, output_dir=str(folder), keep_best_n=1,
                       objective_metrics=["eval_reward", "kl"], directions=["maximize", "minimize"],
                       validation_top_k=0, save_plots=False, verbose=False, seed=0,
                       optuna_config={"sampler": "random", "pruner": "none"})
    summary = run_study(config, spec)
    front = set(summary.pareto_front)
    kept = {r.trial_id for r in summary.all_results if r.checkpoint_path and Path(r.checkpoint_path).is_dir()}
    on_disk = {p.name for p in (folder / "checkpoints").iterdir()} if (folder / "checkpoints").is_dir() else set()
    lost = len(front - kept)
    best_rest = {r.trial_id for r in summary.ranked() if r.trial_id not in front}
    allowed = front | set(list(best_rest)[:1])  # (ranked: the best of the rest first)
    wrong = len(on_disk - allowed) + sum(bool(r.checkpoint_path) and not Path(r.checkpoint_path).is_dir()
                                         for r in summary.all_results)
    # injected: the front's trials beyond keep_best_n, whose checkpoints a first-objective ranking would delete
    return "Pareto retention", "optuna 2 objectives", len(front) - 1, lost, 0, wrong


def cli_after(code: str) -> List[str]:
    """The command that runs the CLI in a process of its own after ``code`` (a fault's set-up:
    a copy cut short, a shorter heartbeat); its arguments follow."""
    return [sys.executable, "-c", f"import sys\n{code}\nfrom stateset_hpo.launch import main; sys.exit(main(sys.argv[1:]))"]


def _cli(args: List[str], env: Dict[str, str], code: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([*cli_after(code), *args], capture_output=True, text=True, env=env, timeout=600,
                          cwd=str(ROOT))


RAY_CLI = ["--backend", "ray_tune", "--execution", "direct", "--space-file", "examples/data/lr_space.yaml",
           "--set", "num_episodes=8", "--set", "per_device_train_batch_size=2", "--set", "group_size=4",
           "--set", "max_new_tokens=16", "--no-health-rules", "--validation-top-k", "0", "--quiet", "--seed", "0"]


def object_store_retention(n: int, folder: Path) -> Row:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # (a line per request otherwise)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    try:
        s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
        s3.create_bucket(Bucket="bucket")
        folder.mkdir(parents=True)
        (folder / "study.yaml").write_text("keep_best_n: 1\n")
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        done = _cli(["--config", str(folder / "study.yaml"), *RAY_CLI, "--n-trials", str(n), "--storage-path",
                     "s3://bucket/hpo", "--output-dir", str(folder / "out")], {**env, **aws})
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bucket", Prefix="hpo/")
                for o in page.get("Contents", [])]
    finally:
        server.stop()
    if done.returncode != 0:
        print(done.stderr[-2000:])
        return "object-store retention", "ray_tune s3 (moto)", max(0, n - 1), n, 0, 0
    trials = HPOSummary.load(folder / "out" / "summary.json").all_results
    recorded = {r.checkpoint_path[len("s3://bucket/"):] for r in trials if r.checkpoint_path}
    in_bucket = {k.split("/checkpoint_")[0] + "/checkpoint_" + k.split("/checkpoint_")[1].split("/")[0]
                 for k in keys if "/checkpoint_" in k}
    lost = (1 - len(recorded)) + len(recorded - in_bucket)  # the best one kept, there
    return "object-store retention", "ray_tune s3 (moto)", max(0, n - 1), max(0, lost), 0, len(in_bucket - recorded)


CUT_SHORT = """
from stateset_hpo import shared_storage
copy = shared_storage.publish_results
def cut_short(output_dir, destination):  # the copy dies while writing trials.csv: half of it arrives
    names = copy(output_dir, destination)
    target = destination.rstrip('/') + '/trials.csv'
    shared_storage.write_text(target, shared_storage.read_text(target)[:40])
    return names
shared_storage.publish_results = cut_short
"""
NEVER_COPIED = """
from stateset_hpo import shared_storage
def unreachable(output_dir, destination):
    raise OSError('the storage stopped answering')
shared_storage.publish_results = unreachable
"""


def partial_shared_copy(folder: Path) -> Row:
    """A copy cut short, and a copy never made over an earlier run's: each must be a non-zero exit
    naming what is missing (the results stay in output_dir), never a study called published."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    shared = folder / "shared"
    lost = wrong = 0
    for attempt, (code, missing) in enumerate(((CUT_SHORT, "trials.csv"), (NEVER_COPIED, "summary.json"))):
        out = folder / f"out{attempt}"
        done = _cli([*RAY_CLI, "--n-trials", "1", "--storage-path", str(shared), "--study-name", "s",
                     "--output-dir", str(out)], env, code=code)
        told = done.returncode != 0 and missing in done.stderr and "not copied" in done.stderr
        wrong += not told
        lost += not (out / "summary.json").is_file()  # the results must stay where the study wrote them
        if not told:
            print(done.returncode, done.stderr[-1500:])
    return "partial shared copy", "ray_tune shared storage", 2, lost, 0, wrong


# -- one of two processes on a shared SQLite study killed mid-trial ---------------------------------
SHORT_HEARTBEAT = "from stateset_hpo.search.optuna import storage; storage.HEARTBEAT_S = 1; storage.GRACE_S = 2"


def killed_process(n: int, folder: Path) -> Row:
    folder.mkdir(parents=True)
    db = folder / "hpo.db"
    args = ["--backend", "optuna", "--n-trials", str(n), "--storage", f"sqlite:///{db}", "--pruner", "none",
            *CLI_BUDGET]
    logs = [open(folder / f"p{i}.log", "w") for i in range(2)]  # (stderr: Optuna's lines, for a look after)
    procs = [subprocess.Popen([*cli_after(SHORT_HEARTBEAT), *args, "--output-dir", str(folder / f"p{i}")],
                              stdout=subprocess.PIPE, stderr=logs[i], text=True) for i in range(2)]
    victim = procs[1]
    for line in victim.stdout:  # after its first trial, wait until it is inside its second
        if line.startswith("["):
            time.sleep(1.5)
            victim.kill()
            break
    victim.wait()
    survivor_out = procs[0].communicate(timeout=900)[0]
    for log in logs:
        log.close()
    rows = sqlite3.connect(str(db)).execute(
        "SELECT t.number, t.state, (SELECT value_json FROM trial_system_attributes a WHERE a.trial_id = t.trial_id "
        "AND a.key = 'failed_trial') FROM trials t").fetchall()
    states = {number: state for number, state, _ in rows}
    retried_from = {int(origin) for _, _, origin in rows if origin is not None}
    orphans = {number for number, state in states.items() if state == "FAIL"}
    lost = sum(state == "RUNNING" for state in states.values()) + len(orphans - retried_from)
    # the record the survivor wrote: each orphan replaced by its rerun, never counted as well
    summary = HPOSummary.load(folder / "p0" / "summary.json") if procs[0].returncode == 0 else None
    twice = len(orphans & {int(r.trial_id) for r in summary.all_results}) if summary else 0
    wrong = 0 if summary and all(r.status is TrialStatus.SUCCESS for r in summary.all_results) else 1
    if summary is None:
        print(survivor_out[-2000:])
    return "killed process", "optuna sqlite x2", len(orphans), lost, twice, wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="trials per in-process study (default 6)")
    parser.add_argument("--only", choices=["in-process", "ray", "cli", "processes", "retention", "shared"],
                        default=None)
    parser.add_argument("--record-dir", type=Path, default=None,
                        help="where the record goes (default bench/results; a run with --only keeps its record "
                             "in a temporary folder unless this is given)")
    args = parser.parse_args()
    rows: List[Row] = []
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.only in (None, "in-process"):
            for backend in ("optuna", "wandb"):
                rows += in_process_faults(backend, args.trials, tmp / f"inproc-{backend}")
        if args.only in (None, "ray"):
            rows.append(killed_workers(2, tmp / "workers"))
        if args.only in (None, "cli"):
            rows += [driver_stopped(backend, 3, tmp / f"stopped-{backend}") for backend in ("ray_tune", "optuna")]
        if args.only in (None, "processes"):
            rows.append(killed_process(10, tmp / "processes"))
        if args.only in (None, "cli"):
            rows.append(driver_stopped("optuna", 3, tmp / "stopped-sigint-ignored", sigint_ignored=True))
        if args.only in (None, "retention"):
            rows.append(pareto_retention(5, tmp / "pareto"))
            rows.append(object_store_retention(3, tmp / "s3"))
        if args.only in (None, "shared"):
            rows.append(partial_shared_copy(tmp / "shared"))
    record = Record("faults", "Faults injected into real studies on the tiny model, and what each study's own record "
                    "says afterwards: trials lost, counted twice, or given a wrong status",
                    {"trials": args.trials, "only": args.only})
    record.table("Faults injected and what the study's record kept", ["fault", "where", "injected", "lost",
                                                                      "counted twice", "wrong status"], rows)
    record.goal("trials lost + counted twice + wrongly labelled, over every fault", sum(r[3] + r[4] + r[5] for r in rows),
                0, at_least=False, digits=0)
    record.goal("fault kinds x backends where the fault was really injected (of {})".format(len(rows)),
                sum(r[2] > 0 for r in rows), len(rows), digits=0)
    record.note(f"{sum(r[2] for r in rows)} faults injected over {len(rows)} fault kinds x backends in "
                f"{time.monotonic() - start:.0f} s.")
    folder = args.record_dir or (RESULTS if args.only is None else Path(tempfile.mkdtemp()))
    return record.finish(folder)


if __name__ == "__main__":
    sys.exit(main())
