"""Customer service agent (the guide's Example 1): HPO, then train with the best parameters.

    python examples/customer_service.py [--smoke]
"""

import asyncio

from _common import budget, report

from stateset_hpo import HPOConfig, get_search_space
from stateset_hpo.grpo import (AgentConfig, CompositeReward, ConversationEnvironment, EngagementReward,
                               HelpfulnessReward, MultiTurnAgent, SafetyReward, TrainingConfig)
from stateset_hpo.hpo_trainer import GRPOHPOTrainer


async def main() -> None:
    n_trials, episodes, output_dir, settings = budget(__doc__)
    reward_function = CompositeReward([(HelpfulnessReward(), 0.4), (SafetyReward(), 0.3), (EngagementReward(), 0.3)])
    space = get_search_space("customer_service").subset(["learning_rate", "kl_penalty_coef", "helpfulness_weight",
                                                          "safety_weight", "engagement_weight"])
    trainer = GRPOHPOTrainer(
        agent=MultiTurnAgent(AgentConfig()),
        environment=ConversationEnvironment("customer_service"),
        reward_function=reward_function,
        base_config=TrainingConfig(num_episodes=episodes, group_size=4, per_device_train_batch_size=2,
                                   max_new_tokens=24),
        hpo_config=HPOConfig(backend="optuna", search_space=space, n_trials=n_trials, objective_metric="eval_reward",
                             output_dir=output_dir or "./hpo_results/customer_service",
                             optuna_config={"sampler": "tpe", "pruner": "median", "n_warmup_steps": 2},
                             **settings),
    )
    summary = await trainer.optimize()
    report(summary)
    agent = await trainer.train_with_best_params(full_episodes=episodes * 2)
    print(agent.respond([{"role": "user", "content": "i want a refund for my lamp ."}]))


if __name__ == "__main__":
    asyncio.run(main())
