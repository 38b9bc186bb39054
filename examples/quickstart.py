"""Quick start (the guide's "Quick HPO"): one call, the tiny local model, the Optuna backend.

    python examples/quickstart.py            # 6 trials, about two minutes on a laptop CPU
    python examples/quickstart.py --smoke    # 2 tiny trials
"""

import asyncio

from _common import budget, report

from stateset_hpo.grpo import AgentConfig, ConversationEnvironment, MultiTurnAgent, TrainingConfig, default_reward
from stateset_hpo.hpo_trainer import quick_hpo


async def main() -> None:
    n_trials, episodes, output_dir, settings = budget(__doc__)
    summary = await quick_hpo(
        agent=MultiTurnAgent(AgentConfig()),            # or AgentConfig(model_name="Qwen/Qwen2.5-0.5B-Instruct")
        environment=ConversationEnvironment("customer_service"),
        reward_function=default_reward(),
        base_config=TrainingConfig(num_episodes=episodes, group_size=4, per_device_train_batch_size=2,
                                   max_new_tokens=24),
        n_trials=n_trials,
        search_space_name="conservative",
        output_dir=output_dir or "./hpo_results/quickstart",
        **settings,
    )
    report(summary)
    print(f"Best params: {summary.best_params}")


if __name__ == "__main__":
    asyncio.run(main())
