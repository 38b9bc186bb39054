"""Your own task: an order-status bot (a domain the built-in scenarios do not cover), its
scenarios in the guide's shape in a JSONL file, scored by a TRL-style reward function next to
two built-in rewards (examples/order_status.py). The tiny local model is built from the task's
own texts (once, cached), so its words are not unknown tokens. The study's answer goes through
validation: the recommended learning rate against the baseline, re-trained on new seeds and
scored on test scenarios neither run trained on nor was selected on.

    python examples/bring_your_own_task.py [--smoke]
    # the same task from the command line (run from the repository root, so that the module imports):
    python -m stateset_hpo.launch --task examples.order_status:make_task --space-file examples/data/lr_space.yaml \\
        --backend optuna --n-trials 6 --set num_episodes=192 --set per_device_train_batch_size=4
"""

import asyncio
from pathlib import Path

from _common import budget, report
from order_status import make_task

from stateset_hpo import HPOConfig, SearchSpace
from stateset_hpo.grpo import AgentConfig, MultiTurnAgent, TrainingConfig
from stateset_hpo.hpo_trainer import GRPOHPOTrainer

# the baseline (the default, 3e-4) learns too slowly for this budget: the study should say so
SPACE = SearchSpace.from_yaml((Path(__file__).parent / "data" / "lr_space.yaml").read_text())


async def main() -> None:
    n_trials, episodes, output_dir, settings = budget(__doc__)
    environment, reward = make_task()
    trainer = GRPOHPOTrainer(
        agent=MultiTurnAgent(AgentConfig()), environment=environment, reward_function=reward,
        base_config=TrainingConfig(learning_rate=3e-4, num_episodes=episodes * 2, group_size=4,
                                   per_device_train_batch_size=4, max_new_tokens=32, warmup_ratio=0.0),
        hpo_config=HPOConfig(backend="optuna", search_space=SPACE, n_trials=n_trials, objective_metric="eval_reward",
                             output_dir=output_dir or "./hpo_results/bring_your_own_task",
                             seed=0, optuna_config={"sampler": "tpe"},
                             # the recommendation against the baseline on 5 new seeds each
                             **{"validation_top_k": 1, "validation_seeds": 5, **settings}),
    )
    summary = await trainer.optimize()
    report(summary)


if __name__ == "__main__":
    asyncio.run(main())
