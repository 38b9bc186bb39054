"""A study on a Ray cluster: each trial a Ray Train worker group, ASHA pruning, BayesOpt.

Locally this starts a Ray instance of its own; on a cluster, run it as a job
(`ray job submit --address http://HEAD:8265 --working-dir . -- python examples/distributed.py`)
or set RAY_ADDRESS. With GPUs, set gpu_per_trial (and workers_per_trial for data-parallel
trials). cluster/README.md sets up such a cluster on AWS, GCP or KubeRay (GPU nodes started on
demand: ray_config autoscaling, a shared storage_path).

    python examples/distributed.py [--smoke]
"""

from _common import budget, report

from stateset_hpo import HPOConfig, get_search_space
from stateset_hpo.grpo import ConversationEnvironment, TrainingConfig, domain_reward
from stateset_hpo.study import run_study
from stateset_hpo.trial import TrialSpec


def main() -> None:
    n_trials, episodes, output_dir, settings = budget(__doc__)
    spec = TrialSpec(environment=ConversationEnvironment("technical_support"),
                     reward=domain_reward("technical_support"),
                     base_config=TrainingConfig(num_episodes=episodes, group_size=4, per_device_train_batch_size=2,
                                                max_new_tokens=24))
    space = get_search_space("technical_support").subset(["learning_rate", "kl_penalty_coef", "correctness_weight"])
    # --smoke runs trials in the Tune trial process ("direct"): seconds instead of ~20 s of
    # worker-group start-up per trial; the real run gives each trial a Ray Train worker group.
    execution = "direct" if settings else "train"
    config = HPOConfig(backend="ray_tune", search_space=space, n_trials=n_trials, n_parallel_trials=2,
                       cpu_per_trial=1, objective_metric="eval_reward",
                       output_dir=output_dir or "./hpo_results/distributed",
                       # grace_period is in episodes: two iterations of 2 prompts x 4 conversations
                       ray_config={"scheduler": "asha", "search_alg": "bayesopt", "grace_period": 16,
                                   "execution": execution, "workers_per_trial": 1}, **settings)
    report(run_study(config, spec))


if __name__ == "__main__":
    main()
