"""Memory of long studies and of trials that share one loaded base model, measured in one run.

  warm worker     RSS of one process running N one-iteration GRPO trials in turn (Optuna
                  backend, warm trials), after each trial: from the first trial to the end, and
                  the growth per trial over the second half (a leak grows steadily; the first
                  trials' growth is the allocator's and the caches' warm-up).
  Tune driver     the same for the driver's RSS over M objective trials under Ray Tune (a
                  function of the parameters, no model; the driver keeps every trial's result,
                  so some growth per trial is expected).
  k at once       peak RSS above the process's start while k LoRA trials train at once in
                  threads on a larger random model (Optuna n_jobs=k): sharing the loaded base
                  weights (warm) against each trial loading its own copy (cold, as before).
  checkpoint      the size of a LoRA trial's checkpoint of that model (adapter, optimizer
                  state, RNG, history: no base weights) against its base weights.

CPU memory (RSS) only: GPU memory over warm trials is measured by bench/gpu_smoke.py. Goals,
stated before the first recorded run: over the second half, at most 0.05 MiB per trial in the
warm worker and 0.1 MiB per trial in the driver; sharing the base model saves at least half of
the k-1 extra copies of its weights.

    python bench/memory.py [--trials 200] [--tune-trials 1000] [--at-once 4]
"""

import argparse
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import psutil

warnings.filterwarnings("ignore")

from harness import Record  # noqa: E402

RSS = psutil.Process().memory_info
MIB = 2 ** 20


class RssAfterEachTrial:
    """A study callback: the process's RSS (bytes) when each trial ends."""

    def __init__(self):
        self.rss = []

    def on_trial_end(self, result):
        self.rss.append(RSS().rss)


def growth(rss):
    """RSS (MiB) after the first trial, after the last, and the growth per trial (MiB) over the
    second half of the trials (least-squares slope)."""
    import numpy as np

    half = [r / MIB for r in rss[len(rss) // 2:]]
    slope = float(np.polyfit(np.arange(len(half)), half, 1)[0]) if len(half) > 1 else 0.0
    return rss[0] / MIB, rss[-1] / MIB, slope


def one_iteration_spec(model_name=None):
    from stateset_hpo.grpo import AgentConfig, ConversationEnvironment, TrainingConfig, domain_reward
    from stateset_hpo.trial import TrialSpec

    agent = AgentConfig(model_name=model_name) if model_name else AgentConfig()
    return TrialSpec(environment=ConversationEnvironment("customer_service"), reward=domain_reward("customer_service"),
                     agent_config=agent,
                     base_config=TrainingConfig(num_episodes=2, per_device_train_batch_size=1, group_size=2,
                                                max_new_tokens=8, include_value_function=False))


def lr_space():
    from stateset_hpo import SearchDimension, SearchSpace, SearchSpaceType

    return SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-5, high=1e-3)])


def optuna_config(folder, n, parallel=1):
    from stateset_hpo import HPOConfig

    return HPOConfig(backend="optuna", search_space=lr_space(), n_trials=n, output_dir=folder, verbose=False,
                     save_plots=False, validation_top_k=0, n_parallel_trials=parallel,
                     seed=0, optuna_config={"sampler": "random", "pruner": "none"})


def warm_worker(n, folder):
    from stateset_hpo.study import run_study

    rss = RssAfterEachTrial()
    run_study(optuna_config(folder, n), one_iteration_spec(), callbacks=[rss])
    return growth(rss.rss)


def tune_driver(n, folder):
    from stateset_hpo import HPOConfig
    from stateset_hpo.study import run_study
    from stateset_hpo.trial import TrialSpec

    config = HPOConfig(backend="ray_tune", search_space=lr_space(), n_trials=n, output_dir=folder, verbose=False,
                       save_plots=False, validation_top_k=0, objective_metric="score", cpu_per_trial=1,
                       n_parallel_trials=2,
                       ray_config={"execution": "direct", "scheduler": "fifo", "search_alg": "random"})
    rss = RssAfterEachTrial()
    run_study(config, TrialSpec(objective=lambda p: {"score": -abs(p["learning_rate"] - 1e-4)}), callbacks=[rss])
    return growth(rss.rss)


def larger_model(folder):
    """A randomly initialised Llama of ~26M parameters with the tiny model's tokenizer: big
    enough that copies of its weights show in RSS."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from stateset_hpo.grpo.tiny_model import build_tiny_model

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model())
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=512, intermediate_size=2048, num_hidden_layers=8,
                         num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=256,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, sum(p.numel() * p.element_size() for p in model.parameters())


def at_once(k, folder, model_name, warm):
    """Peak RSS above the start while k trials of the larger model train at once."""
    import stateset_hpo.trial as trial_module
    from stateset_hpo.grpo import model_pool
    from stateset_hpo.study import run_study

    model_pool.release_all()
    agent_for_trial = trial_module.agent_for_trial
    if not warm:  # every trial loads its own copy, as before warm trials
        trial_module.agent_for_trial = lambda config, warm: agent_for_trial(config, warm=False)
    start, peak, done = RSS().rss, [0], threading.Event()

    def sample():
        while not done.wait(0.02):
            peak[0] = max(peak[0], RSS().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run_study(optuna_config(folder, k, parallel=k), one_iteration_spec(model_name))
    finally:
        done.set()
        sampler.join()
        trial_module.agent_for_trial = agent_for_trial
        model_pool.release_all()
    return peak[0] - start


def checkpoint_size(model_name, folder):
    """Bytes of a LoRA trial's checkpoint after one iteration."""
    from stateset_hpo.trial import run_trial

    sizes = []

    def report(metrics, trainer):
        trainer.save_checkpoint(folder)
        sizes.append(sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()))
        return True

    run_trial(one_iteration_spec(model_name), {"learning_rate": 1e-4}, report)
    return sizes[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--tune-trials", type=int, default=1000)
    parser.add_argument("--at-once", type=int, default=4)
    args = parser.parse_args()
    if min(args.trials, args.tune_trials) < 4 or args.at_once < 2:
        parser.error("--trials and --tune-trials must be at least 4, --at-once at least 2")
    record = Record("memory", "CPU memory (RSS) of long studies, and of trials that share one loaded base model",
                    vars(args))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        first, last, slope = warm_worker(args.trials, f"{folder}/warm")
        rows.append([f"warm worker, {args.trials} GRPO trials", f"{first:.0f}", f"{last:.0f}", f"{slope:.4f}"])
        record.goal("warm worker: MiB of RSS per trial over the second half", slope, 0.05, at_least=False, digits=4)

        model, size = larger_model(f"{folder}/model")
        cold = at_once(args.at_once, f"{folder}/cold", model, warm=False)
        warm = at_once(args.at_once, f"{folder}/shared", model, warm=True)
        saved = checkpoint_size(model, f"{folder}/checkpoint")

        from stateset_hpo.search.ray.connect import connect
        import ray

        connect(None, num_cpus=2)
        try:
            first, last, driver_slope = tune_driver(args.tune_trials, f"{folder}/tune")
        finally:
            ray.shutdown()
        rows.append([f"Tune driver, {args.tune_trials} objective trials", f"{first:.0f}", f"{last:.0f}",
                     f"{driver_slope:.4f}"])
    record.table("RSS after the first trial and after the last, MiB, and the growth per trial over the second half",
                 ["process", "after the first", "after the last", "MiB per trial"], rows)
    copies = (args.at_once - 1) * size
    record.table(f"{args.at_once} LoRA trials at once on a {size / MIB:.0f} MiB model (peak RSS above the start)",
                 ["way", "MiB"], [["each trial loads its own copy", f"{cold / MIB:.0f}"],
                                  ["one shared base model", f"{warm / MIB:.0f}"],
                                  ["saved", f"{(cold - warm) / MIB:.0f}"],
                                  [f"{args.at_once - 1} copies of the weights", f"{copies / MIB:.0f}"],
                                  ["a LoRA trial's checkpoint (adapter, optimizer state; no base weights)",
                                   f"{saved / MIB:.1f}"]])
    record.goal("Tune driver: MiB of RSS per trial over the second half", driver_slope, 0.1, at_least=False, digits=4)
    record.goal("shared base model: share of the extra copies' memory saved", (cold - warm) / copies, 0.5)
    return record.finish()


if __name__ == "__main__":
    sys.exit(main())
