"""Data parallelism across a trial's workers (``workers_per_trial`` > 1): each worker rolls out
its own scenarios, and these keep the workers in step as DDP would, with the same mean
gradient, the same token count for the dapo loss, and the same reported metrics.

Outside an initialised torch.distributed group (one worker) the trainer never calls them.
"""

from __future__ import annotations

from typing import Dict, Iterable, Tuple

import torch


def rank_and_size() -> Tuple[int, int]:
    """(rank, world size) when running in an initialised torch.distributed group (a Ray Train
    worker group of several workers), else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def mean_over_workers(values: Dict[str, float], world_size: int, device) -> Dict[str, float]:
    import torch.distributed as dist

    keys = sorted(values)
    stacked = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
    return {k: v / world_size for k, v in zip(keys, stacked.tolist())}


def average_gradients(params: Iterable[torch.nn.Parameter], world_size: int) -> None:
    """Every worker's gradient becomes the mean over the workers, so all take the same step
    and their weights stay identical."""
    import torch.distributed as dist

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= world_size
