"""Custom objective (the guide's "Custom Objective Function"): 0.7 reward + 0.3 safety.

Two ways, both shown: subclass GRPOHPOTrainer and override _objective_function (the trial
then reports once, at its end), or declare a derived metric that every iteration reports
(so pruners can act on it).

    python examples/custom_objective.py [--smoke]
"""

import asyncio
from pathlib import Path

from _common import budget, report

from stateset_hpo import HPOConfig
from stateset_hpo.grpo import (AgentConfig, ConversationEnvironment, MultiTurnAgent, MultiTurnGRPOTrainer,
                               TrainingConfig, domain_reward)
from stateset_hpo.hpo_trainer import GRPOHPOTrainer
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec


class MyHPOTrainer(GRPOHPOTrainer):
    async def _objective_function(self, params):
        config = self._create_training_config(params)
        trainer = MultiTurnGRPOTrainer(MultiTurnAgent(self.agent.config), self.environment, self.reward_function,
                                       config)
        metrics = await trainer.train()
        return 0.7 * metrics.get("reward", 0.0) + 0.3 * metrics.get("safety_score", 0.0)


async def main() -> None:
    n_trials, episodes, output_dir, settings = budget(__doc__)
    output = Path(output_dir or "./hpo_results/custom_objective")
    base = TrainingConfig(num_episodes=episodes, group_size=4, per_device_train_batch_size=2, max_new_tokens=24)
    environment, reward = ConversationEnvironment("customer_service"), domain_reward("customer_service")
    trainer = MyHPOTrainer(agent=MultiTurnAgent(AgentConfig()), environment=environment, reward_function=reward,
                           base_config=base,
                           hpo_config=HPOConfig(backend="optuna", search_space_name="conservative",
                                                n_trials=n_trials, objective_metric="composite_score",
                                                output_dir=str(output / "subclass"), **settings))
    report(await trainer.optimize())

    spec = TrialSpec(environment=environment, reward=reward, base_config=base,
                     derived_metrics={"composite_score": lambda m: 0.7 * m["reward"] + 0.3 * m["safety_score"]})
    config = HPOConfig(backend="optuna", search_space_name="conservative", n_trials=n_trials,
                       objective_metric="composite_score", output_dir=str(output / "derived"), **settings)
    report(await asyncio.to_thread(run_study, config, spec))


if __name__ == "__main__":
    asyncio.run(main())
