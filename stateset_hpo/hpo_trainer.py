"""`GRPOHPOTrainer` and `quick_hpo`: the user guide's entry points, on top of run_study.

The trainer turns the guide's objects (agent, environment, reward function, base config)
into a `TrialSpec`, runs the study on the configured backend, and trains a final agent with
the best parameters. The blocking work runs in a worker thread (`asyncio.to_thread`), so
``await trainer.optimize()`` works from a script (``asyncio.run``) and inside a running
event loop (Jupyter) without freezing it.

Custom objectives: override ``_objective_function(params)`` (and, if wanted,
``_create_training_config(params)``) as in the guide; every backend then runs your function
as the trial and records what it returns under ``objective_metric``. Such trials report
once, at their end, so pruners and schedulers cannot stop them early.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .config import HPOConfig
from .grpo import (AgentConfig, CompositeReward, ConversationEnvironment, MultiTurnAgent, MultiTurnGRPOTrainer,
                   TrainingConfig)
from .results import HPOSummary
from .study import run_study
from .trial import SCHEDULE_KEY, TrialSpec, run_trial, train


def _never_stop(metrics, trainer) -> bool:
    return False


class _UserObjective:
    """A picklable trial function that calls a GRPOHPOTrainer subclass's _objective_function."""

    def __init__(self, owner: "GRPOHPOTrainer") -> None:
        self.owner = owner

    def __call__(self, params: Dict[str, Any]) -> Dict[str, float]:
        value = asyncio.run(self.owner._objective_function(params))
        return {self.owner.hpo_config.objective_metric: float(value)}


class GRPOHPOTrainer:
    def __init__(self, agent: MultiTurnAgent, environment: ConversationEnvironment, reward_function: CompositeReward,
                 base_config: TrainingConfig, hpo_config: Optional[HPOConfig] = None,
                 callbacks: Sequence[Any] = ()) -> None:
        self.agent, self.environment, self.reward_function = agent, environment, reward_function
        self.base_config = base_config
        self.hpo_config = hpo_config or HPOConfig()
        self.callbacks = list(callbacks)
        self.summary: Optional[HPOSummary] = None

    # -- the study ------------------------------------------------------------------------------
    def trial_spec(self) -> TrialSpec:
        """What every trial shares. Trials build their own agent from the agent's config (no
        trial shares weights with another or with ``self.agent``)."""
        custom = type(self)._objective_function is not GRPOHPOTrainer._objective_function or \
            type(self)._create_training_config is not GRPOHPOTrainer._create_training_config
        return TrialSpec(agent_config=self.agent.config, environment=self.environment, reward=self.reward_function,
                         base_config=self.base_config, objective=_UserObjective(self) if custom else None)

    async def optimize(self) -> HPOSummary:
        """Run the study; the summary is also kept as ``self.summary``."""
        self.summary = await asyncio.to_thread(run_study, self.hpo_config, self.trial_spec(), self.callbacks)
        return self.summary

    async def _objective_function(self, params: Dict[str, Any]) -> float:
        """One trial's objective. Not called unless a subclass overrides it (or
        ``_create_training_config``): the backends then run the engine themselves and report
        every iteration, which is what lets pruners act. This default is what they compute,
        on the trials' own path (trial.run_trial)."""
        metrics = await asyncio.to_thread(run_trial, self._one_run_spec(params), {}, _never_stop)
        return metrics[self.hpo_config.objective_metric]

    def _one_run_spec(self, params: Dict[str, Any]) -> TrialSpec:
        """The study's trial spec whose base is this trainer's training config for ``params``
        (so a subclass's ``_create_training_config`` holds), training to its end."""
        return dataclasses.replace(self.trial_spec(), objective=None, health=None,
                                   base_config=self._create_training_config(params))

    def _create_training_config(self, params: Dict[str, Any]) -> TrainingConfig:
        """``base_config`` with the trial's parameters (a name that maps to nothing is an error)."""
        return self.base_config.with_params(params)

    # -- after the study -----------------------------------------------------------------------
    async def train_with_best_params(self, full_episodes: Optional[int] = None,
                                     output_dir: Optional[str] = None) -> MultiTurnAgent:
        """Train a fresh agent with the best parameters (``full_episodes`` episodes, default
        the base config's) and save it under ``output_dir`` (default ``<hpo output>/best_model``):
        the LoRA adapter and tokenizer (loadable with ``load_trained_agent``, or as
        ``AgentConfig(model_name=<that folder>)``), the training and agent configs, and the best
        parameters. A recommendation whose settings changed as it trained (PBT) is replayed
        along its schedule (``HPOResult.schedule``), saved with the parameters. Returns the
        trained agent."""
        if self.summary is None:
            raise RuntimeError("no study yet: await optimize() first")
        if self.summary.best_result is None:
            raise RuntimeError("the study has no successful trial to take parameters from")
        params, best = self.summary.best_params, self.summary.best_result
        folder = Path(output_dir) if output_dir else Path(self.hpo_config.output_dir) / "best_model"
        episodes = {"num_episodes": full_episodes} if full_episodes is not None else {}
        if best.schedule:  # a PBT recommendation is its schedule: replayed on the trial's own path
            spec = dataclasses.replace(self.trial_spec(), objective=None, health=None)
            params = {**params, SCHEDULE_KEY: best.schedule}
            point = {**params, **episodes}
        else:  # on the same path, from this trainer's training config for the params
            spec, point = self._one_run_spec(params), episodes
        trainer = await asyncio.to_thread(train, spec, point, _never_stop)
        await asyncio.to_thread(save_trained_agent, trainer, folder, params)
        return trainer.agent

    def plot_results(self, output_dir: Optional[str] = None) -> List[Path]:
        """The study's plots (PNG files and plots.html) in ``<output_dir>/plots``; their paths.
        (With ``save_plots=True``, the default, optimize() has already written them.)"""
        if self.summary is None:
            raise RuntimeError("no study yet: await optimize() first")
        from .plots import save_plots

        return save_plots(self.summary, self.hpo_config.resolve_search_space(),
                          Path(output_dir or self.hpo_config.output_dir))


def save_trained_agent(trainer: MultiTurnGRPOTrainer, folder: Path, params: Dict[str, Any]) -> Path:
    """Adapter (or full model without LoRA), tokenizer, configs and parameters in one folder."""
    folder.mkdir(parents=True, exist_ok=True)
    trainer.policy.save_pretrained(folder)
    trainer.agent.tokenizer.save_pretrained(folder)
    (folder / "training_config.json").write_text(json.dumps(trainer.config.to_dict(), indent=2))
    (folder / "agent_config.json").write_text(json.dumps(dataclasses.asdict(trainer.agent.config), indent=2))
    (folder / "best_params.json").write_text(json.dumps(params, indent=2))
    return folder


def load_trained_agent(folder: str, **agent_settings: Any) -> MultiTurnAgent:
    """An agent from a `train_with_best_params` folder: the base model with the trained adapter."""
    saved = json.loads((Path(folder) / "agent_config.json").read_text())
    saved.update(agent_settings, model_name=str(folder))
    return MultiTurnAgent(AgentConfig(**saved)).initialize()


async def quick_hpo(agent: MultiTurnAgent, environment: ConversationEnvironment, reward_function: CompositeReward,
                    base_config: TrainingConfig, n_trials: int = 50, search_space_name: str = "grpo",
                    backend: str = "optuna", callbacks: Sequence[Any] = (), **hpo_settings: Any) -> HPOSummary:
    """A study with defaults: the guide's one-call entry point. Extra keyword arguments are
    HPOConfig fields (e.g. ``output_dir``, ``objective_metric``, ``optuna_config``)."""
    config = HPOConfig(backend=backend, search_space_name=search_space_name, n_trials=n_trials, **hpo_settings)
    return await GRPOHPOTrainer(agent, environment, reward_function, base_config, config, callbacks).optimize()
