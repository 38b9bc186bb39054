"""Command line: ``python -m stateset_hpo.launch --space full --backend ray_tune ...``.

Settings come from, lowest to highest precedence: HPOConfig defaults, ``--config FILE``
(YAML), then flags. Every input is validated before anything heavy is imported or
started; a bad one exits with status 2 and one line on stderr.

The CLI defaults to the ``ray_tune`` backend (it is the entry point for ``ray job submit``
on a cluster); ``HPOConfig()`` in Python keeps the user guide's default, ``optuna``.

``--set KEY=VALUE`` fixes a training parameter for every trial: it is removed from the search
space if the space has it, and applied to the base TrainingConfig / AgentConfig.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from .config import (BACKENDS, OPTUNA_PRUNERS, OPTUNA_SAMPLERS, RAY_SCHEDULERS, RAY_SEARCH_ALGS, HPOConfig)
from .results import is_better
from .search_spaces import get_search_space, list_search_spaces
from .shared_storage import storage_location
from .space.to_wandb import WANDB_METHODS
from .space import SearchSpace

CLI_DEFAULT_BACKEND = "ray_tune"


class UsageError(Exception):
    """Bad input on the command line; reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m stateset_hpo.launch",
                description="Hyperparameter optimisation of GRPO fine-tuning for conversational agents.")
    p.add_argument("--space", help=f"predefined search space: {', '.join(list_search_spaces())} (default: grpo)")
    p.add_argument("--space-file", type=Path, help="custom search space as YAML or JSON (instead of --space)")
    p.add_argument("--config", type=Path, help="HPOConfig as YAML; flags override its values")
    p.add_argument("--backend", choices=BACKENDS, help=f"default: {CLI_DEFAULT_BACKEND}")
    p.add_argument("--n-trials", type=int, help="number of trials")
    p.add_argument("--timeout", type=float, help="stop the study after this many seconds")
    p.add_argument("--metric", help="objective metric (default: eval_reward, the greedy score on the held-out "
                                    "selection scenarios)")
    p.add_argument("--direction", choices=("maximize", "minimize"))
    p.add_argument("--scheduler", choices=RAY_SCHEDULERS, help="ray_tune trial scheduler")
    p.add_argument("--search-alg", choices=RAY_SEARCH_ALGS, help="ray_tune search algorithm")
    p.add_argument("--sampler", choices=OPTUNA_SAMPLERS,
                   help="optuna sampler (backend optuna, or ray_tune with --search-alg optuna)")
    p.add_argument("--pruner", choices=OPTUNA_PRUNERS, help="optuna pruner")
    p.add_argument("--storage", help="optuna: database URL (sqlite:///hpo.db) or journal file shared by runs "
                                     "and processes; running again continues the study")
    p.add_argument("--sweep-method", choices=WANDB_METHODS, help="wandb: sweep method (default: bayes)")
    p.add_argument("--seed", type=int, help="seed of the search algorithm / sampler")
    p.add_argument("--n-parallel-trials", type=int, help="trials running at once")
    p.add_argument("--validation-top-k", type=int,
                   help="after the search, retrain the recommendation (the search's best), the next K-1 and the "
                        "baseline with fresh seeds and test them (default 3; 0: off)")
    p.add_argument("--validation-seeds", type=int, help="seeds per validated configuration (default 3)")
    p.add_argument("--validation-episodes", type=int,
                   help="episodes every validated configuration trains on (default: the largest budget among them)")
    p.add_argument("--gpu-per-trial", type=float, help="GPUs per trial worker (fractions allowed; default: auto)")
    p.add_argument("--cpu-per-trial", type=float, help="CPUs per trial worker (default: auto)")
    p.add_argument("--workers-per-trial", type=int, help="ray_tune: data-parallel workers per trial")
    p.add_argument("--execution", choices=("train", "direct"),
                   help="ray_tune: run each trial in a Ray Train worker group (train, default) or in the Tune "
                        "trial process (direct: faster start, one worker)")
    p.add_argument("--storage-path",
                   help="ray_tune: where trials, checkpoints and a copy of the results go; on a multi-node "
                        "cluster a location every node sees (s3://bucket/path, gs://bucket/path, NFS)")
    p.add_argument("--autoscaling", action="store_true", default=None,
                   help="ray_tune: the cluster starts nodes on demand, so resources not running yet are no "
                        "error (needs --gpu-per-trial and --cpu-per-trial)")
    p.add_argument("--max-failures", type=int,
                   help="ray_tune: retry a failed trial (e.g. a preempted spot node) from its last checkpoint "
                        "up to this many times")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a training parameter for all trials (repeatable), e.g. --set num_episodes=320")
    p.add_argument("--model", help="Hugging Face model name or local path (default: the tiny local model)")
    p.add_argument("--output-dir", help="where results go (default: ./hpo_results)")
    p.add_argument("--study-name", help="name of the study")
    p.add_argument("--resume", action="store_true", help="continue the interrupted study in --output-dir")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the study and compile its search space for the backend, then exit")
    p.add_argument("--quiet", action="store_true", help="no per-trial progress lines")
    return p


# Flags that only mean something for one backend, and where they go in HPOConfig.
_BACKEND_FLAGS = {
    "scheduler": (("ray_tune",), "ray_config", "scheduler"),
    "search_alg": (("ray_tune",), "ray_config", "search_alg"),
    "workers_per_trial": (("ray_tune",), "ray_config", "workers_per_trial"),
    "execution": (("ray_tune",), "ray_config", "execution"),
    "storage_path": (("ray_tune",), "ray_config", "storage_path"),
    "autoscaling": (("ray_tune",), "ray_config", "autoscaling"),
    "max_failures": (("ray_tune",), "ray_config", "max_failures"),
    "sampler": (("optuna", "ray_tune"), "optuna_config", "sampler"),  # also Ray's search_alg optuna
    "pruner": (("optuna",), "optuna_config", "pruner"),
    "storage": (("optuna",), "optuna_config", "storage"),
    "sweep_method": (("wandb",), "wandb_config", "method"),
}
_PLAIN_FLAGS = {
    "n_trials": "n_trials", "timeout": "timeout", "metric": "objective_metric", "direction": "direction",
    "n_parallel_trials": "n_parallel_trials", "gpu_per_trial": "gpu_per_trial",
    "cpu_per_trial": "cpu_per_trial", "output_dir": "output_dir", "study_name": "study_name",
    "validation_top_k": "validation_top_k", "validation_seeds": "validation_seeds",
    "validation_episodes": "validation_episodes",
}
_SEED_SECTION = {"ray_tune": "ray_config", "optuna": "optuna_config"}


def config_from_args(args: argparse.Namespace) -> HPOConfig:
    """Merge --config and the flags into a validated HPOConfig (raises UsageError)."""
    try:
        base = HPOConfig.from_yaml(args.config) if args.config else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    settings: Dict[str, Any] = base.to_dict() if base else {"backend": CLI_DEFAULT_BACKEND}
    if base is None or args.backend:
        settings["backend"] = args.backend or CLI_DEFAULT_BACKEND
    backend = settings["backend"]
    if args.space and args.space_file:
        raise UsageError("give --space or --space-file, not both")
    if args.space:
        if args.space not in list_search_spaces():
            raise UsageError(f"unknown search space {args.space!r}; valid names: {', '.join(list_search_spaces())}")
        settings.update(search_space=None, search_space_name=args.space)
    if args.space_file:
        try:
            settings.update(search_space=SearchSpace.load(args.space_file).to_dict())
        except ValueError as exc:
            raise UsageError(f"--space-file: {exc}") from None
    for flag, field_name in _PLAIN_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            # a path quoted past the shell (e.g. in `ray job submit`, which quotes its command) is expanded here
            settings[field_name] = os.path.expanduser(value) if flag == "output_dir" else value
    for flag, (needs, section, key) in _BACKEND_FLAGS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if backend not in needs:
            raise UsageError(f"--{flag.replace('_', '-')} applies to --backend {' or '.join(needs)}, not {backend}")
        settings[section] = {**settings.get(section, {}), key: value}
    if args.seed is not None:
        if backend not in _SEED_SECTION:
            raise UsageError(f"--seed applies to --backend optuna or ray_tune, not {backend}")
        section = _SEED_SECTION[backend]
        settings[section] = {**settings.get(section, {}), "seed": args.seed}
    fixed = _parse_sets(args.set)
    if args.model is not None:
        fixed["model_name"] = args.model
    if fixed:
        base = settings.get("base_training_config") or {}
        if not isinstance(base, dict):
            raise UsageError("--set and --model need base_training_config to be a mapping in --config")
        settings["base_training_config"] = {**base, **fixed}
        space = (SearchSpace.from_dict(settings["search_space"]) if settings.get("search_space")
                 else get_search_space(settings.get("search_space_name", "grpo")))
        searched = [k for k in fixed if k in space]
        if searched:
            if len(searched) == len(space):
                raise UsageError(f"--set fixes every dimension of the space ({', '.join(searched)}): nothing to search")
            settings.update(search_space=space.without(searched).to_dict())
    try:
        return HPOConfig.from_dict(settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _parse_sets(items: List[str]) -> Dict[str, Any]:
    import yaml

    fixed: Dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            fixed[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise UsageError(f"--set {key}: cannot read value {text!r}") from None
    return fixed


def compile_for_backend(config: HPOConfig) -> str:
    """Compile the space the way the chosen backend will consume it; a one-line account."""
    space = config.resolve_search_space()
    if config.backend == "optuna":
        from .search.optuna_samplers import build_pruner, build_sampler

        build_sampler(config.optuna_config, len(config.objectives))
        build_pruner(config.optuna_config, 1, 1)
        return f"optuna distributions: {len(space.to_optuna())}"
    if config.backend == "wandb":
        method = config.wandb_config["method"]
        return f"W&B sweep parameters ({method}): {len(space.to_wandb(method, config.wandb_config['grid_points']))}"
    alg = config.ray_config["search_alg"]
    if alg == "bayesopt":
        return f"bayes_opt bounds: {len(space.to_bayesopt().pbounds)}"
    if alg == "hyperopt":
        return f"hyperopt space: {len(space.to_hyperopt())}"
    if alg == "grid":
        space.to_tune(grid_points=config.ray_config["grid_points"])  # compile it, as the study will
        return f"Ray Tune grid: {space.grid_size(config.ray_config['grid_points'])} points"
    if alg == "optuna":
        return f"optuna distributions (via OptunaSearch): {len(space.to_optuna())}"
    return f"Ray Tune param_space: {len(space.to_tune())}"


class ProgressPrinter:
    """One line per finished trial: counts so far and the best value."""

    def __init__(self, config: HPOConfig) -> None:
        self.metric, self.direction, self.total = config.objective_metric, config.direction, config.n_trials
        self.started, self.ended, self.best = 0, {}, None

    def on_trial_start(self, trial_id, params):
        self.started += 1

    def on_trial_end(self, result):
        self.ended[result.status.value] = self.ended.get(result.status.value, 0) + 1
        value = result.best_metric
        if result.status.value == "success" and value is not None:
            if is_better(value, self.best, self.direction):
                self.best = value
        done = sum(self.ended.values())
        shown = "-" if value is None else f"{value:.4f}"
        best = "-" if self.best is None else f"{self.best:.4f}"
        print(f"[{done}/{self.total}] trial {result.trial_id} {result.status.value} {self.metric}={shown}  "
              f"running {self.started - done}  success {self.ended.get('success', 0)}  "
              f"pruned {self.ended.get('pruned', 0)}  failed {self.ended.get('failed', 0)}  best {best}", flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        config = config_from_args(args)
        space = config.resolve_search_space()
        compiled = compile_for_backend(config)
        from .study import spec_from_config

        spec = spec_from_config(config)  # bad --set / --model values fail here, before Ray starts
        spec.check_space(space, model=not args.dry_run)  # a dry run does not build the tiny model
    except (UsageError, ValueError) as exc:
        print(f"stateset_hpo.launch: error: {exc}", file=sys.stderr)
        return 2
    name = "custom" if config.search_space is not None else config.search_space_name
    print(f"study: backend={config.backend} space={name} ({len(space)} dimensions) "
          f"n_trials={config.n_trials} output_dir={config.output_dir} resume={args.resume}")
    if config.backend == "ray_tune":
        rc = config.ray_config
        print(f"ray_tune: scheduler={rc['scheduler']} search_alg={rc['search_alg']} "
              f"max_concurrent={config.max_concurrent_trials} workers_per_trial={rc['workers_per_trial']} "
              f"execution={rc['execution']} storage={storage_location(rc['storage_path'], str(config.output_dir))}"
              + (" autoscaling" if rc["autoscaling"] else ""))
    elif config.backend == "wandb":
        from .wandb_runs import wandb_mode

        wc = config.wandb_config
        print(f"wandb: method={wc['method']} early_terminate={wc['early_terminate']} project={wc['project']} "
              f"mode={wandb_mode()}")
    elif config.backend == "optuna":
        oc = config.optuna_config
        print(f"optuna: sampler={oc['sampler']} pruner={oc['pruner']} storage={oc['storage']}")
    if config.base_training_config:
        print(f"training overrides: {config.base_training_config}")
    print(space.describe())
    print(compiled)
    if args.dry_run:
        print("dry run: the study is valid; no trial was started")
        return 0
    from transformers.utils import logging as hf_logging

    from .results import StudyInterrupted
    from .study import run_study, shared_results_location

    hf_logging.disable_progress_bar()  # one "Loading weights" bar per trial drowns the progress lines
    try:
        summary = run_study(config, spec, callbacks=[] if args.quiet else [ProgressPrinter(config)],
                            resume=args.resume)
    except ValueError as exc:  # e.g. a trial that can never be placed on this cluster
        print(f"stateset_hpo.launch: error: {exc}", file=sys.stderr)
        return 2
    except StudyInterrupted as exc:
        print(f"stateset_hpo.launch: {exc}", file=sys.stderr)
        return 130
    print()
    summary.print_summary()
    print(f"\nsummary: {Path(config.output_dir) / 'summary.json'}  trials: {Path(config.output_dir) / 'trials.csv'}")
    shared = shared_results_location(config)
    if shared:
        print(f"results also in the shared storage: {shared}")
    return 0 if summary.n_successful else 1


if __name__ == "__main__":
    sys.exit(main())
