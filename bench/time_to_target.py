"""Time to a target held-out score: our study against Ray Tune + TRL wired by hand, over seeds.

The same study both ways: the tiny model with a LoRA adapter (r 16, alpha 32, all linear
layers, no dropout), single-turn customer-service prompts, groups of 8 completions of up to 32
tokens, one prompt per optimizer step, fp32 and no gradient checkpointing on both sides;
learning rate (1e-7 to 1e-2: wide, so that many configurations do not learn and the target
takes search to reach) and KL coefficient searched by Ray Tune's random search with the same
seed (the same configurations in the same order), N trials of S steps, two at a time, one CPU
each, ASHA on the held-out score reported every E steps (grace one report, reduction factor 3).
The held-out score is the same function for both: one greedy reply per selection-split
scenario, scored by our reward (the engine's `evaluate("selection")`).

  by hand  what a competent Ray + TRL user writes: a Tune function trainable running TRL's
           GRPOTrainer (`disable_dropout=True`, fp32, checkpointing off like ours), reporting
           from a callback, with `reuse_actors=True` (one process per worker, imports paid once)
           and an evaluator built once per process that takes the adapter's weights at each
           report (no copy of the model)
  ours     run_study on the Ray backend (`direct` execution: warm trial processes)

Per seed (the two studies in alternating order): the untrained model's score, the target (the
lower of the two studies' best, so both reach it), the seconds each took until its best so far
first reached the target and which of its trials (in start order) got there, and the whole
study's seconds. The ratio is by hand / ours of the seconds to target; its median over seeds is
the figure. Goal: >= 3x.

    pip install -e '.[bench]'; python bench/time_to_target.py [--seeds 5] [--trials 8] [--steps 32] [--every 4]
"""

import argparse
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

from harness import Record, shown, spread  # noqa: E402

GROUP, MAX_TOKENS, GOAL = 8, 32, 3.0
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


class Evaluator:
    """The engine's selection-split evaluation over one base model with a LoRA adapter of the
    same shape as the trained one; `score` loads the trained adapter's weights into it (a few
    MiB), so no model is copied or merged per report."""

    def __init__(self):
        from stateset_hpo.grpo import MultiTurnAgent, MultiTurnGRPOTrainer

        environment, reward = single_turn()
        self.trainer = MultiTurnGRPOTrainer(MultiTurnAgent(), environment, reward, engine_config(1, 1))

    def score(self, trained=None) -> float:
        """``trained``: a PEFT model (TRL's) whose adapter to evaluate; None: the base model."""
        import torch
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        model = self.trainer.agent.model
        if trained is not None:
            set_peft_model_state_dict(model, get_peft_model_state_dict(trained))
        with torch.random.fork_rng():  # the TRL run's own sampling goes on undisturbed
            return self.trainer.evaluate("selection")["eval_reward"]


def space():
    from stateset_hpo import SearchDimension, SearchSpace, SearchSpaceType

    L = SearchSpaceType.LOGUNIFORM
    return SearchSpace([SearchDimension("learning_rate", L, low=1e-7, high=1e-2, default=1e-5),
                        SearchDimension("kl_penalty_coef", L, low=1e-3, high=1e-1, default=0.04)])


class Stamps:
    """(seconds since the study began, score, trial) of every report the driver receives."""

    def __init__(self, metric):
        self.metric, self.start, self.points, self.trials = metric, time.perf_counter(), [], []

    def add(self, metrics, trial):
        if self.metric in metrics:
            self.points.append((time.perf_counter() - self.start, metrics[self.metric], trial))
            if trial not in self.trials:
                self.trials.append(trial)

    def best(self):
        return max((score for _, score, _ in self.points), default=float("-inf"))

    def reached(self, target):
        """(seconds, which trial in the order they first reported, from 1) of the first report >= target."""
        t, _, trial = next(p for p in sorted(self.points) if p[1] >= target - 1e-12)
        return t, self.trials.index(trial) + 1


EVALUATOR = []  # one per trial process, kept across the trials Tune runs in it (reuse_actors)


def trl_trial(config, steps, every):
    """What a user writes by hand: TRL's GRPOTrainer in a Tune function, reporting every ``every`` steps."""
    from datasets import Dataset
    from peft import LoraConfig
    from ray import tune
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from stateset_hpo.grpo import build_tiny_model
    from trl_common import trl_prompts_and_reward

    if not EVALUATOR:
        EVALUATOR.append(Evaluator())
    path = str(build_tiny_model())
    prompts, reward_func = trl_prompts_and_reward(DOMAIN)

    class Report(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every == 0:
                tune.report({"score": EVALUATOR[0].score(model), "step": state.global_step})

    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(output_dir=out, use_cpu=True, bf16=False, gradient_checkpointing=False,
                          disable_dropout=True, per_device_train_batch_size=GROUP, num_generations=GROUP,
                          max_completion_length=MAX_TOKENS, beta=config["kl_penalty_coef"],
                          learning_rate=config["learning_rate"], max_steps=steps, report_to="none",
                          save_strategy="no", logging_strategy="no", temperature=1.0, top_p=1.0, top_k=0, seed=0,
                          lr_scheduler_type="constant", disable_tqdm=True)
        GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(path), reward_funcs=reward_func, args=args,
                    processing_class=AutoTokenizer.from_pretrained(path), train_dataset=Dataset.from_list(prompts * steps),
                    peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                           task_type="CAUSAL_LM"),
                    callbacks=[Report()]).train()


def by_hand(n, steps, every, storage, seed):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    from stateset_hpo.search.ray.space import to_tune

    stamps = Stamps("score")

    class Stamp(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            stamps.add(result, trial.trial_id)

    trainable = tune.with_resources(tune.with_parameters(trl_trial, steps=steps, every=every), {"cpu": 1})
    tune.Tuner(trainable, param_space=to_tune(space()),
               tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=n, max_concurrent_trials=2,
                                           reuse_actors=True,
                                           search_alg=BasicVariantGenerator(points_to_evaluate=[space().baseline()],
                                                                            random_state=seed, max_concurrent=2),
                                           scheduler=ASHAScheduler(grace_period=1, reduction_factor=3,
                                                                   max_t=steps // every)),
               run_config=tune.RunConfig(storage_path=storage, name="by_hand", callbacks=[Stamp()],
                                         verbose=0)).fit()
    return stamps


def ours(n, steps, every, folder, seed):
    from stateset_hpo import HPOConfig
    from stateset_hpo.study import run_study
    from stateset_hpo.trial import TrialSpec

    stamps = Stamps("eval_reward")

    class Stamp:
        def on_trial_result(self, trial_id, metrics):
            stamps.add(metrics, trial_id)

    environment, reward = single_turn()
    config = HPOConfig(backend="ray_tune", search_space=space(), n_trials=n, output_dir=folder, verbose=False,
                       save_plots=False, validation_top_k=0, cpu_per_trial=1, n_parallel_trials=2,
                       seed=seed, ray_config={"execution": "direct", "scheduler": "asha", "search_alg": "random",
                                              "grace_period": GROUP * every, "reduction_factor": 3})
    run_study(config, TrialSpec(environment=environment, reward=reward, base_config=engine_config(steps, every)),
              callbacks=[Stamp()])
    return stamps


def main() -> int:
    import ray

    from stateset_hpo.search.ray.connect import connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="random-search seeds, one pair of studies each")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--every", type=int, default=4)
    args = parser.parse_args()
    if min(args.seeds, args.trials, args.every) < 1 or args.steps < args.every:
        parser.error("--seeds, --trials and --every must be at least 1, --steps at least --every")
    record = Record("time_to_target", "seconds until a study's best held-out score first reaches a target: ours "
                    "against Ray Tune + TRL wired by hand as a competent user would, over search seeds", vars(args))
    untrained = Evaluator().score()
    rows, ratios = [], []
    with tempfile.TemporaryDirectory() as folder:
        connect(None, num_cpus=2, runtime_env={"env_vars": {"PYTHONPATH": __file__.rsplit("/", 1)[0]}})
        try:
            for seed in range(args.seeds):
                sides = {"hand": lambda: by_hand(args.trials, args.steps, args.every, f"{folder}/{seed}", seed),
                         "ours": lambda: ours(args.trials, args.steps, args.every, f"{folder}/ours{seed}", seed)}
                found = {}
                for name in (("hand", "ours") if seed % 2 == 0 else ("ours", "hand")):
                    start = time.perf_counter()
                    stamps = sides[name]()
                    found[name] = stamps, time.perf_counter() - start
                target = min(stamps.best() for stamps, _ in found.values())
                if target == float("-inf"):  # a study whose every trial stopped before its first score
                    rows.append([seed, "-", *(f"{found[n][0].best():.4f}" for n in ("hand", "ours")), "-", "-",
                                 *(f"{found[n][1]:.0f}" for n in ("hand", "ours")), "no score"])
                    print(rows[-1], flush=True)
                    continue
                (hand_t, hand_trial), (our_t, our_trial) = (found[n][0].reached(target) for n in ("hand", "ours"))
                ratios.append(hand_t / our_t)
                rows.append([seed, f"{target:.4f}", f"{found['hand'][0].best():.4f}", f"{found['ours'][0].best():.4f}",
                             f"{hand_t:.1f} (trial {hand_trial})", f"{our_t:.1f} (trial {our_trial})",
                             f"{found['hand'][1]:.0f}", f"{found['ours'][1]:.0f}", f"{ratios[-1]:.2f}"])
                print(rows[-1], flush=True)
        finally:
            ray.shutdown()
    record.table(f"{args.trials} trials of {args.steps} steps, held-out score every {args.every} steps; the "
                 f"untrained model scores {untrained:.4f}",
                 ["seed", "target", "best by hand", "best ours", "s to target by hand", "s to target ours",
                  "study s by hand", "study s ours", "by hand / ours"], rows)
    measured = spread(ratios) if ratios else {"median": 0.0, "min": 0.0, "max": 0.0, "n": 0}
    record.note(f"Time to target, by hand / ours, over the {len(ratios)} of {args.seeds} seeds where both studies "
                f"reported a score: {shown(measured)} (median (min-max)).")
    record.goal("time to target, by hand / ours, median over seeds", measured["median"], GOAL)
    return record.finish()


if __name__ == "__main__":
    sys.exit(main())
