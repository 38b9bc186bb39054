"""The Ray Tune trainable: one GRPO trial, run in a Ray Train worker group or in-process.

``execution="train"`` (the default): the Tune trial is a light driver that runs the trial in a
`TorchTrainer` with ``workers_per_trial`` workers (data-parallel GRPO across them), each with
``cpu_per_trial`` CPUs and ``gpu_per_trial`` GPUs (with several workers each rolls out its own
scenarios and the engine averages gradients and metrics over the group, as DDP would, so
the weights stay identical); rank 0's metrics and checkpoints reach Tune every iteration
(see `_to_tune_callback`), so schedulers act on them, and PBT and HyperBand can exploit and
resume trials. This is the Train V2 pattern that Ray 2.60 supports (a TorchTrainer inside a
Tune function).

``execution="direct"``: the same trial function runs in the Tune trial process itself, with
no worker group (one worker). It starts in a fraction of the time (no worker group and
placement group per trial) and reports checkpoints to Tune directly, which PBT and HyperBand
need: `TuneReportCallback` forwards only a checkpoint *path*, so under ``train`` Tune never
holds a trial checkpoint it could pause, resume or exploit.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Tuple

from ...lifecycle import Report, TrialReporter
from ...trial import TrialSpec, run_trial


def torch_threads(cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(cpus)))


def run_reporting(spec: TrialSpec, params: Dict[str, Any], cpus: float, checkpoint_every: Optional[int],
                  send: Callable[[Dict[str, Any], Optional[str]], Optional[bool]], restore,
                  may_checkpoint: bool = True) -> None:
    """Run the trial through the study's `TrialReporter`, passing each iteration to
    ``send(row, folder)``: the report as one flat result row (`Report.flat`) and its checkpoint
    folder, or None; a true return value of ``send`` stops the trial. ``restore`` is a Ray
    Checkpoint to continue from, or None.

    A trial that a health rule stops sends its last row with the rule, the reason and
    ``done=True``, and no checkpoint: Tune then ends it without asking the scheduler, so PBT
    never exploits it (every worker of a group sees the same metrics and stops alike). Its
    last planned iteration is ``done`` too, for the same reason."""
    torch_threads(cpus)

    def to_tune(report: Report) -> Optional[Tuple[str, str]]:
        row = report.flat()
        if report.stopped_by is not None or report.final:
            # Tune ends a done trial without asking the scheduler: PBT would otherwise exploit a trial at
            # its last report, restore it from the donor's final checkpoint with nothing left to train, and
            # the trial would end as a copy of its donor's result under its own new settings
            row["done"] = True
        return ("scheduler", "stopped by Tune") if send(row, report.checkpoint) else None

    reporter = TrialReporter(to_tune, spec.health, checkpoint_every, checkpoints=may_checkpoint)
    if restore is None:
        run_trial(spec, params, reporter)
    else:
        with restore.as_directory() as folder:
            run_trial(spec, params, reporter, restore_from=folder)


def direct_trial(params: Dict[str, Any], spec: TrialSpec, cpus: float, checkpoint_every: Optional[int]) -> None:
    """Tune function trainable body for ``execution="direct"``."""
    from ray import tune

    def send(metrics, folder):
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder) if folder else None)

    run_reporting(spec, params, cpus, checkpoint_every, send, tune.get_checkpoint())


def _train_worker(loop_config: Dict[str, Any]) -> None:
    """Runs on every Train worker; all report (Train synchronises on it). Our engine's rank 0
    checkpoints; every rank of a TRL trial does: Trainer's checkpoint gathers across processes
    (each must call it) and each writes its own RNG state, which Train merges into one checkpoint."""
    import ray.train

    def send(metrics, folder):
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder) if folder else None)

    # Train's own checkpoint when it restarted failed workers, else the one Tune restored the
    # trial from (a resumed or paused trial, or a PBT exploit of another trial's checkpoint).
    restore = ray.train.get_checkpoint() or loop_config["restore"]
    spec = loop_config["spec"]
    run_reporting(spec, loop_config["params"], loop_config["cpus"], loop_config["checkpoint_every"], send, restore,
                  may_checkpoint=spec.trl is not None or ray.train.get_context().get_world_rank() == 0)


def _to_tune_callback(queue):
    """A Train callback that hands each report, *with its checkpoint*, to the Tune trial.

    Ray's TuneReportCallback forwards only the checkpoint's path as a metric, so Tune would
    hold no checkpoint to pause, resume or exploit (PBT, HyperBand, FailureConfig). This
    passes the Checkpoint object itself through a one-slot queue (which also makes the workers
    wait until Tune has taken the result, as TuneReportCallback's queue does).
    """
    from ray.train.v2.api.callback import UserCallback

    class ToTune(UserCallback):
        def after_report(self, run_context, metrics, checkpoint):
            queue.put((dict(metrics[0]), checkpoint))

    return ToTune()


def process_group_backend(gpus: float) -> str:
    """NCCL for GPU workers when this torch build has it, else gloo.

    Train's own default (NCCL whenever use_gpu) fails outright with a torch built without
    NCCL, e.g. the CPU build on nodes that declare GPUs (a simulated cluster); every node of
    a cluster runs the same environment, so this process's build stands for the workers'.
    """
    import torch.distributed as dist

    return "nccl" if gpus > 0 and dist.is_nccl_available() else "gloo"


def train_trial(params: Dict[str, Any], spec: TrialSpec, workers: int, cpus: float, gpus: float,
                checkpoint_every: Optional[int], max_failures: int, storage_path: Optional[str] = None) -> None:
    """Tune function trainable body for ``execution="train"``: drive a TorchTrainer in a
    thread and report its results, checkpoints included, to Tune from this one.

    The Train run writes its checkpoints under ``storage_path`` (the study's storage, which
    every node must see on a multi-node cluster: S3/GCS/NFS), else beside the Tune trial."""
    import threading

    import ray.train
    from ray import tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.queue import Queue

    context = tune.get_context()
    queue = Queue(maxsize=1, actor_options={"num_cpus": 0})
    trainer = TorchTrainer(
        _train_worker,
        torch_config=TorchConfig(backend=process_group_backend(gpus)),
        train_loop_config={"spec": spec, "params": params, "cpus": cpus, "checkpoint_every": checkpoint_every,
                           "restore": tune.get_checkpoint()},
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=gpus > 0,
                                               resources_per_worker={"CPU": cpus, "GPU": gpus}),
        run_config=ray.train.RunConfig(name=f"train-{context.get_trial_id()}",
                                       storage_path=storage_path or os.path.dirname(context.get_trial_dir()),
                                       callbacks=[_to_tune_callback(queue)],
                                       failure_config=ray.train.FailureConfig(max_failures=max_failures)),
    )
    failure: list = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # re-raised below, in the Tune trial's own thread
            failure.append(exc)
        finally:
            queue.put(None)

    thread = threading.Thread(target=fit, name="train-run", daemon=True)
    thread.start()
    for metrics, checkpoint in iter(queue.get, None):
        tune.report(metrics, checkpoint=checkpoint)
    thread.join()
    if failure:
        raise failure[0]
