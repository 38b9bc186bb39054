"""Cluster utilisation of a study on a simulated multi-node GPU cluster.

Starts a Ray cluster of processes on this machine (ray.cluster_utils.Cluster): a head node
with no CPUs or GPUs for trials (as in cluster/aws.yaml) and --nodes worker nodes that each
declare --gpus GPUs. No CUDA is used: a trial only sees which GPU Ray assigned it, and trains
on the CPU. A study with gpu_per_trial=1 (each trial one Ray Train worker, the default
execution) keeps its Tune storage in a folder that stands for the shared S3/GCS bucket.

It prints where the Train workers ran (Ray's State API), how many trials trained at once,
and the utilisation

    busy slot-seconds / (wall x slots)

where a slot is one GPU, a slot is busy while a trial trains on it (from the start of its
first iteration to its last report, from Tune's own result.json files: waiting for a GPU and
loading the model count as idle), and wall is the study's wall time. It also lists what
landed in the shared storage: every trial's folder and the study's results.

    python bench/multinode_sim.py [--nodes 3] [--gpus 2] [--trials 12] [--episodes 48] [--json out.json]
                                  [--work-dir DIR] [--record-dir DIR]

Goals (the exit status): no trial fails, no Train worker runs on the head, every slot
trains at once (as many trials at once as GPUs), and every trial's folder and the study's results
are in the shared storage. Utilisation is reported, not a goal: on this 2-core machine six "GPU"
slots share two cores, so it measures the machine more than the scheduling.
"""

import argparse
import json
import os
import signal
import socket
import sys
import tempfile
import time
import warnings
from pathlib import Path

from harness import RESULTS, Record

warnings.filterwarnings("ignore")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(nodes: int, gpus: int, temp_dir: str):
    """Head + worker nodes on this host. Every head port is explicit: this host may already
    run another Ray instance (a test session's), whose agents hold Ray's default ports."""
    from ray.cluster_utils import Cluster

    head = dict(num_cpus=0, num_gpus=0, include_dashboard=True, dashboard_host="127.0.0.1",
                dashboard_port=free_port(), dashboard_agent_listen_port=free_port(), gcs_server_port=free_port(),
                temp_dir=temp_dir)
    cluster = Cluster(initialize_head=True, head_node_args=head)
    for _ in range(nodes):
        # 4 logical CPUs per node: per trial one for its Train worker and 0.1 for its Tune driver
        cluster.add_node(num_cpus=2 * gpus, num_gpus=gpus, temp_dir=temp_dir)
    return cluster


def workers_per_node(worker_node_ids) -> dict:
    """{node id prefix: Ray Train workers it ran}, from Ray's State API (dead actors included)."""
    from ray.util.state import list_actors

    counts = {}
    for actor in list_actors(filters=[("class_name", "=", "RayTrainWorker")], limit=10_000,
                             raise_on_missing_output=False):
        node = actor.node_id if actor.node_id in worker_node_ids else "head"
        counts[node[:8]] = counts.get(node[:8], 0) + 1
    return counts


def training_spans(experiment: Path):
    """(start, end) unix seconds of each trial's training, from Tune's own result.json in the
    shared storage: from the start of its first iteration (the engine's step_time back from
    the first report) to its last report. Waiting for a GPU and loading the model are not
    training: they count as idle slot time."""
    spans = []
    for folder in experiment.iterdir():
        lines = (folder / "result.json").read_text().splitlines() if (folder / "result.json").is_file() else []
        rows = [json.loads(line) for line in lines if line.strip()]
        if rows:
            spans.append((rows[0]["timestamp"] - rows[0]["step_time"], rows[-1]["timestamp"]))
    return spans


def max_overlap(intervals) -> int:
    """Most intervals open at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return best


def run(nodes: int, gpus: int, trials: int, episodes: int, temp_dir: str, work: Path) -> dict:
    import ray

    from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType
    from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward
    from stateset_hpo.study import run_study
    from stateset_hpo.trial import TrialSpec

    shared = work / "shared_bucket"  # stands for s3://bucket/stateset-hpo: every node writes here
    cluster = start_cluster(nodes, gpus, temp_dir)
    try:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        worker_node_ids = {n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")}
        spec = TrialSpec(environment=ConversationEnvironment("customer_service"),
                         reward=domain_reward("customer_service"),
                         base_config=TrainingConfig(num_episodes=episodes, per_device_train_batch_size=2, group_size=4,
                                                    max_new_tokens=24, include_value_function=False,
                                                    warmup_ratio=0.0))
        space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-4, high=3e-3,
                                             default=1e-3)])
        slots = nodes * gpus
        config = HPOConfig(backend="ray_tune", search_space=space, n_trials=trials, n_parallel_trials=slots,
                           gpu_per_trial=1, cpu_per_trial=1, objective_metric="eval_reward", verbose=False,
                           save_plots=False, validation_top_k=0, output_dir=str(work / "head_output"),
                           study_name="multinode",
                           seed=0, ray_config={"scheduler": "fifo", "search_alg": "random", "storage_path": str(shared),
                                               "execution": "train"})
        start = time.monotonic()
        summary = run_study(config, spec)
        wall = time.monotonic() - start
        experiment = shared / "multinode"
        spans = training_spans(experiment)
        busy = sum(end - start for start, end in spans)
        return {
            "nodes": nodes, "gpus_per_node": gpus, "slots": slots, "trials": trials,
            "successful_trials": summary.n_successful, "pruned_trials": summary.n_pruned,
            "failed_trials": summary.n_failed, "best_eval_reward": round(summary.best_metric, 3),
            "wall_s": round(wall, 1), "busy_slot_s": round(busy, 1),
            "utilisation": round(busy / (wall * slots), 3),
            "train_workers_per_node": workers_per_node(worker_node_ids),
            "max_trials_training_at_once": max_overlap(spans),
            "trials_in_shared_storage": len(spans),
            "results_in_shared_storage": sorted(p.name for p in (experiment / "results").iterdir()),
        }
    finally:
        ray.shutdown()
        cluster.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--gpus", type=int, default=2, help="GPUs each worker node declares")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--episodes", type=int, default=48, help="episodes per trial (8 per iteration)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--work-dir", type=Path, help="the shared storage and the head's output go here "
                                                       "(default: a new temporary folder, kept)")
    parser.add_argument("--record-dir", type=Path, default=RESULTS, help="where the record goes (bench/results)")
    parser.add_argument("--temp-dir", help="Ray's temp dir for the simulated nodes (short: socket paths have a "
                                           "length limit); every process of the cluster runs from it")
    args = parser.parse_args()
    os.environ.pop("RAY_ADDRESS", None)
    # SIGTERM (e.g. a timeout) unwinds through run()'s cleanup, which stops the nodes it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    temp_dir = args.temp_dir or tempfile.mkdtemp(prefix="rsim-", dir="/tmp")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="multinode-sim-"))
    figures = run(args.nodes, args.gpus, args.trials, args.episodes, temp_dir, work)
    figures["work_dir"] = str(work)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    record = Record("multinode_sim", "A study on a simulated cluster (a head with no trial resources and worker nodes "
                    "declaring GPUs, all processes on this machine): where its one-GPU Train-worker trials ran, how "
                    "many trained at once, the utilisation, and what reached the shared storage",
                    {k: v for k, v in vars(args).items() if k in ("nodes", "gpus", "trials", "episodes")})
    record.table("The study on the simulated cluster", ["figure", "value"],
                 [(key, value) for key, value in figures.items() if key != "work_dir"])
    record.goal("trials that failed (of {}; a trial a health rule stopped is pruned, not failed)".format(args.trials),
                figures["failed_trials"], 0, at_least=False, digits=0)
    record.goal("Train workers on the head", figures["train_workers_per_node"].get("head", 0), 0, at_least=False,
                digits=0)
    record.goal("trials training at once (slots: {})".format(figures["slots"]), figures["max_trials_training_at_once"],
                min(figures["slots"], args.trials), digits=0)
    record.goal("trial folders in the shared storage", figures["trials_in_shared_storage"], args.trials, digits=0)
    record.goal("study results in the shared storage (summary.json, trials.csv, report.html)",
                len({"summary.json", "trials.csv", "report.html"} & set(figures["results_in_shared_storage"])), 3,
                digits=0)
    record.note("Utilisation = busy slot-seconds / (wall x slots); on 2 cores each trial's start (a Train worker, "
                "imports, the model) dwarfs its seconds of training, so read it as this machine's figure.")
    return record.finish(args.record_dir)


if __name__ == "__main__":
    sys.exit(main())
