"""Shared fixtures. The tiny model is built once into the user cache (STATESET_HPO_CACHE or
~/.cache/stateset_hpo) and reused by every test and later run."""

import os
import warnings

import pytest

warnings.filterwarnings("ignore", message=".*Non-float parameters are experimental.*")

# Ray Train's controller polls its workers every 2 s (each report reaches Tune only at a poll) and
# starts a preemption watcher actor per run (one more process, for nodes a cloud drains: none here).
# The tests' iterations last a second or two, so both cost more than the training itself: poll
# every 0.2 s and start no watcher. Set before any Ray instance starts, so its workers, and the
# clusters tests start in subprocesses, inherit them (Train also propagates them to its workers).
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
# One math thread per process: the suite runs in two xdist workers on two cores (pyproject's
# addopts), and two processes each spinning two OpenMP threads took twice the CPU time (the
# inner loop took 8 min instead of 3). Set before torch is first imported, which reads it then.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (its hook names each item by its group)
def pytest_collection_modifyitems(items):
    """Every test that starts or joins a Ray instance runs in one xdist group, so under
    ``-n 2`` (pyproject's addopts) those run one at a time, in one worker, beside the tests that
    need no Ray: two Ray instances starting at once on one host race for the dashboard's ports,
    and the session's instance (`ray_local`) must live in one process. A test is in the group
    when it is marked ``ray``, uses `ray_local`, or is the ``ray_tune`` case of a test
    parametrized over backends (`ray_if_needed`)."""
    for item in items:
        if item.get_closest_marker("ray") or "ray_local" in item.fixturenames or "ray_tune" in item.name:
            item.add_marker(pytest.mark.ray)
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture(autouse=True)
def ray_only_in_its_group(request, monkeypatch):
    """A test outside the Ray group cannot start a Ray instance, in its process or in one it
    starts: Ray's temporary folder (RAY_TMPDIR, inherited by subprocesses) is a path no one can
    create, named to say what to do. (A test that sets its own RAY_TMPDIR starts Ray on purpose:
    such tests are marked ``ray``.) A test in the group fails if xdist did not group it."""
    if not request.node.get_closest_marker("ray"):
        monkeypatch.setenv("RAY_TMPDIR", "/proc/this-test-starts-ray-mark-it-pytest.mark.ray")
    elif os.environ.get("PYTEST_XDIST_WORKER") and not request.node.nodeid.endswith("@ray"):
        pytest.fail("pytest-xdist did not put this Ray test in the 'ray' group (a pytest it does not support? "
                    "see pyproject.toml): Ray tests would run in both workers at once")


@pytest.fixture(scope="session")
def tiny_model_path():
    from stateset_hpo.grpo import build_tiny_model

    return build_tiny_model()


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for the whole session (two instances on one host break Train's
    placement-group cleaner), started the way a study starts one (with the dashboard that the
    cleaner needs, whose address its workers know); stopped at the end."""
    import ray

    from stateset_hpo.search.ray.connect import connect

    connect(None, num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture
def ray_if_needed(request):
    """ray_local for the ray_tune case of a test parametrized over backends (the case
    `pytest_collection_modifyitems` put in the Ray group)."""
    if request.node.get_closest_marker("ray"):
        request.getfixturevalue("ray_local")


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch):
    """W&B runs offline in every test; a key in the environment never reaches W&B."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
