"""Shared fixtures. The tiny model is built once into the user cache (STATESET_HPO_CACHE or
~/.cache/stateset_hpo) and reused by every test and later run."""

import warnings

import pytest

warnings.filterwarnings("ignore", message=".*Non-float parameters are experimental.*")


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
    """ray_local for the ray_tune case of a test parametrized over backends."""
    if "ray_tune" in request.node.name:
        request.getfixturevalue("ray_local")


@pytest.fixture(autouse=True)
def offline_wandb(monkeypatch):
    """W&B runs offline in every test; a key in the environment never reaches W&B."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
