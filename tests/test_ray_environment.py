"""A Ray Train study in a Ray environment left in a bad state: a stale ray_current_cluster file
does not hang it, and a cluster without the State API is one clear error before any trial."""

import ast
import os

import pytest

pytestmark = pytest.mark.ray  # each test starts a Ray instance of its own

# A Train-worker study in its own Ray instance (RAY_TMPDIR keeps it apart from this session's).
_TRAIN_STUDY = """
import sys, time
sys.path.insert(0, {tests!r})
from helpers import tiny_spec
from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.study import run_study
{init}
# The objective is the logged learning rate, so ASHA's cutoff at its first rung decides for sure: the
# grid runs 1e-3, then 1e-4 (below the first: stopped), then 2e-3 (a trial after the stopped one).
space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.CHOICE, choices=[1e-3, 1e-4, 2e-3])])
cfg = HPOConfig(backend="ray_tune", search_space=space, n_trials=3, output_dir={out!r},
                objective_metric="learning_rate", cpu_per_trial=1, n_parallel_trials=1, verbose=False,
                save_plots=False, validation_top_k=0, seed=0, health_rules=dict(enabled=False),
                ray_config=dict(execution="train", scheduler="asha", search_alg="grid", grace_period=2,
                                reduction_factor=2))
summary = run_study(cfg, tiny_spec(num_episodes=24, per_device_train_batch_size=2))  # 3 iterations of 8
print("STATUSES", [r.status.value for r in summary.all_results])  # in trial order
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
    statuses = ast.literal_eval(done.stdout.split("STATUSES")[1].strip().splitlines()[0])
    assert statuses == ["success", "pruned", "success"], statuses  # a trial started after the one ASHA stopped


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
