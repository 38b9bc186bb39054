"""A trainer's whole state in a folder and back: resuming a paused or failed trial exactly, and
a PBT exploit (another run's weights continued under this run's config)."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Union

import torch

from .optim import build_scheduler


def save_checkpoint(trainer, directory: Union[str, Path]) -> Path:
    """Everything needed to continue exactly: trainable weights (the adapter, or the whole
    model without LoRA), value head, optimizer, scheduler, RNG states, step, history and the
    schedule of configs that trained the weights."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "step": trainer.step,
        "config": trainer.config.to_dict(),
        "trainable": {n: p.detach().cpu() for n, p in trainer.policy.named_parameters() if p.requires_grad},
        "value_head": trainer.value_head.state_dict() if trainer.value_head is not None else None,
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "rng": {"python": trainer.rng.getstate(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        "history": trainer.history,
        "first_replies": trainer.first_replies,
        "config_schedule": trainer.config_schedule,
    }
    path = directory / "trainer_state.pt"
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)  # never leave a half-written checkpoint
    return directory


def load_checkpoint(trainer, directory: Union[str, Path], same_config: bool = True) -> None:
    """Restore a `save_checkpoint` folder into ``trainer``.

    With ``same_config`` (resuming a paused or failed trial) the checkpoint must come from
    this very config, and training continues exactly. Without it (a PBT exploit: the
    donor's weights under perturbed hyperparameters) the weights, optimizer state, RNG and
    step are taken over and this config's optimizer settings and schedule apply from
    here; an optimizer of another family starts fresh. Shapes must match either way.
    """
    path = Path(directory) / "trainer_state.pt"
    if not path.is_file():
        raise ValueError(f"no checkpoint at {str(path)!r}")
    # weights_only: tensors and plain containers, never code (whoever can write the storage must not
    # be able to run code on the nodes that restore a checkpoint)
    state = torch.load(path, map_location="cpu", weights_only=True)
    mine = trainer.config.to_dict()
    changed = sorted(k for k, v in state["config"].items() if mine.get(k) != v)
    if same_config and changed:
        raise ValueError(f"checkpoint {str(directory)!r} was written with a different TrainingConfig "
                         f"(differs in {changed})")
    shapes = {n: tuple(p.shape) for n, p in trainer.policy.named_parameters() if p.requires_grad}
    if {n: tuple(t.shape) for n, t in state["trainable"].items()} != shapes:
        raise ValueError(f"checkpoint {str(directory)!r} does not match this model's trainable weights "
                         "(a different adapter or model)")
    trainer.policy.load_state_dict(state["trainable"], strict=False)  # frozen weights are not in it
    if trainer.value_head is not None:
        if state["value_head"] is None:
            raise ValueError(f"checkpoint {str(directory)!r} has no value head")
        trainer.value_head.load_state_dict(state["value_head"])
    settings = [{k: v for k, v in g.items() if k != "params"} for g in trainer.optimizer.param_groups]
    if state["config"]["optimizer_type"] == trainer.config.optimizer_type:
        trainer.optimizer.load_state_dict(state["optimizer"])
        for group, wanted in zip(trainer.optimizer.param_groups, settings):
            group.update(wanted if changed else {})
    trainer.step = state["step"]
    if changed:
        trainer.scheduler = build_scheduler(trainer.config, trainer.optimizer)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # stepping the schedule without optimizer steps
            for _ in range(trainer.step * trainer.config.num_iterations):
                trainer.scheduler.step()
    else:
        trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.rng.setstate(state["rng"]["python"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    trainer.history = list(state["history"])
    trainer.first_replies = state.get("first_replies")
    trainer.config_schedule = list(state.get("config_schedule") or [{"iteration": 0, "config": state["config"]}])
    if changed:  # these weights train on under this config from here
        from ..lifecycle import continued_schedule

        trainer.config_schedule = continued_schedule(trainer.config_schedule, trainer.step, mine)
    # the run continues the checkpoint's count, as it continues its step (a PBT exploit: its donor's)
    trainer.generated_tokens = int(trainer.history[-1].get("generated_tokens", 0)) if trainer.history else 0
    # Only rank 0 writes checkpoints, and a PBT recipient restores its donor's: without a new
    # offset, every worker of a restored trial (and a recipient next to its donor) would
    # sample the very same rollouts. Rank 0 resuming its own trial continues exactly.
    if trainer.rank or changed:
        reseed(trainer, f"rank {trainer.rank} config {json.dumps(mine, sort_keys=True, default=str)}")


def reseed(trainer, salt: str) -> None:
    """Move the trainer's Python and torch RNG streams to a new point derived from their current
    state and ``salt`` (deterministic, so a restored run is still reproducible)."""
    digest = hashlib.sha256(f"{trainer.rng.getrandbits(64)}:{salt}".encode()).digest()
    seed = int.from_bytes(digest[:8], "little") >> 1
    trainer.rng.seed(seed)
    torch.manual_seed(seed)
