"""`TrainingConfig` (what a GRPO run does) and `AgentConfig` (which model it trains).

Every parameter of the predefined search spaces is a field here, so an HPO trial's params
become a config with `with_params`, which refuses names that map to nothing instead of
dropping them. Batch semantics: a micro-batch holds the episodes of
``per_device_train_batch_size`` prompts (``group_size`` episodes each); the optimizer steps
after ``gradient_accumulation_steps`` micro-batches. One training iteration is one such
rollout followed by ``num_iterations`` optimizer steps on it; ``num_episodes`` (sampled
conversations) is the run's budget, so it has ``num_episodes // episodes_per_iteration``
iterations (at least one).

The evaluation protocol (``eval_detail_level``, ``eval_max_new_tokens``; greedy decoding with
no repetition penalty, top-k or top-p, and the reward's own declared weights) is the
yardstick every trial of a study is scored with, so it is set once per study (base config,
``--set``) and a search space cannot sample it: `TrialSpec` refuses such a space.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Union

from ..checks import boolean, integer, number
from .rewards import DETAIL_LEVELS, REWARDS

TINY_MODEL = "stateset-tiny"  # the model this project builds locally (tiny_model.py): AgentConfig's default

OPTIMIZERS = ("adamw", "adam", "sgd", "adafactor")
ADVANTAGE_STD = ("group", "batch", "none")
LOSS_TYPES = ("grpo", "bnpo", "dapo", "dr_grpo")  # TRL's definitions (trainer._policy_loss)
LR_SCHEDULERS = ("constant", "linear", "cosine")
VALUE_FUNCTION_FIELDS = ("value_lr_multiplier", "gamma", "gae_lambda", "value_head_hidden_size", "value_head_dropout")
REWARD_WEIGHT_FIELDS = tuple(f"{name}_weight" for name in REWARDS)
EVAL_PROTOCOL_FIELDS = ("eval_detail_level", "eval_max_new_tokens")


@dataclass
class TrainingConfig:
    # budget and batch
    num_episodes: int = 100
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    group_size: int = 8
    num_iterations: int = 1
    # policy optimisation
    learning_rate: float = 5e-4
    warmup_ratio: float = 0.05
    lr_scheduler_type: str = "constant"
    optimizer_type: str = "adamw"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.99
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    # GRPO objective
    clip_range: float = 0.2
    clip_range_high: Optional[float] = None
    kl_penalty_coef: float = 0.01
    entropy_coef: float = 0.0
    advantage_std: str = "group"
    loss_type: str = "grpo"
    # value function over turns (GAE); its params are errors when it is off
    include_value_function: bool = True
    value_lr_multiplier: float = 1.0
    value_head_hidden_size: int = 256
    value_head_dropout: float = 0.1
    gamma: float = 0.99
    gae_lambda: float = 0.95
    # LoRA (full fine-tuning when use_lora is False)
    use_lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: Union[str, List[str]] = "all-linear"
    # recompute each layer's activations in the backward pass instead of keeping them: much less
    # memory for a longer step (TRL's default; off here, where the tiny model needs no saving)
    gradient_checkpointing: bool = False
    # generation of rollouts
    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int = 50
    max_new_tokens: int = 64
    repetition_penalty: float = 1.0
    generation_batch_size: int = 256
    # reward and prompt
    detail_level: str = "moderate"
    helpfulness_weight: Optional[float] = None
    correctness_weight: Optional[float] = None
    task_completion_weight: Optional[float] = None
    safety_weight: Optional[float] = None
    engagement_weight: Optional[float] = None
    conciseness_weight: Optional[float] = None
    persuasiveness_weight: Optional[float] = None
    # evaluation (the fixed yardstick: see the module docstring) and reproducibility
    eval_every: int = 1
    eval_detail_level: str = "moderate"
    eval_max_new_tokens: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        ints = dict(num_episodes=1, per_device_train_batch_size=1, gradient_accumulation_steps=1, group_size=2,
                    num_iterations=1, value_head_hidden_size=1, lora_r=1, lora_alpha=1, top_k=0, max_new_tokens=1,
                    generation_batch_size=1, eval_every=1, eval_max_new_tokens=1, seed=0)
        floats = dict(learning_rate=(0, None, True), warmup_ratio=(0, 1, False), adam_beta1=(0, 1, False),
                      adam_beta2=(0, 1, False), adam_epsilon=(0, None, True), weight_decay=(0, None, False),
                      max_grad_norm=(0, None, True), clip_range=(0, 1, True), kl_penalty_coef=(0, None, False),
                      entropy_coef=(0, None, False), value_lr_multiplier=(0, None, True),
                      value_head_dropout=(0, 1, False), gamma=(0, 1, False), gae_lambda=(0, 1, False),
                      lora_dropout=(0, 1, False), temperature=(0, None, True), top_p=(0, 1, True),
                      repetition_penalty=(0, None, True))
        checks = {name: integer(minimum) for name, minimum in ints.items()}
        # numpy and Optuna take seeds below 2**32, and validation and racing add up to 40000 to it
        checks["seed"] = integer(0, maximum=2**31 - 1)
        checks.update({name: number(low, strict, maximum=high) for name, (low, high, strict) in floats.items()})
        checks.update({name: number(0, strict=False, optional=True) for name in REWARD_WEIGHT_FIELDS})
        checks["clip_range_high"] = number(self.clip_range, strict=False, optional=True)
        checks.update(include_value_function=boolean, use_lora=boolean, gradient_checkpointing=boolean)
        for name, check in checks.items():  # clip_range is checked before clip_range_high uses it
            try:
                setattr(self, name, check(getattr(self, name)))
            except ValueError as exc:
                raise ValueError(f"TrainingConfig.{name} {exc}") from None
        modules = self.lora_target_modules
        if not (isinstance(modules, str) and modules.strip()) and not (
                isinstance(modules, (list, tuple)) and modules and all(isinstance(m, str) and m.strip() for m in modules)):
            raise ValueError(f"TrainingConfig.lora_target_modules must be a module name pattern or a list of module "
                             f"names (e.g. 'all-linear' or ['q_proj', 'v_proj']), got {str(modules)[:80]!r}")
        for name, options in (("optimizer_type", OPTIMIZERS), ("advantage_std", ADVANTAGE_STD),
                              ("loss_type", LOSS_TYPES), ("lr_scheduler_type", LR_SCHEDULERS),
                              ("detail_level", tuple(DETAIL_LEVELS)), ("eval_detail_level", tuple(DETAIL_LEVELS))):
            if getattr(self, name) not in options:
                raise ValueError(f"TrainingConfig.{name} must be one of {', '.join(options)}, got {getattr(self, name)!r}")
        if self.num_iterations > 1 and self.use_lora and self.lora_dropout > 0:
            # the old and new log-probs of the clipped ratio must come from identical forward
            # passes; with dropout they differ even before the first update
            raise ValueError(f"TrainingConfig.lora_dropout must be 0 when num_iterations > 1 (got "
                             f"{self.lora_dropout}): the policy ratio needs dropout-free passes")
        if self.num_iterations > 1 and self.gradient_checkpointing:
            # transformers checkpoints layers only in training mode, and these passes run in eval mode
            raise ValueError("TrainingConfig.gradient_checkpointing needs num_iterations == 1: several updates "
                             "per rollout run the policy in eval mode (dropout-free), where transformers "
                             "does not checkpoint")

    # -- derived -----------------------------------------------------------------------------
    @property
    def prompts_per_iteration(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    @property
    def episodes_per_iteration(self) -> int:
        return self.prompts_per_iteration * self.group_size

    @property
    def total_iterations(self) -> int:
        return max(1, self.num_episodes // self.episodes_per_iteration)

    @property
    def updates_per_iteration(self) -> int:
        """Optimizer steps per iteration (the health rules' learning-rate clock, on either engine)."""
        return self.num_iterations

    def lr_factor(self):
        """The learning rate at an optimizer step, as a fraction of ``learning_rate`` (`optim.lr_factor`)."""
        from .optim import lr_factor

        return lr_factor(self)

    @property
    def reward_weights(self) -> Dict[str, float]:
        """The reward weights this config sets, by component name."""
        return {f[: -len("_weight")]: getattr(self, f) for f in REWARD_WEIGHT_FIELDS if getattr(self, f) is not None}

    # -- building from HPO params --------------------------------------------------------------
    def with_params(self, params: Mapping[str, Any]) -> "TrainingConfig":
        """A copy with sampled hyperparameters applied. A name that is no field, or a value
        function parameter while the value function is off, is an error: never dropped."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(k for k in params if k not in fields)
        if unknown:
            raise ValueError(f"parameters {unknown} map to nothing in TrainingConfig; "
                             "rename them or drop them from the search space")
        config = dataclasses.replace(self, **params)
        stray = [k for k in params if k in VALUE_FUNCTION_FIELDS]
        if stray and not config.include_value_function:
            raise ValueError(f"parameters {stray} tune the value function, which is off "
                             "(include_value_function=False)")
        return config

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class AgentConfig:
    """Which model the agent is, and where it runs.

    ``model_name`` is a Hugging Face hub name, a local folder, or ``"stateset-tiny"`` (the
    default), the locally built tiny model. ``device``: "auto" (CUDA when available),
    "cpu", "cuda", "cuda:N". ``dtype``: "auto" (bf16 on CUDA, fp32 on CPU), "float32",
    "bfloat16", "float16". ``model_init_kwargs``: more arguments to `from_pretrained`,
    TRL's name for them: ``quantization_config`` (bitsandbytes 4-bit or 8-bit, for QLoRA:
    trials must train LoRA adapters), ``attn_implementation``, ``revision`` (model_loading.py).
    """

    model_name: str = TINY_MODEL
    device: str = "auto"
    dtype: str = "auto"
    max_prompt_length: int = 512
    trust_remote_code: bool = False
    use_stub_model: bool = False  # the replaced system's stub model: here, the tiny local model
    model_init_kwargs: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        from .model_loading import checked_init_kwargs

        self.model_init_kwargs = checked_init_kwargs(self.model_init_kwargs)
        # (a string such as "no" would be truthy: transformers would take it as consent to run a
        # Hub repository's code)
        for name in ("use_stub_model", "trust_remote_code"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"AgentConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if self.use_stub_model and self.model_name != TINY_MODEL:
            raise ValueError(f"AgentConfig.use_stub_model=True means the tiny local model; it cannot go with "
                             f"model_name={self.model_name!r}")
        if not isinstance(self.model_name, str) or not self.model_name.strip():
            raise ValueError(f"AgentConfig.model_name must be a non-empty string, got {self.model_name!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"AgentConfig.dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu", "cuda") or
                                                    (self.device.startswith("cuda:") and self.device[5:].isdigit())):
            raise ValueError(f"AgentConfig.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if isinstance(self.max_prompt_length, bool) or not isinstance(self.max_prompt_length, int) \
                or self.max_prompt_length < 8:
            raise ValueError(f"AgentConfig.max_prompt_length must be an integer >= 8, got {self.max_prompt_length!r}")

