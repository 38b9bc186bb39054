"""Shared fixtures. The tiny model is built once into the user cache (STATESET_HPO_CACHE or
~/.cache/stateset_hpo) and reused by every test and later run."""

import warnings

import pytest

warnings.filterwarnings("ignore", message=".*Non-float parameters are experimental.*")


@pytest.fixture(scope="session")
def tiny_model_path():
    from stateset_hpo.grpo import build_tiny_model

    return build_tiny_model()
