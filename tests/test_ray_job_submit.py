"""`ray job submit ... -- python -m stateset_hpo.launch ...` against a head node of our own on
loopback, stopped afterwards by the process that started it (never `ray stop`)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from stateset_hpo import HPOSummary

SECRET = "wandb-secret-9d2b7a"

HEAD = """
import sys, ray
ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1",
         dashboard_port=int(sys.argv[1]), _node_ip_address="127.0.0.1", logging_level="ERROR")
print("ready", flush=True)
sys.stdin.read()  # until the test closes our stdin
ray.shutdown()    # stops every process of this cluster, and only those
"""


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
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the job's `python`
    head = subprocess.Popen([sys.executable, "-c", HEAD, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert head.stdout.readline().strip() == "ready"
        wait_for_dashboard(url)
        job_dir = tmp_path / "job"
        job_dir.mkdir()
        (job_dir / "hpo.yaml").write_text(yaml.safe_dump({
            "backend": "ray_tune", "search_space_name": "conservative", "n_trials": 2, "cpu_per_trial": 1,
            "ray_config": {"execution": "direct", "seed": 0},
            "base_training_config": {"num_episodes": 16, "group_size": 4, "per_device_train_batch_size": 2,
                                     "max_new_tokens": 16}}))
        out = tmp_path / "results"
        command = [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", url,
                   "--working-dir", str(job_dir),
                   "--runtime-env-json", json.dumps({"env_vars": {"WANDB_API_KEY": SECRET}}),
                   "--", "python", "-m", "stateset_hpo.launch", "--config", "hpo.yaml", "--output-dir", str(out)]
        for attempt in range(30):  # the node's job agent may come up a little after the dashboard
            submit = subprocess.run(command, capture_output=True, text=True, timeout=420,
                                    env={**env, "RAY_AUTH_MODE": "token"})  # send ~/.ray/auth_token
            if "No available agent" not in submit.stderr:
                break
            time.sleep(2)
        logs = submit.stdout + submit.stderr
        assert submit.returncode == 0 and "succeeded" in logs, logs[-3000:]
        summary = HPOSummary.load(out / "summary.json")
        assert summary.n_trials == 2 and summary.n_successful == 2
        for path in out.rglob("*"):  # the key given to the job reaches no result file or log
            assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
        assert SECRET not in logs
    finally:
        head.stdin.close()
        head.wait(timeout=120)
