"""Shared test helpers: a tiny trial spec, a reader for offline W&B run files, and a way to\nstop the Ray nodes a test started without touching any other Ray process on the host."""

import dataclasses
import functools
import os
import shutil
import sys
import signal
import struct
import time

import yaml
from ray import cloudpickle

from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward
from stateset_hpo.trial import TrialSpec

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this module

# A trial of 8 episodes per iteration (2 prompts x group of 4), 24 new tokens, no value head:
# seconds on a CPU. num_episodes sets the iterations (8 per iteration).
TINY = dict(num_episodes=8, per_device_train_batch_size=2, group_size=4, max_new_tokens=24,
            include_value_function=False, warmup_ratio=0.0)


def tiny_spec(**overrides) -> TrialSpec:
    return TrialSpec(environment=ConversationEnvironment("customer_service"),
                     reward=domain_reward("customer_service"), base_config=TrainingConfig(**{**TINY, **overrides}))


# One log-uniform learning rate over three decades: the space of small plumbing studies
LR_WIDE = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=1e-2, default=1e-4)])


# health_rules that leave a trial whose policy never moves (lr 1e-9) running: for tests of what
# schedulers and pruners do with it (the policy_frozen and replies_unchanged rules would stop it)
NO_FROZEN_RULES = {"kl_floor": None, "unchanged_fraction": None}


# Each backend's settings section for small, reproducible test studies
# (the search seeded with 0: see study_config)
SECTIONS = {"ray_tune": ("ray_config", {"execution": "direct", "scheduler": "fifo", "search_alg": "random"}),
            "optuna": ("optuna_config", {"sampler": "random"}),
            "wandb": ("wandb_config", {"method": "random"})}


def backends_ray_slow():
    """Every backend, the ray_tune case marked slow (an end-to-end Ray study: CI runs it, the
    inner loop does not); the in-process backends run in seconds."""
    import pytest

    from stateset_hpo.search.base import backend_names

    return [pytest.param(b, marks=pytest.mark.slow) if b == "ray_tune" else b for b in backend_names()]


def study_config(tmp_path, backend, **changes) -> HPOConfig:
    """A quiet test study on ``backend`` (one CPU per trial, no validation, no plots); a
    ``<section>=dict`` in ``changes`` is merged into the backend's test settings."""
    section, settings = SECTIONS[backend]
    settings = {**settings, **changes.pop(section, {})}
    changes = {"n_trials": 4, "output_dir": str(tmp_path / "out"), "verbose": False, "save_plots": False,
               "validation_top_k": 0, "cpu_per_trial": 1, "seed": 0, **changes}
    return HPOConfig(backend=backend, **{section: settings}, **changes)


def _boom_above(limit, metrics):
    if metrics["learning_rate"] > limit:
        raise RuntimeError(f"boom: learning_rate {metrics['learning_rate']:g} is above {limit:g}")
    return 0.0


def failing_spec(limit=2e-3, **overrides) -> TrialSpec:
    """tiny_spec whose trials with a learning rate above ``limit`` raise at their first report:
    a real trial failing mid-run (a space of invalid values is refused before any trial)."""
    spec = tiny_spec(**overrides)
    return dataclasses.replace(spec, derived_metrics={"boom": functools.partial(_boom_above, limit)})


# Fake credentials a study's environment may hold; none may reach a file, log or console.
SECRETS = {"WANDB_API_KEY": "wandb-secret-4c1f9e", "HF_TOKEN": "hf_secret7d41c0",
           "AWS_ACCESS_KEY_ID": "AKIASECRET5E2A", "AWS_SECRET_ACCESS_KEY": "aws-secret-0b93f1"}


def secrets_found(folders, texts=()):
    """(where, secret name) for every file under ``folders`` and every text holding a secret."""
    found = [(path, name) for folder in folders for path in folder.rglob("*") if path.is_file()
             for name, value in SECRETS.items() if value.encode() in path.read_bytes()]
    return found + [("output", name) for name, value in SECRETS.items() for text in texts if value in text]


def wandb_records(path):
    """The protobuf records of an offline run file (.wandb: a 7-byte header, then LevelDB-log
    framed records in 32 KiB blocks); wandb 0.31 ships no reader for it."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, chunk = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        if length == 0 and kind == 0:
            break
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(chunk)
            chunk = b""
            yield record


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def logged_history(path):
    """[per-step metrics] of one offline run file, by step."""
    steps = [{_key(i): yaml.safe_load(i.value_json) for i in record.history.item}
             for record in wandb_records(path) if record.WhichOneof("record_type") == "history"]
    return sorted(steps, key=lambda h: h["_step"])


def logged_config(path):
    for record in wandb_records(path):
        if record.WhichOneof("record_type") == "run":
            return {_key(u): yaml.safe_load(u.value_json) for u in record.run.config.update if _key(u) != "_wandb"}
    return {}


def logged_project(path):
    """The W&B project an offline run was logged to."""
    return next(record.run.project for record in wandb_records(path) if record.WhichOneof("record_type") == "run")


def stop_processes_under(temp_dir: str, grace_s: float = 30) -> None:
    """Stop every process of a Ray instance that a test started with its own ``temp_dir``:
    those whose command line names it and their descendants (Ray's agents rename themselves,
    e.g. ``ray::DashboardAgent``), each by PID; then remove the folder. Never a stop-by-name
    command, which would also hit other Ray instances on the host."""
    def ours():
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        parents = {pid: _parent(pid) for pid in pids}
        found = {pid for pid in pids if _cmdline_has(pid, temp_dir)}
        grew = True
        while grew:
            children = {pid for pid, parent in parents.items() if parent in found} - found
            grew = bool(children)
            found |= children
        return found

    left = ours()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = {pid for pid in left if _alive(pid)}
    shutil.rmtree(temp_dir, ignore_errors=True)


def _cmdline_has(pid: int, text: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return text.encode() in f.read()
    except OSError:
        return False


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except (OSError, IndexError):
        return False
