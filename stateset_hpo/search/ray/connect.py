"""Connecting a study to Ray (a local instance or a cluster), checked before the first trial.

Ray Train frees a trial's placement group through a detached cleaner on the head node that
asks Ray's State API (the dashboard) whether the trial is still alive. When that API cannot
be reached, finished trials keep their resources and the study hangs once the cluster is
full. Two ways that happens, both caught here rather than as a hang:
- no dashboard on the cluster (Ray installed without ``ray[default]``, or started with
  ``--include-dashboard=false``);
- a stale ``/tmp/ray/ray_current_cluster`` (left by a ``ray start`` cluster that was killed):
  processes that look the API up by "auto" find that dead cluster and wait for it. A local
  instance we start therefore hands its own dashboard address to every worker.

A local instance's Python components also log at WARNING, not INFO: Ray's runtime-env agent
writes every runtime environment it creates, environment variables included, to a log file
anyone on the host can read, and Tune hands the driver's AWS keys to each trial that way.
On a cluster the agent logs at INFO, so a study that joins one with AWS keys in its
environment is warned (`propagated_keys_warning`): nodes should get an instance profile or
service account instead of keys (cluster/README.md).
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Dict, Optional

# what Ray Tune copies from the driver's environment into every trial's runtime environment
# (Ray 2.60: ray/tune/execution/class_cache.py, ENV_VARS_TO_PROPAGATE)
PROPAGATED_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")
HEAD_NODE = "node:__internal_head__"  # the resource Train pins its cleaner with
STATE_API_TIMEOUT_S = 20.0
_CHECKED = set()  # clusters (GCS addresses) whose State API answered this process


@contextlib.contextmanager
def environment(values: Dict[str, str]):
    """These environment variables set for the duration (each restored after)."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_reachable(address: Optional[str], timeout_s: float = 5.0) -> None:
    """A cluster address (``host:port``, ``ray://host:port``) that nothing answers on is one
    clear error within seconds: ray.init itself retries an unreachable GCS for minutes."""
    if not address or address in ("auto", "local") or ":" not in address.split("://")[-1]:
        return
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot connect to the Ray cluster at {address!r}: {exc}; check ray_config['address'] / "
                         "RAY_ADDRESS and that the cluster is up") from None


def _free_port(preferred: int = 8265) -> int:
    """Ray's usual dashboard port when it is free, else one the OS hands out."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise OSError("no free port for the Ray dashboard")


_RAYLET_TO_CONSOLE = [True]


def show_raylet_messages(show: bool) -> None:
    """Whether the raylet's messages to this driver reach the console. They are about Ray, not
    the study (e.g. "12 PYTHON worker processes have been started ... startup concurrency",
    printed with raw ANSI colour codes even into a file) and stay in the raylet's own log
    (session_latest/logs/raylet.out). Ray has no setting for them (``log_to_driver`` covers the
    workers' output only), so the printer its listener thread calls is wrapped, once."""
    from ray._private import worker

    _RAYLET_TO_CONSOLE[0] = show
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "filters_raylet", False):  # (another Ray version: left alone)
        return

    def printer(data, *args, **kwargs):
        if data.get("pid") == "raylet" and not _RAYLET_TO_CONSOLE[0]:
            return None
        return original(data, *args, **kwargs)

    printer.filters_raylet = True
    worker.print_to_stdstream = printer


def connect(address: Optional[str], raylet_messages: bool = False, **init_kwargs) -> None:
    """ray.init for a study: the cluster at ``address``, or a new local instance with a
    dashboard whose address its workers know and quieter logs (the raylet, started here,
    passes this process's environment on to them; its messages stay off the console unless
    ``raylet_messages``)."""
    import ray

    check_reachable(address)
    show_raylet_messages(raylet_messages)
    init_kwargs = {"logging_level": "ERROR", "log_to_driver": False, **init_kwargs}
    try:
        if address:
            ray.init(address=address, **init_kwargs)
            return
        port = _free_port()
        with environment({"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}", "RAY_LOGGER_LEVEL": "warning"}):
            ray.init(address="local", include_dashboard=True, dashboard_port=port, **init_kwargs)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:  # nothing has run yet: one clear line
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise ValueError(f"cannot connect to {where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                         ) from None


def propagated_keys_warning(agent_logs_info: bool, environ=os.environ) -> Optional[str]:
    """Why the AWS keys in this driver's environment will be written to the cluster's logs, or
    None: no keys, or ``agent_logs_info`` False (the local instance `connect` starts without an
    address logs at WARNING)."""
    keys = [key for key in PROPAGATED_KEYS if environ.get(key)]
    if not agent_logs_info or not keys:
        return None
    return (f"{', '.join(keys)} {'is' if len(keys) == 1 else 'are'} set where the study's driver runs: Ray Tune copies "
            "them into every trial's runtime environment, and the cluster's runtime-env agent writes each runtime "
            "environment it creates, these keys included, in plain text to its session log "
            "(session_latest/logs/runtime_env_agent.log, also shown by the dashboard); unset them and let the nodes "
            "reach the storage through an instance profile or service account (cluster/README.md, Secrets)")


def check_state_api(timeout_s: float = STATE_API_TIMEOUT_S) -> None:
    """Ask the State API from where Train's placement-group cleaner runs (the head node, with
    its way of finding the API); one clear error if it does not answer. Once per cluster."""
    import ray

    cluster = ray.get_runtime_context().gcs_address
    if cluster in _CHECKED:
        return

    @ray.remote(num_cpus=0, resources={HEAD_NODE: 0.001}, max_retries=0)
    def ask_state_api(timeout: float) -> Optional[str]:
        from ray.util.state import list_actors

        try:
            list_actors(limit=1, timeout=timeout, raise_on_missing_output=False)
        except Exception as exc:  # any failure is the answer we report
            return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return None

    task = ask_state_api.remote(timeout_s / 2)
    try:
        failure = ray.get(task, timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        ray.cancel(task, force=True)
        failure = f"no answer in {timeout_s:g} s"
    if failure:
        raise ValueError(
            f"Ray's State API (the dashboard) does not answer on the cluster's head node ({failure}); Ray Train "
            "needs it to free finished trials' resources, so the study would hang. Start the cluster with the "
            "dashboard (pip install 'ray[default]'; ray start --head without --include-dashboard=false); if a "
            "killed cluster left /tmp/ray/ray_current_cluster on the head, delete that file; or run trials "
            "without Train workers: ray_config['execution']='direct' (--execution direct)")
    _CHECKED.add(cluster)
