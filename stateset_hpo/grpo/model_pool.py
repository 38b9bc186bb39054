"""Base models kept loaded between the trials of one process ("warm trials").

Loading the model is most of a short trial's start-up: seconds for the tiny model on a CPU,
minutes for a multi-GB model on a GPU, once per trial. A LoRA trial never changes its base
weights: peft wraps adapter layers around them and ``unload()`` takes them out again, which
leaves the base model exactly as loaded (tests/test_warm_trials.py trains the same trial
warm and cold and compares every metric). So a process keeps its loaded base models here and
lends one to each LoRA trial; a full fine-tuning trial changes the weights and always loads
its own copy. Trials running at once in threads each borrow a model of their own; models of
another base model are dropped when one is asked for (one base model per study).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import threading
from typing import Dict, Iterator, List

from .agent import MultiTurnAgent
from .config import AgentConfig

logger = logging.getLogger(__name__)
_LOCK = threading.Lock()
_IDLE: Dict[str, List[MultiTurnAgent]] = {}  # base model key -> loaded agents no trial holds


def _key(config: AgentConfig) -> str:
    return repr(sorted(dataclasses.asdict(config).items()))


@contextlib.contextmanager
def borrowed_agent(config: AgentConfig, warm: bool = True) -> Iterator[MultiTurnAgent]:
    """An agent for one trial: a loaded base model from this process's pool when ``warm``
    (a LoRA trial), else a fresh one; given back, adapters removed, when the trial ends."""
    if not warm:
        yield MultiTurnAgent(config)
        return
    key = _key(config)
    with _LOCK:
        for other in [k for k in _IDLE if k != key]:
            logger.info("another base model: the loaded %s is released", other)
            del _IDLE[other]
        agent = _IDLE[key].pop() if _IDLE.get(key) else None
    if agent is None:
        gc.collect()  # a dropped base model's memory goes before the next one loads
        agent = MultiTurnAgent(config)
    try:
        yield agent
    finally:
        _give_back(key, agent)


def _give_back(key: str, agent: MultiTurnAgent) -> None:
    if not agent.initialized:
        return
    model = agent.model
    if hasattr(model, "unload"):  # a peft model: the trial's adapter layers come out
        try:
            model = model.unload()
        except Exception:  # a base model we cannot restore is not lent again
            logger.warning("could not remove a trial's adapter; the base model is loaded again for the next trial")
            return
    if any(p.requires_grad for p in model.parameters()):
        return  # weights a trial could have changed (full fine-tuning): never lent again
    agent.model = model.eval()
    with _LOCK:
        _IDLE.setdefault(key, []).append(agent)


def release_all() -> None:
    """Drop every pooled base model (their memory is freed with the last reference)."""
    with _LOCK:
        _IDLE.clear()
    gc.collect()
