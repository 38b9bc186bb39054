"""One loaded base model per process, shared by all its LoRA trials ("warm trials").

Loading the model is most of a short trial's start-up: seconds for the tiny model on a CPU,
minutes for a multi-GB model on a GPU, once per trial. A LoRA trial never changes its base
weights, so the process loads them once (frozen) and lends each LoRA trial a *view*: a copy
of the model's module tree whose parameters and buffers are the loaded tensors themselves.
peft wraps the view's layers with the trial's adapter and the view is dropped when the trial
ends, so trials running at once in threads (Optuna's n_jobs) each have their own modules and
adapter while the weights are in memory once: k concurrent trials cost one base model plus k
adapters. A view computes exactly what a freshly loaded model would (tests/test_warm_trials.py
trains the same trial warm and cold and compares every metric). Full fine-tuning changes the
weights and always loads its own copy; asking for another base model lets the loaded one go.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import itertools
import logging
import threading
from typing import Dict

from .agent import MultiTurnAgent
from .config import AgentConfig

logger = logging.getLogger(__name__)
_LOCK = threading.Lock()
_LOADED: Dict[str, MultiTurnAgent] = {}  # base model key -> the loaded, frozen base model (at most one)


def _key(config: AgentConfig) -> str:
    return repr(sorted(dataclasses.asdict(config).items()))


def agent_for_trial(config: AgentConfig, warm: bool = True) -> MultiTurnAgent:
    """An agent for one trial: a view of this process's loaded base model when ``warm`` (a
    LoRA trial), else a freshly loaded model of its own. Nothing is given back: the trial
    drops its view (or its own model) when it ends."""
    if not warm:
        logger.info("a trial that trains the base weights (full fine-tuning) loads its own copy of %s",
                    config.model_name)
    return _view(_loaded(config)) if warm else MultiTurnAgent(config)


def _loaded(config: AgentConfig) -> MultiTurnAgent:
    key = _key(config)
    with _LOCK:  # concurrent first trials wait for one load instead of each loading
        if key not in _LOADED:
            if _LOADED:
                logger.info("another base model asked for: the loaded one is released")
                _LOADED.clear()
                gc.collect()  # its memory goes before the next one loads
            agent = MultiTurnAgent(config).initialize()
            agent.model.requires_grad_(False)
            _LOADED[key] = agent
        return _LOADED[key]


def _view(base: MultiTurnAgent) -> MultiTurnAgent:
    agent = MultiTurnAgent(base.config)
    agent.device = base.device
    agent.tokenizer = copy.deepcopy(base.tokenizer)  # a fast tokenizer is not safe to share between threads
    shared = {id(t): t for t in itertools.chain(base.model.parameters(), base.model.buffers())}
    agent.model = copy.deepcopy(base.model, shared)  # new modules around the same tensors
    return agent


def release_all() -> None:
    """Drop the loaded base model (its memory is freed once no running trial holds a view)."""
    with _LOCK:
        _LOADED.clear()
    gc.collect()
