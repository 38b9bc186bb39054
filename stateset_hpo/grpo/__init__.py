"""The GRPO trial engine: a multi-turn agent trained against composite rewards.

agent (model + tokenizer) -> environment (scenarios, user simulator) -> rewards ->
trainer (rollout, advantages, clipped surrogate + KL, value head/GAE) -> per-iteration metrics.
"""

from .agent import MultiTurnAgent
from .config import AgentConfig, TrainingConfig
from .environment import ConversationEnvironment
from .judge import JudgeReward
from .rewards import (CompositeReward, ConcisenessReward, CorrectnessReward, EngagementReward, HelpfulnessReward,
                      PersuasivenessReward, SafetyReward, TaskCompletionReward, default_reward, domain_reward,
                      make_reward)
from .scenarios import DOMAINS, Scenario, get_scenarios
from .tiny_model import TINY_MODEL, build_tiny_model
from .trainer import DivergenceError, MultiTurnGRPOTrainer

__all__ = [
    "AgentConfig", "CompositeReward", "ConcisenessReward", "ConversationEnvironment", "CorrectnessReward",
    "DOMAINS", "DivergenceError", "EngagementReward", "HelpfulnessReward", "JudgeReward", "MultiTurnAgent",
    "MultiTurnGRPOTrainer", "PersuasivenessReward", "SafetyReward", "Scenario", "TINY_MODEL",
    "TaskCompletionReward", "TrainingConfig", "build_tiny_model", "default_reward", "domain_reward",
    "get_scenarios", "make_reward",
]
