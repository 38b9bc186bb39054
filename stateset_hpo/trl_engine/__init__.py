"""A second trial engine: TRL's `GRPOTrainer`, for teams that already train with it.

A study's trials run TRL instead of our engine when the spec carries a `TRLTask`
(`TrialSpec.for_trl`, or the CLI's ``--engine trl``); everything after the trial (schedulers,
pruners, health rules, checkpoints, cost, validation, reports) is the same. config.py maps a
trial's parameters onto GRPOConfig, task.py reads the user's prompts and reward functions,
evaluation.py is the held-out yardstick, run.py the trial itself.
"""

import warnings
from typing import Any, Dict, Mapping, Optional

from .config import TRLTrainingConfig
from .task import TRLTask

# TRL 1.16 sets `gradient_checkpointing`, which transformers 5 renamed: a warning on every trial
# that neither the user nor we can act on
warnings.filterwarnings("ignore", message=".*gradient_checkpointing.* is deprecated", category=FutureWarning)


def grpo_args_of(args: Optional[Any]) -> Dict[str, Any]:
    """A base GRPOConfig as a dict of its settings: a dict as it is, a `GRPOConfig` as the
    fields that differ from TRL's defaults (its output_dir and logging are the engine's)."""
    if args is None:
        return {}
    if isinstance(args, Mapping):
        return dict(args)
    import dataclasses

    from .config import ENGINE_FIELDS, grpo_fields

    # TRL's defaults are built with the user's precision (its default, bf16, cannot be built on a
    # CPU), and the precision settings count where they differ from their declared defaults
    precision = {f.name: f.default for f in dataclasses.fields(args) if f.name in ("use_cpu", "bf16", "fp16")}
    defaults = type(args)(output_dir=args.output_dir, **{name: getattr(args, name) for name in precision})

    def default(name: str) -> Any:
        return precision[name] if name in precision else getattr(defaults, name)

    return {name: getattr(args, name) for name in grpo_fields() if name not in ENGINE_FIELDS
            and name in args.__dict__ and getattr(args, name) != default(name)
            and not dataclasses.is_dataclass(getattr(args, name))}


__all__ = ["TRLTask", "TRLTrainingConfig", "grpo_args_of"]
