"""Several trials in one worker process, on one loaded base model (``trials_per_worker`` k).

Tune gives every trial a process of its own, so k trials on one GPU (fractional
``gpu_per_trial``) hold k copies of the base model. Here the study starts trial hosts instead:
Ray actors with one worker's resources (``cpu_per_trial``, ``gpu_per_trial``) that each train
up to k trials at once in threads, and every LoRA trial in a host trains on the same loaded
weights (grpo/model_pool.py): k trials cost one base model plus k adapters. Each Tune trial
is a light process that takes a free slot on a host, has the host train its trial, and hands
every report to Tune, so searchers, schedulers, checkpoints and PBT work as for any direct
trial. The trials of a host take turns, an iteration at a time, each with its own RNG streams
(torch's generator is process-wide, so threads computing at once would draw from one stream
and a trial's result would depend on its neighbours' timing): a packed trial trains exactly as
it would alone. Turns cost little: a trial already uses all of its host's CPU threads, and
kernels from threads sharing a GPU queue up on its one default stream anyway.
The host waits after each report until Tune has taken it, so a scheduler's stop lands
before the next iteration trains; a stopped trial is cancelled at its next report, and one
whose Tune process died is noticed and cancelled too. Checkpoints travel as bytes (a LoRA
trial's are small: adapter, optimizer state, history), so hosts and trials may be on
different nodes. A host that dies is restarted by Ray; its trials fail and are retried as
``max_failures`` allows.
"""

from __future__ import annotations

import math
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import ray

from ...trial import TrialSpec

LIVENESS_S = 30.0  # how often a host asks whether a waiting trial's Tune process is still there
TRIAL_PROCESS = {"memory": 64 * 2 ** 20}  # Tune needs a non-empty bundle; the host holds the CPUs/GPUs


def pack(folder: Optional[str]) -> Optional[Dict[str, bytes]]:
    """A checkpoint folder as {relative path: bytes}."""
    if folder is None:
        return None
    root = Path(folder)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def unpack(files: Dict[str, bytes], folder: str) -> str:
    for name, data in files.items():
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


class _HostedTrial:
    """One trial training in a host thread, handing its reports over one at a time."""

    def __init__(self, spec: TrialSpec, params: Dict[str, Any], restore: Optional[Dict[str, bytes]],
                 checkpoint_every: Optional[int], caller, cpus: float, turn: threading.Lock,
                 liveness_s: float) -> None:
        self.spec, self.params, self.restore, self.every, self.caller = spec, params, restore, checkpoint_every, caller
        self.cpus = cpus
        self.turn = turn  # held while this trial computes
        self.liveness_s = liveness_s
        self.changed = threading.Condition()
        self.items: List[Tuple[str, Any]] = []  # ("report", (metrics, files)) / ("done", None) / ("error", exc)
        self.handed = self.taken = 0  # reports handed to the Tune process, and taken by Tune
        self.cancelled = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from ray import tune

        from .trainable import run_reporting

        def send(metrics, folder) -> bool:
            files = pack(folder)
            streams = rng_state()
            self.turn.release()  # another trial's turn while Tune takes this report
            try:
                return self._hand_over(("report", (metrics, files)))
            finally:
                self.turn.acquire()
                set_rng_state(streams)

        try:
            with self.turn, tempfile.TemporaryDirectory() as folder:
                restore = tune.Checkpoint.from_directory(unpack(self.restore, folder)) if self.restore else None
                run_reporting(self.spec, self.params, self.cpus, self.every, send, restore)
            self._push(("done", None))
        except BaseException as exc:  # handed to the Tune process, which fails the trial with it
            self._push(("error", exc))

    def _push(self, item) -> int:
        with self.changed:
            self.items.append(item)
            self.changed.notify_all()
            return self.handed + len(self.items)

    def _hand_over(self, item) -> bool:
        """Queue a report and wait until Tune has taken it; True when the trial is to stop."""
        number = self._push(item)
        while True:
            with self.changed:
                if self.cancelled or self.taken >= number:
                    return self.cancelled
                if self.changed.wait(self.liveness_s):
                    continue
            if not _alive(self.caller):  # its Tune process is gone (a lost node, a killed actor)
                self.cancel()

    @property
    def over(self) -> bool:
        """Its thread has ended and the Tune process took its last item (or went away)."""
        return not self.thread.is_alive() and (not self.items or self.cancelled)

    def next(self, timeout: float) -> Tuple[str, Any]:
        """The next item for the Tune process (("wait", None) after ``timeout``); calling it
        again says the previous report reached Tune."""
        with self.changed:
            self.taken = self.handed
            self.changed.notify_all()
            if not self.changed.wait_for(lambda: self.items, timeout):
                return "wait", None
            self.handed += 1
            return self.items.pop(0)

    def cancel(self) -> None:
        with self.changed:
            self.cancelled = True
            self.changed.notify_all()


def rng_state():
    import torch

    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None


def set_rng_state(state) -> None:
    import torch

    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def _alive(actor) -> bool:
    try:
        ray.get(actor.__ray_ready__.remote(), timeout=10)
        return True
    except ray.exceptions.GetTimeoutError:
        return True  # busy, not gone
    except ray.exceptions.RayError:
        return False


class TrialHost:
    """A worker process that trains up to ``slots`` trials at once (a Ray actor)."""

    def __init__(self, cpus: float, slots: int, liveness_s: float = LIVENESS_S) -> None:
        self.cpus, self.slots, self.liveness_s = cpus, slots, liveness_s
        self.specs: Dict[str, TrialSpec] = {}  # fetched on first use, so a restarted host fetches it again
        self.trials: Dict[str, _HostedTrial] = {}
        self.lock = threading.Lock()
        self.turn = threading.Lock()

    def start(self, key: str, spec: List[Any], params: Dict[str, Any], restore: Optional[List[Any]],
              checkpoint_every: Optional[int], caller) -> bool:
        """Start a trial if a slot is free (a slot frees when its trial's thread ends). ``spec``
        is [the TrialSpec's object ref], ``restore`` [a packed checkpoint's ref] or None (in a
        list, so Ray passes the ref and the host fetches the object only when it takes the trial)."""
        with self.lock:
            self.trials = {k: t for k, t in self.trials.items() if not t.over}
            if sum(t.thread.is_alive() for t in self.trials.values()) >= self.slots:
                return False
            if spec[0].hex() not in self.specs:
                self.specs[spec[0].hex()] = ray.get(spec[0])
            self.trials[key] = _HostedTrial(self.specs[spec[0].hex()], params, ray.get(restore[0]) if restore else None,
                                            checkpoint_every, caller, self.cpus, self.turn, self.liveness_s)
            self.trials[key].thread.start()
            return True

    def next(self, key: str, timeout: float = 30.0) -> Tuple[str, Any]:
        kind, payload = self.trials[key].next(timeout)
        if kind == "error":
            raise payload
        return kind, payload

    def cancel(self, key: str) -> None:
        trial = self.trials.get(key)
        if trial is not None:
            trial.cancel()


class Hosts(NamedTuple):
    actors: List[Any]
    spec: Any  # the TrialSpec's object ref; hosts fetch it (not a constructor argument, which
    # Ray would warn could be lost for a restart)


def start_hosts(spec: TrialSpec, concurrent: int, slots: int, cpus: float, gpus: float,
                liveness_s: float = LIVENESS_S) -> Hosts:
    """Enough hosts for ``concurrent`` trials at ``slots`` per host."""
    actor = ray.remote(TrialHost).options(num_cpus=cpus, num_gpus=gpus, max_concurrency=2 * slots + 2,
                                          max_restarts=-1)
    return Hosts([actor.remote(cpus, slots, liveness_s) for _ in range(math.ceil(concurrent / slots))],
                 ray.put(spec))


def stop_hosts(hosts: Optional[Hosts]) -> None:
    for host in hosts.actors if hosts else ():
        ray.kill(host)


def packed_trial(params: Dict[str, Any], hosts: Hosts, checkpoint_every: Optional[int]) -> None:
    """Tune function trainable body: the trial trains on a host; this process reports it."""
    from ray import tune

    key = f"{tune.get_context().get_trial_id()}-{uuid.uuid4().hex[:8]}"  # a retried trial is a new key
    restored = tune.get_checkpoint()
    restore = None
    if restored is not None:  # in the object store once, not sent again with every try for a slot
        with restored.as_directory() as folder:
            restore = [ray.put(pack(folder))]
    me = ray.get_runtime_context().current_actor
    host = _free_host(hosts, key, params, restore, checkpoint_every, me)
    try:
        while True:
            kind, payload = ray.get(host.next.remote(key))
            if kind == "done":
                return
            if kind == "report":
                metrics, files = payload
                if files is None:
                    tune.report(metrics)
                    continue
                with tempfile.TemporaryDirectory() as folder:  # Tune copies it into the study's storage
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(unpack(files, folder)))
    finally:  # also when Tune stops the trial (its report raises SystemExit here)
        host.cancel.remote(key)


def _free_host(hosts: Hosts, key, params, restore, checkpoint_every, me):
    """The first host (in an order that spreads trials) that takes the trial; waits while all are full."""
    first = random.randrange(len(hosts.actors))
    order = hosts.actors[first:] + hosts.actors[:first]
    while True:
        for host in order:
            if ray.get(host.start.remote(key, [hosts.spec], params, restore, checkpoint_every, me)):
                return host
        time.sleep(0.2)  # a stopped trial's slot frees at its next report
