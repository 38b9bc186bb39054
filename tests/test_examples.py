"""Every script in examples/ runs, in smoke mode (a tiny budget)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quickstart", "customer_service", "multi_domain", "custom_objective",
                                  pytest.param("distributed", marks=pytest.mark.ray), "bring_your_own_task"])
def test_example_runs_in_smoke_mode(name, tmp_path, request):
    env = {**os.environ, "WANDB_MODE": "offline"}
    if name == "distributed":  # attach to this session's Ray instance rather than start a second one
        import ray

        request.getfixturevalue("ray_local")
        env.update(RAY_ADDRESS=ray.get_runtime_context().gcs_address, RAY_AUTH_MODE="token")  # its ~/.ray/auth_token
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--smoke", "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "HPO summary" in proc.stdout or "customer_service:" in proc.stdout
    assert list(tmp_path.rglob("summary.json"))
