"""Time to a target held-out score: our study against Ray Tune + TRL wired by hand, side by side.

The same study both ways: the tiny model with a LoRA adapter (r 16, alpha 32, all linear
layers), single-turn customer-service prompts, groups of 8 completions of up to 32 tokens, one
prompt per optimizer step; learning rate and KL coefficient searched by Ray Tune's random
search with seed 0 or ``--seed`` (the same configurations in the same order), N trials of S steps, two at a
time, one CPU each, ASHA on the held-out score reported every E steps (grace one report,
reduction factor 3). The held-out score is the same function for both: one greedy reply per
selection-split scenario, scored by our reward (the engine's `evaluate("selection")`; a TRL
model is evaluated by merging its adapter into a copy).

  by hand  a Tune function trainable running TRL's GRPOTrainer, reporting from a callback
  ours     run_study on the Ray backend (direct execution: warm trial processes)

Prints, for each, the best score and when (seconds from the study's start) the study's best
so far first reached the target: the lower of the two final bests, so both reach it; and the
untrained model's score, so the target is seen to be above it. Goal: ours >= 5x faster.

    pip install -e '.[bench]'; python bench/time_to_target.py [--trials 8] [--steps 32] [--every 4] [--seed 0]
"""

import argparse
import copy
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

GROUP, MAX_TOKENS = 8, 32
DOMAIN = "customer_service"


def engine_config(steps, every, **params):
    from stateset_hpo.grpo import TrainingConfig

    return TrainingConfig(num_episodes=GROUP * steps, per_device_train_batch_size=1, group_size=GROUP,
                          max_new_tokens=MAX_TOKENS, eval_max_new_tokens=MAX_TOKENS, eval_every=every,
                          include_value_function=False, lora_r=16, lora_alpha=32, lora_dropout=0.0,
                          warmup_ratio=0.0, **params)


def single_turn():
    from stateset_hpo.grpo import ConversationEnvironment, domain_reward

    return ConversationEnvironment(DOMAIN, max_turns=1), domain_reward(DOMAIN)


def held_out_score(model, tokenizer) -> float:
    """The engine's selection-split evaluation of a plain (adapter-merged) model."""
    import torch

    from stateset_hpo.grpo import MultiTurnAgent, MultiTurnGRPOTrainer

    agent = MultiTurnAgent()
    agent.model, agent.tokenizer, agent.device = model.eval(), tokenizer, model.device
    environment, reward = single_turn()
    with torch.random.fork_rng():  # the trainer seeds torch; the TRL run's own sampling goes on undisturbed
        # a fresh adapter starts at zero: the trainer evaluates exactly the model it is given
        trainer = MultiTurnGRPOTrainer(agent, environment, reward, engine_config(1, 1))
        return trainer.evaluate("selection")["eval_reward"]


def space():
    from stateset_hpo import SearchDimension, SearchSpace, SearchSpaceType

    L = SearchSpaceType.LOGUNIFORM
    return SearchSpace([SearchDimension("learning_rate", L, low=1e-6, high=1e-3, default=1e-5),
                        SearchDimension("kl_penalty_coef", L, low=1e-3, high=1e-1, default=0.04)])


class Stamps:
    """(seconds since the study began, score) of every report the driver receives."""

    def __init__(self, metric):
        self.metric, self.start, self.points = metric, time.perf_counter(), []

    def add(self, metrics):
        if self.metric in metrics:
            self.points.append((time.perf_counter() - self.start, metrics[self.metric]))

    def best(self):
        return max(score for _, score in self.points)

    def time_to(self, target):
        return next((t for t, score in sorted(self.points) if score >= target - 1e-12), None)


def trl_trial(config, steps, every):
    """What a user writes by hand: TRL's GRPOTrainer in a Tune function, reporting every ``every`` steps."""
    from datasets import Dataset
    from peft import LoraConfig
    from ray import tune
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from stateset_hpo.grpo import build_tiny_model
    from trl_common import trl_prompts_and_reward

    path = str(build_tiny_model())
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompts, reward_func = trl_prompts_and_reward(DOMAIN)

    class Report(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every == 0:
                merged = copy.deepcopy(model).merge_and_unload()
                tune.report({"score": held_out_score(merged, tokenizer), "step": state.global_step})

    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(output_dir=out, use_cpu=True, per_device_train_batch_size=GROUP, num_generations=GROUP,
                          max_completion_length=MAX_TOKENS, beta=config["kl_penalty_coef"],
                          learning_rate=config["learning_rate"], max_steps=steps, report_to="none",
                          save_strategy="no", logging_strategy="no", temperature=1.0, top_p=1.0, top_k=0, seed=0,
                          lr_scheduler_type="constant")
        GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(path), reward_funcs=reward_func, args=args,
                    processing_class=tokenizer, train_dataset=Dataset.from_list(prompts * steps),
                    peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                           task_type="CAUSAL_LM"),
                    callbacks=[Report()]).train()


def by_hand(n, steps, every, storage, seed):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    stamps = Stamps("score")

    class Record(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            stamps.add(result)

    trainable = tune.with_resources(tune.with_parameters(trl_trial, steps=steps, every=every), {"cpu": 1})
    tune.Tuner(trainable, param_space=space().to_tune(),
               tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=n, max_concurrent_trials=2,
                                           search_alg=BasicVariantGenerator(points_to_evaluate=[space().baseline()],
                                                                                  random_state=seed, max_concurrent=2),
                                           scheduler=ASHAScheduler(grace_period=1, reduction_factor=3,
                                                                   max_t=steps // every)),
               run_config=tune.RunConfig(storage_path=storage, name="by_hand", callbacks=[Record()],
                                         verbose=0)).fit()
    return stamps


def ours(n, steps, every, folder, seed):
    from stateset_hpo import HPOConfig
    from stateset_hpo.study import run_study
    from stateset_hpo.trial import TrialSpec

    stamps = Stamps("eval_reward")

    class Record:
        def on_trial_result(self, trial_id, metrics):
            stamps.add(metrics)

    environment, reward = single_turn()
    config = HPOConfig(backend="ray_tune", search_space=space(), n_trials=n, output_dir=folder, verbose=False,
                       save_plots=False, validation_top_k=0, cpu_per_trial=1, n_parallel_trials=2,
                       ray_config={"execution": "direct", "scheduler": "asha", "search_alg": "random", "seed": seed,
                                   "grace_period": GROUP * every, "reduction_factor": 3})
    run_study(config, TrialSpec(environment=environment, reward=reward, base_config=engine_config(steps, every)),
              callbacks=[Record()])
    return stamps


def untrained_score():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from stateset_hpo.grpo import build_tiny_model

    path = str(build_tiny_model())
    return held_out_score(AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path))


def main() -> None:
    import ray

    from stateset_hpo.search.ray.connect import connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="the random search's seed (both studies)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        connect(None, num_cpus=2, runtime_env={"env_vars": {"PYTHONPATH": __file__.rsplit("/", 1)[0]}})
        try:
            start = time.perf_counter()
            hand = by_hand(args.trials, args.steps, args.every, folder, args.seed)
            hand_wall = time.perf_counter() - start
            start = time.perf_counter()
            mine = ours(args.trials, args.steps, args.every, f"{folder}/ours", args.seed)
            our_wall = time.perf_counter() - start
        finally:
            ray.shutdown()
    target = min(hand.best(), mine.best())
    print(f"{args.trials} trials of {args.steps} steps, held-out score every {args.every}; untrained model: "
          f"{untrained_score():.4f}; target (the lower best): {target:.4f}")
    print(f"{'':20s} {'best':>7s} {'first report s':>14s} {'s to target':>11s} {'study s':>8s}")
    for name, stamps, wall in (("Ray Tune + TRL", hand, hand_wall), ("ours (direct)", mine, our_wall)):
        print(f"{name:20s} {stamps.best():7.4f} {min(t for t, _ in stamps.points):14.1f} "
              f"{stamps.time_to(target):11.1f} {wall:8.0f}")
    print(f"time to target, by hand / ours: {hand.time_to(target) / mine.time_to(target):.1f}x")


if __name__ == "__main__":
    main()
