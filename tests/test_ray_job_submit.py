"""`ray job submit ... -- python -m stateset_hpo.launch ...` against a head node of our own on
loopback, stopped afterwards by the PIDs it started (no stop-by-name command, which would hit
every Ray process on the host)."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from helpers import SECRETS, secrets_found, stop_processes_under

from stateset_hpo import HPOSummary

pytestmark = pytest.mark.ray  # a head node of its own


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_dashboard(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                return
        except urllib.error.HTTPError:  # it answers (token authentication may refuse us): it is up
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"no Ray dashboard at {url}")


@pytest.mark.slow
def test_ray_job_submit_runs_a_study_on_a_head_node(tmp_path):
    ports = [free_port() for _ in range(9)]
    url = f"http://127.0.0.1:{ports[1]}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the job's `python`
    temp_dir = tempfile.mkdtemp(prefix="rjs-", dir="/tmp")  # short: Ray's socket paths have a length limit
    # Every port explicit: this host may already run another Ray node (this test session's), whose
    # agents hold Ray's default ports.
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={ports[0]}", "--dashboard-host=127.0.0.1", f"--dashboard-port={ports[1]}",
         f"--dashboard-agent-listen-port={ports[2]}", f"--dashboard-agent-grpc-port={ports[3]}",
         f"--node-manager-port={ports[4]}", f"--object-manager-port={ports[5]}",
         f"--runtime-env-agent-port={ports[6]}", f"--metrics-export-port={ports[7]}",
         f"--ray-client-server-port={ports[8]}", "--num-cpus=2", "--include-dashboard=true",
         "--disable-usage-stats", f"--temp-dir={temp_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        # secrets live in the head's environment (cluster/README.md), which the job's driver inherits
        env={**env, "WANDB_API_KEY": SECRETS["WANDB_API_KEY"], "HF_TOKEN": SECRETS["HF_TOKEN"], "WANDB_MODE": "offline"})
    try:
        wait_for_dashboard(url)
        job_dir = tmp_path / "job"
        job_dir.mkdir()
        (job_dir / "hpo.yaml").write_text(yaml.safe_dump({
            "backend": "ray_tune", "search_space_name": "conservative", "n_trials": 2, "cpu_per_trial": 1,
            "validation_top_k": 0, "log_to_wandb": True,
            "seed": 0, "ray_config": {"execution": "direct"},
            "base_training_config": {"num_episodes": 16, "group_size": 4, "per_device_train_batch_size": 2,
                                     "max_new_tokens": 16}}))
        out = tmp_path / "results"
        command = [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", url,
                   "--working-dir", str(job_dir),
                   "--", "python", "-m", "stateset_hpo.launch", "--config", "hpo.yaml", "--output-dir", str(out)]
        for attempt in range(15):  # the node's job agent may come up a little after the dashboard
            submit = subprocess.run(command, capture_output=True, text=True, timeout=420,
                                    env={**env, "RAY_AUTH_MODE": "token"})  # send ~/.ray/auth_token
            if "No available agent" not in submit.stderr:
                break
            time.sleep(2)
        logs = submit.stdout + submit.stderr
        assert submit.returncode == 0 and "succeeded" in logs, logs[-3000:]
        summary = HPOSummary.load(out / "summary.json")
        assert summary.n_trials == 2 and summary.n_successful == 2
        assert list(out.rglob("*.wandb"))  # the study logged its trials to W&B (offline)
        # the head's secrets reach no result file, none of the cluster's session logs, no job log
        assert not secrets_found([out, Path(temp_dir)], [logs])
    finally:
        stop_cluster(head, temp_dir)


def stop_cluster(head: subprocess.Popen, temp_dir: str) -> None:
    """Stop the head node this test started, and only it: its process group, then any process
    still running from its temp dir (see helpers.stop_processes_under)."""
    try:
        os.killpg(head.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    stop_processes_under(temp_dir)
