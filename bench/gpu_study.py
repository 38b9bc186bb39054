"""GPU study: the design card on one GPU, a real Ray Tune study whose trials are Ray Train GPU
workers, and what rollouts cost as the model grows.

Part 1 (``study``), on a Qwen2.5-0.5B-shaped model with random weights in bf16 (no Hub on the
GPU machines) and LoRA: the same 4-trial Ray Tune study with ASHA and random search, run four
ways on the one GPU: each trial a Ray Train worker with a whole GPU (``execution=train``);
direct trials that Tune reuses, so trials after the first are warm (``execution=direct``); two
trials at once with half a GPU each, each process with its own copy of the model
(``gpu_per_trial=0.5``); and two trials packed in one process on one loaded model
(``trials_per_worker=2``). Per way: wall time, trials per hour, how trials ended, each trial's
peak GPU memory (its process's, measured in the trial) and the GPU memory allocated when each
trial started, which must not grow from trial to trial within a process. The warm study is also
validated, so the summary's verdict sentence is produced on the GPU.

Part 2 (``rollouts``, its own record ``gpu_rollouts``), at each ``--sizes`` model (default 0.5B and 1.5B, 3B if asked): 32
sampled completions of up to 64 tokens (8 for each of 4 prompts) from the model with a LoRA
adapter, three generation paths, ``--repeats`` interleaved: the merged copy used today (each
LoRA layer's weight cloned with the update folded in, for the length of the call), the unmerged
LoRA layers (peft's adapter runs beside the base layer, no copy), and the merged copy with
transformers' static cache (which transformers compiles on a GPU). Generated tokens/s and the
peak GPU memory a call adds above the loaded model. The path to keep is the one these figures
favour (docs/benchmarks.md); this bench decides nothing itself.

Goals, set before the first GPU run: every study ends with no failed trial; within a process,
no trial starts with more than 0.05 GiB more GPU memory allocated than that process's first
trial did. ``--tiny`` runs everything on a tiny model on a CPU to check the script (its record is
not kept). On the device machine (the bundle brings Ray: bench/gpu_bundle.sh):

    bash bench/gpu_study.sh --record-dir $OUT        [--parts study,rollouts] [--sizes 0.5b,1.5b]
    (or one part per call: --parts study, then --parts rollouts; copy the records into
    bench/results/ and run python bench/tables.py)
"""

import argparse
import contextlib
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import torch  # noqa: E402

from harness import RESULTS, Record, interleaved, shown, spread  # noqa: E402
from random_models import SHAPES, build_model  # noqa: E402
from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType  # noqa: E402
from stateset_hpo.grpo import AgentConfig, ConversationEnvironment, TrainingConfig, domain_reward  # noqa: E402
from stateset_hpo.grpo import agent as agent_module  # noqa: E402
from stateset_hpo.grpo.agent import MultiTurnAgent, SamplingSettings  # noqa: E402
from stateset_hpo.study import run_study  # noqa: E402
from stateset_hpo.trial import TrialSpec  # noqa: E402

DOMAIN, GROUP, PROMPTS, NEW_TOKENS, GROWTH = "customer_service", 8, 4, 64, 0.05
SPACE = SearchSpace([
    SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-6, high=1e-3, default=1e-5),
    SearchDimension("kl_penalty_coef", SearchSpaceType.LOGUNIFORM, low=1e-3, high=0.1, default=0.01),
])
# name: (execution, GPU per trial, trials at once, trials per worker process)
WAYS = {
    "Train workers, a GPU each": ("train", 1.0, 1, 1),
    "direct, warm trials": ("direct", 1.0, 1, 1),
    "2 trials at once, half a GPU each": ("direct", 0.5, 2, 1),
    "2 trials packed in one process": ("direct", 1.0, 2, 2),
}
SAMPLING = SamplingSettings(do_sample=True, temperature=1.0, top_k=50, top_p=0.95, max_new_tokens=NEW_TOKENS)


# measured inside each trial's process (derived metrics run where the trial trains)
def gpu_peak_gib(metrics):
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def gpu_allocated_gib(metrics):
    return torch.cuda.memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def trial_process(metrics):
    return float(os.getpid())


def study(folder: str, model: str, way: str, trials: int, cpus: int, validate: bool):
    execution, gpu, at_once, per_worker = WAYS[way]
    cuda = torch.cuda.is_available()
    spec = TrialSpec(agent_config=AgentConfig(model_name=model), environment=ConversationEnvironment(DOMAIN, max_turns=1),
                     reward=domain_reward(DOMAIN),
                     base_config=TrainingConfig(num_episodes=2 * 4 * GROUP, per_device_train_batch_size=4,
                                                group_size=GROUP, max_new_tokens=32, include_value_function=False,
                                                warmup_ratio=0.0),
                     derived_metrics={"gpu_peak_gib": gpu_peak_gib, "gpu_allocated_gib": gpu_allocated_gib,
                                      "trial_process": trial_process})
    config = HPOConfig(backend="ray_tune", search_space=SPACE, n_trials=trials, seed=0, verbose=False,
                       save_plots=False, output_dir=f"{folder}/way-{list(WAYS).index(way)}",
                       validation_top_k=1 if validate else 0, validation_seeds=2, dashboard_storage=None,
                       cpu_per_trial=cpus, gpu_per_trial=gpu if cuda else 0, n_parallel_trials=at_once,
                       ray_config={"execution": execution, "scheduler": "asha", "search_alg": "random",
                                   "trials_per_worker": per_worker})
    start = time.perf_counter()
    summary = run_study(config, spec)
    return summary, time.perf_counter() - start


def memory_growth(summary) -> float:
    """The most GPU GiB a trial started with above the first trial of its process (trials that
    take turns in a process: each ends before the next starts)."""
    first = {}
    growth = 0.0
    for result in sorted(summary.all_results, key=lambda r: r.ended_at or 0):
        if not result.history:
            continue
        process, allocated = result.history[0]["trial_process"], result.history[0]["gpu_allocated_gib"]
        first.setdefault(process, allocated)
        growth = max(growth, allocated - first[process])
    return growth


def part_study(record: Record, folder: str, model: str, trials: int, cpus: int) -> None:
    rows, failed, growth = [], 0, 0.0
    for way, (_, _, _, per_worker) in WAYS.items():
        summary, wall = study(folder, model, way, trials, cpus, validate=way == "direct, warm trials")
        peaks = [max(h["gpu_peak_gib"] for h in r.history) for r in summary.all_results if r.history]
        failed += summary.n_failed
        grew = memory_growth(summary) if per_worker == 1 else None  # (packed trials start side by side)
        growth = max(growth, grew or 0.0)
        rows.append([way, f"{wall:.0f}", f"{summary.n_trials / wall * 3600:.0f}",
                     f"{summary.n_successful} / {summary.n_pruned} / {summary.n_failed}",
                     " ".join(f"{p:.2f}" for p in peaks), "-" if grew is None else f"{grew:.3f}"])
        print(rows[-1], flush=True)
        if summary.validation:
            record.note(f"Verdict of the warm study, validated on the GPU: {summary.validation['sentence']}")
    # (one study per way, not repeats: four studies fill the GPU session's few minutes; its
    # figures are single runs, said so in the title, and the goals are pass/fail, not timings)
    record.table(f"A {trials}-trial Ray Tune study (ASHA, random search) four ways on one GPU, one run of each way",
                 ["way", "wall s", "trials / hour", "success / pruned / failed", "peak GPU GiB per trial",
                  "GiB more at a later trial's start"], rows)
    record.goal("failed trials over the four studies", failed, 0, at_least=False, digits=0)
    record.goal("most GPU GiB a trial started with above its process's first trial", growth, GROWTH, at_least=False,
                digits=3)


@contextlib.contextmanager
def unmerged_lora():
    """agent.generate with peft's LoRA layers as they are (bench only: no merged copy)."""
    merged = agent_module.without_lora_layers
    agent_module.without_lora_layers = lambda model, merge: contextlib.nullcontext()
    try:
        yield
    finally:
        agent_module.without_lora_layers = merged


@contextlib.contextmanager
def static_cache(model):
    config = model.generation_config
    before = getattr(config, "cache_implementation", None)
    config.cache_implementation = "static"
    try:
        yield
    finally:
        config.cache_implementation = before


def rollout_paths(agent, prompts, repeats: int):
    """{path: [(generated tokens/s, GPU GiB above the loaded model)] per repeat}."""
    cuda = torch.cuda.is_available()
    loaded = torch.cuda.memory_allocated() / 2**30 if cuda else 0.0

    def rollout(context):
        with context():
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            completions = agent.generate(prompts, SAMPLING)
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
        extra = torch.cuda.max_memory_allocated() / 2**30 - loaded if cuda else float("nan")
        return sum(map(len, completions)) / seconds, extra

    paths = {"merged copy (today)": contextlib.nullcontext, "unmerged LoRA": unmerged_lora,
             "merged copy, static cache": lambda: static_cache(agent.model)}
    for context in paths.values():  # warm-up: kernels, the allocator, the static cache's compilation
        rollout(context)
    return interleaved({name: (lambda c=context: rollout(c)) for name, context in paths.items()}, repeats)


def part_rollouts(record: Record, sizes, repeats: int, dtype: torch.dtype) -> None:
    from peft import LoraConfig, get_peft_model

    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder:
            count = build_model(folder, SHAPES[size], dtype)
            agent = MultiTurnAgent(AgentConfig(model_name=folder)).initialize()
            torch.manual_seed(0)
            agent.model = get_peft_model(agent.model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                                 init_lora_weights=False))
            agent.model.eval()
            environment = ConversationEnvironment(DOMAIN, max_turns=1)
            prompts = [agent.prompt_ids(environment.start(s)) for s in environment.train_scenarios[:PROMPTS]] * GROUP
            for name, results in rollout_paths(agent, prompts, repeats).items():
                rows.append([size, f"{count / 1e9:.2f}", name, shown(spread([r[0] for r in results]), 0),
                             shown(spread([r[1] for r in results]), 2)])
                print(rows[-1], flush=True)
        agent = None  # (the next size loads only once this one is gone)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    record.table(f"Rollouts: {PROMPTS * GROUP} sampled completions of up to {NEW_TOKENS} tokens from a model with LoRA "
                 f"r=16 on all linear layers, median of {repeats} interleaved calls (range)",
                 ["model", "B parameters", "generation path", "generated tokens/s", "GPU GiB above the loaded model"],
                 rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="study,rollouts", help="study, rollouts or both (comma-separated)")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--sizes", default="0.5b,1.5b", help=f"rollout models: {', '.join(SHAPES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", type=int, help="CPUs per trial (default 4, 1 with --tiny)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model on the CPU, to check the script")
    parser.add_argument("--record-dir", type=Path, default=RESULTS,
                        help="where the record goes on a GPU (e.g. the device machine's $OUT, to bring it back)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if not parts or parts - {"study", "rollouts"}:
        parser.error(f"--parts takes study, rollouts or both, got {args.parts!r}")
    if set(args.sizes.split(",")) - set(SHAPES):
        parser.error(f"--sizes takes {', '.join(SHAPES)}, got {args.sizes!r}")
    sizes = ["tiny"] if args.tiny else args.sizes.split(",")
    args.cpus = args.cpus if args.cpus is not None else 1 if args.tiny else 4
    if min(args.trials, args.repeats, args.cpus) < 1:
        parser.error("--trials, --repeats and --cpus must be at least 1")
    if "study" in parts and 2 * args.cpus > (os.cpu_count() or 1):  # (two of the ways train 2 trials at once)
        parser.error(f"--cpus {args.cpus}: two trials at once need {2 * args.cpus} CPUs, this machine has "
                     f"{os.cpu_count()}")
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        parser.error("no GPU here: run it on the GPU machine, or with --tiny to check the script")
    dtype = torch.bfloat16 if cuda else torch.float32
    settings = dict({k: v for k, v in vars(args).items() if k not in ("record_dir", "parts")},
                    device=torch.cuda.get_device_name(0) if cuda else "cpu")
    where = Path(tempfile.mkdtemp()) if args.tiny else args.record_dir
    status = 0
    if "study" in parts:  # (one record per part: a GPU session may run them in two calls)
        record = Record("gpu_study", "a 4-trial Ray Tune study with ASHA four ways on one GPU: Train workers, warm "
                        "direct trials, half a GPU each, two packed in one process", settings)
        with tempfile.TemporaryDirectory() as folder:
            model = f"{folder}/model"
            build_model(model, SHAPES["tiny" if args.tiny else "0.5b"], dtype)
            part_study(record, folder, model, args.trials, args.cpus)
        status |= record.finish(where)
    if "rollouts" in parts:
        record = Record("gpu_rollouts", "rollouts' generated tokens/s and GPU memory by model size and generation "
                        "path (merged copy, unmerged LoRA, static cache)", settings)
        part_rollouts(record, sizes, args.repeats, dtype)
        status |= record.finish(where)
    return status


if __name__ == "__main__":
    sys.exit(main())
