"""`TRLTrainingConfig`: what a trial on TRL's `GRPOTrainer` does, in the study's terms.

A trial's parameters are `GRPOConfig` fields (``learning_rate``, ``beta``, ``epsilon``,
``loss_type``, ``num_generations``, ...), applied over the study's base GRPOConfig; a name
that is no GRPOConfig field is refused, never dropped. Three settings are the study's, not
TRL's, so every trial is measured the same way on either engine:

- ``num_episodes``: the budget, in sampled completions, as for our engine (`max_steps` is
  derived from it; setting ``max_steps`` or ``num_train_epochs`` is refused: one budget, one
  clock for every scheduler);
- ``eval_every`` / ``eval_max_new_tokens``: the held-out yardstick (greedy replies to the
  selection prompts, scored with the study's reward weights), which no space may sample.

The clock: one iteration is one optimizer step (TRL logs every step), and it trains on
``per_device_train_batch_size * gradient_accumulation_steps / num_iterations`` completions
(TRL reuses each generation ``num_iterations`` times), the episodes schedulers count.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping

from ..checks import integer

# GRPOConfig fields the engine sets itself: the trial's clock (a log and a report every step),
# its storage (checkpoints go where the backend keeps them) and its budget (num_episodes)
ENGINE_FIELDS = {
    "output_dir": "the trial's folder is the backend's",
    "max_steps": "the budget is num_episodes (completions), as for every trial",
    "num_train_epochs": "the budget is num_episodes (completions), as for every trial",
    "logging_steps": "every optimizer step is reported",
    "logging_strategy": "every optimizer step is reported",
    "save_strategy": "checkpoints are saved when the backend asks (--save-every, PBT)",
    "save_steps": "checkpoints are saved when the backend asks (--save-every, PBT)",
    "eval_strategy": "the held-out evaluation is the study's yardstick (eval_every)",
    "report_to": "metrics go to the study's backend (and W&B through --wandb)",
    "resume_from_checkpoint": "a trial resumes from the backend's checkpoint",
    "push_to_hub": "trials push nothing",
    "load_best_model_at_end": "the study picks the best trial",
}
# GRPOConfig fields that belong to the agent, which loads the model for either engine
AGENT_FIELDS = {"model_init_kwargs": "set AgentConfig.model_init_kwargs (--set model_init_kwargs=...); "
                                     "TrialSpec.for_trl moves a base GRPOConfig's there"}
# searched parameters that would move the yardstick: the evaluation scores with these
PROTOCOL_FIELDS = ("reward_weights", "eval_every", "eval_max_new_tokens")
OWN_FIELDS = ("num_episodes", "eval_every", "eval_max_new_tokens", "seed")


@functools.lru_cache(maxsize=1)
def grpo_fields() -> Dict[str, dataclasses.Field]:
    try:
        from trl import GRPOConfig
    except ImportError:
        raise ValueError("the TRL engine needs TRL: pip install 'stateset-hpo[trl]'") from None

    return {f.name: f for f in dataclasses.fields(GRPOConfig) if f.init}


def _check_type(name: str, annotation: Any, value: Any) -> None:
    """Booleans are booleans and numbers numbers: TRL's dataclass takes any value, and a string
    "no" for a boolean would read as True."""
    text = str(annotation)
    optional = value is None and "None" in text
    if text in ("<class 'bool'>", "bool | None") and not (isinstance(value, bool) or optional):
        raise ValueError(f"GRPOConfig.{name} must be True or False, got {value!r}")
    if text in ("<class 'int'>", "int | None") and not (
            (isinstance(value, int) and not isinstance(value, bool)) or optional):
        raise ValueError(f"GRPOConfig.{name} must be an integer, got {value!r}")
    if text in ("<class 'float'>", "float | None") and not (
            (isinstance(value, (int, float)) and not isinstance(value, bool)) or optional):
        raise ValueError(f"GRPOConfig.{name} must be a number, got {value!r}")


@dataclass
class TRLTrainingConfig:
    """The study's base for TRL trials: ``grpo_args`` (GRPOConfig fields) and the study's own
    budget, yardstick and seed."""

    grpo_args: Dict[str, Any] = field(default_factory=dict)
    num_episodes: int = 64
    eval_every: int = 1
    eval_max_new_tokens: int = 64
    seed: int = 0
    world_size: int = 1  # data-parallel processes of a trial (Ray Train workers)

    def __post_init__(self) -> None:
        self.grpo_args = dict(self.grpo_args)
        if "seed" in self.grpo_args:  # (a GRPOConfig's seed is the run's seed)
            self.seed = self.grpo_args.pop("seed")
        for name, minimum in (("num_episodes", 1), ("eval_every", 1), ("eval_max_new_tokens", 1), ("world_size", 1)):
            try:
                setattr(self, name, integer(minimum)(getattr(self, name)))
            except ValueError as exc:
                raise ValueError(f"TRLTrainingConfig.{name} {exc}") from None
        try:
            self.seed = integer(0, maximum=2**31 - 1)(self.seed)
        except ValueError as exc:
            raise ValueError(f"TRLTrainingConfig.seed {exc}") from None
        known = grpo_fields()
        for name, value in self.grpo_args.items():
            if name in ENGINE_FIELDS:
                raise ValueError(f"GRPOConfig.{name} is set by the study ({ENGINE_FIELDS[name]}); drop it")
            if name not in known:
                raise ValueError(f"{name!r} is no GRPOConfig field (TRL's GRPOTrainer settings)")
            if name in AGENT_FIELDS:
                raise ValueError(f"GRPOConfig.{name}: the engine loads the model; {AGENT_FIELDS[name]}")
            _check_type(name, known[name].type, value)
        per = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if per % self.updates_per_generation:
            raise ValueError(f"per_device_train_batch_size x gradient_accumulation_steps ({per}) must be a multiple "
                             f"of num_iterations ({self.updates_per_generation}): the episode clock counts whole "
                             "completions per optimizer step")

    def arg(self, name: str) -> Any:
        """A GRPOConfig setting of this run: the given value, else TRL's default."""
        if name in self.grpo_args:
            return self.grpo_args[name]
        f = grpo_fields()[name]
        return f.default if f.default is not dataclasses.MISSING else f.default_factory()

    # -- the clock (the names our engine's TrainingConfig uses, read by schedulers and health rules)
    @property
    def per_device_train_batch_size(self) -> int:
        return self.arg("per_device_train_batch_size")

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.arg("gradient_accumulation_steps")

    @property
    def updates_per_generation(self) -> int:
        return self.arg("num_iterations")

    @property
    def group_size(self) -> int:
        return self.arg("num_generations") or 8

    @property
    def episodes_per_iteration(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.world_size \
            // self.updates_per_generation

    @property
    def prompts_per_iteration(self) -> int:
        return max(1, self.episodes_per_iteration // self.group_size)

    @property
    def total_iterations(self) -> int:
        return max(1, self.num_episodes // self.episodes_per_iteration)

    @property
    def updates_per_iteration(self) -> int:
        return 1  # an iteration is one optimizer step

    @property
    def max_new_tokens(self) -> int:
        return self.arg("max_completion_length")

    @property
    def learning_rate(self) -> float:
        return self.arg("learning_rate")

    @property
    def reward_weights(self) -> Dict[str, float]:
        return {}  # (TRL's reward_weights are a list, by reward function: the evaluation reads them)

    @property
    def include_value_function(self) -> bool:
        return False

    def lr_factor(self) -> Callable[[int], float]:
        """The learning rate at an optimizer step as a fraction of ``learning_rate``: TRL's own
        schedule (transformers' scheduler over ``total_iterations`` steps). Read from the settings,
        not from a GRPOConfig: building one while a trainer runs resets accelerate's state
        under it (its device setup), and the trainer then fails."""
        import torch
        from transformers import get_scheduler

        total, warmup = self.total_iterations, self.arg("warmup_steps")
        warmup = int(warmup) if warmup >= 1 else math.ceil(total * warmup)  # (TrainingArguments.get_warmup_steps)
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        schedule = get_scheduler(self.arg("lr_scheduler_type"), optimizer, num_warmup_steps=warmup,
                                 num_training_steps=total, scheduler_specific_kwargs=self.arg("lr_scheduler_kwargs"))
        return schedule.lr_lambdas[0]

    # -- building --------------------------------------------------------------------------
    def with_params(self, params: Mapping[str, Any]) -> "TRLTrainingConfig":
        """A copy with a trial's parameters applied (GRPOConfig fields, or num_episodes / seed)."""
        own = {k: v for k, v in params.items() if k in OWN_FIELDS}
        args = {k: v for k, v in params.items() if k not in OWN_FIELDS}
        return dataclasses.replace(self, grpo_args={**self.grpo_args, **args}, **own)

    def grpo_config(self, output_dir: str, device: str = "cpu", dtype: str = "float32"):
        """The trial's GRPOConfig: the study's settings, the engine's clock and storage, and the
        agent's device and precision (``bf16`` when the model is loaded in bfloat16, unless the
        settings say ``bf16`` / ``fp16`` themselves; TRL would take bf16 on a CPU too)."""
        from trl import GRPOConfig

        settings = {**self.grpo_args, "seed": self.seed}
        if device == "cpu":
            settings["use_cpu"] = True
        if "bf16" not in self.grpo_args and "fp16" not in self.grpo_args:
            settings["bf16"] = dtype == "bfloat16"
        return GRPOConfig(output_dir=output_dir, max_steps=self.total_iterations, logging_steps=1,
                          save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True, **settings)

    def to_dict(self) -> Dict[str, Any]:
        return {**self.grpo_args, "num_episodes": self.num_episodes, "eval_every": self.eval_every,
                "eval_max_new_tokens": self.eval_max_new_tokens, "seed": self.seed}

