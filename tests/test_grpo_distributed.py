"""Data-parallel GRPO (workers_per_trial > 1): two worker processes in a gloo group sample
their own rollouts, average gradients and metrics, and keep identical weights."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    from stateset_hpo.grpo import (ConversationEnvironment, MultiTurnAgent, MultiTurnGRPOTrainer, TrainingConfig,
                                   domain_reward)

    config = TrainingConfig(num_episodes=32, per_device_train_batch_size=2, group_size=4, max_new_tokens=24,
                            learning_rate=1e-3)
    trainer = MultiTurnGRPOTrainer(MultiTurnAgent(), ConversationEnvironment("customer_service"),
                                   domain_reward("customer_service"), config)
    initial = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}
    scenarios = [s.id for s in trainer.environment.sample(4, __import__("random").Random(config.seed + rank))]
    metrics = [trainer.train_step() for _ in range(2)]
    final = {n: p.detach() for n, p in trainer.policy.named_parameters() if p.requires_grad}
    torch.save({"initial": initial, "final": final, "metrics": metrics, "scenarios": scenarios}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_workers_stay_in_lockstep(tiny_model_path, tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert a["scenarios"] != b["scenarios"]  # each worker rolls out its own prompts
    assert all(torch.equal(a["initial"][n], b["initial"][n]) for n in a["initial"])
    assert all(torch.equal(a["final"][n], b["final"][n]) for n in a["final"])
    assert any(not torch.equal(a["initial"][n], a["final"][n]) for n in a["final"])
    assert a["metrics"][-1]["reward"] == b["metrics"][-1]["reward"]  # averaged over workers
