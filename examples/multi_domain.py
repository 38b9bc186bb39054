"""Multi-domain comparison (the guide's Example 2): one study per domain, best of each.

    python examples/multi_domain.py [--smoke]
"""

import asyncio
from pathlib import Path

from _common import budget

from stateset_hpo import HPOConfig, get_search_space
from stateset_hpo.grpo import AgentConfig, ConversationEnvironment, MultiTurnAgent, TrainingConfig, domain_reward
from stateset_hpo.hpo_trainer import GRPOHPOTrainer


async def main() -> None:
    n_trials, episodes, output_dir, settings = budget(__doc__)
    results = {}
    for domain in ["customer_service", "technical_support", "sales_assistant"]:
        space = get_search_space(domain).subset(["learning_rate", "kl_penalty_coef"])
        trainer = GRPOHPOTrainer(
            agent=MultiTurnAgent(AgentConfig()),
            environment=ConversationEnvironment(domain),
            reward_function=domain_reward(domain),
            base_config=TrainingConfig(num_episodes=episodes, group_size=4, per_device_train_batch_size=2,
                                       max_new_tokens=24),
            hpo_config=HPOConfig(backend="optuna", search_space=space, n_trials=max(2, n_trials // 2),
                                 objective_metric="eval_reward",
                                 output_dir=str(Path(output_dir or "./hpo_results/multi_domain") / domain),
                                 **settings),
        )
        summary = await trainer.optimize()
        results[domain] = {"best_params": summary.best_params, "best_metric": summary.best_metric}
    for domain, result in results.items():
        print(f"{domain}: {result['best_metric']:.4f}  {result['best_params']}")


if __name__ == "__main__":
    asyncio.run(main())
