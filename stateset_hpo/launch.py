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
from typing import Any, Dict, List, Optional, Tuple

from .config import DIRECTIONS, HPOConfig
from .constraints import parse_constraint
from .cost import BUDGET_KEYS
from .dashboard import dashboard_command
from .health import SETTINGS as HEALTH_SETTINGS
from .interrupts import sigterm_as_ctrl_c
from .masking import masked
from .search.base import Flag, all_backends, backend_names, get_backend
from .space import SearchSpace
from .space.presets import get_search_space, list_search_spaces

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
    p.add_argument("--backend", choices=backend_names(), help=f"default: {CLI_DEFAULT_BACKEND}")
    p.add_argument("--n-trials", type=int, help="number of trials")
    p.add_argument("--timeout", type=float, help="stop the study after this many seconds")
    p.add_argument("--metric", help="objective metric (default: eval_reward, the greedy score on the held-out "
                                    "selection scenarios)")
    p.add_argument("--direction", choices=DIRECTIONS)
    p.add_argument("--n-parallel-trials", type=int, help="trials running at once")
    p.add_argument("--validation-top-k", type=int,
                   help="after the search, retrain the recommendation (the search's best), the next K-1 and the "
                        "baseline with fresh seeds and test them (default 3; 0: off)")
    p.add_argument("--validation-seeds", type=int, help="seeds per validated configuration (default 3)")
    p.add_argument("--validation-max-seeds", type=int,
                   help="validate sequentially: add seeds one at a time up to this many, until the verdict is clear "
                        "(default: exactly --validation-seeds)")
    p.add_argument("--min-effect", type=float,
                   help="the smallest gain worth having: sequential validation also stops once its interval rules "
                        "out every gain this large")
    p.add_argument("--race-seeds", type=int,
                   help="before naming the recommendation, train the search's top --race-top-k configurations "
                        "again with this many fresh seeds each and rank them by their mean (default 0: off)")
    p.add_argument("--race-top-k", type=int, help="how many top configurations race (default 3)")
    p.add_argument("--validation-topics", choices=["random", "fixed"],
                   help="what the verdict generalises to: new topics (random, default) or new conversations of "
                        "the test split's topics (fixed: more power)")
    p.add_argument("--validation-episodes", type=int,
                   help="episodes every validated configuration trains on (default: the largest budget among them)")
    p.add_argument("--gpu-per-trial", type=float, help="GPUs per trial worker (fractions allowed; default: auto)")
    p.add_argument("--cpu-per-trial", type=float, help="CPUs per trial worker (default: auto)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a training parameter for all trials (repeatable), e.g. --set num_episodes=320")
    p.add_argument("--health", action="append", default=[], metavar="KEY=VALUE",
                   help="set a health rule (repeatable), e.g. --health kl_max=0.5 or --health entropy_min=null "
                        "(off); rules: " + ", ".join(k for k in HEALTH_SETTINGS if k != "enabled"))
    p.add_argument("--no-health-rules", action="store_true",
                   help="do not stop trials that cannot learn or have collapsed (on by default)")
    p.add_argument("--constraint", action="append", default=[], metavar="METRIC<=NUMBER",
                   help="only trials whose final METRIC meets the bound can be the best (repeatable), e.g. "
                        "--constraint kl<=0.05 or --constraint reward_std>=0.01")
    p.add_argument("--budget", action="append", default=[], metavar="KEY=VALUE",
                   help="start no new trial once the next would exceed this (repeatable): "
                        + ", ".join(BUDGET_KEYS) + ", e.g. --budget gpu_hours=10")
    p.add_argument("--kl-budget", type=float, help="maximise the objective subject to kl <= this (--constraint kl<=X)")
    p.add_argument("--engine", choices=["grpo", "trl"],
                   help="what each trial trains with: grpo, our multi-turn engine (default), or trl, TRL's "
                        "GRPOTrainer (the space's names are then GRPOConfig fields; default space: trl)")
    p.add_argument("--dataset", metavar="FILE|FOLDER|NAME",
                   help="with --engine trl: prompts as JSON Lines (a 'prompt' per row, optional 'split' and other "
                        "columns), a Dataset.save_to_disk folder or a Hub dataset (org/name), scored by --reward "
                        "module:function")
    p.add_argument("--task", metavar="MODULE:FUNCTION",
                   help="your own task: a function returning (environment, reward), imported from the working dir")
    p.add_argument("--scenarios", metavar="FILE",
                   help="your own scenarios (.jsonl, .json, .yaml) in the guide's shape (id, topic, user_goal, "
                        "user_responses, ...)")
    p.add_argument("--reward", action="append", default=[], metavar="NAME[=WEIGHT]",
                   help="a reward component for --scenarios (repeatable): a built-in name or a TRL-style "
                        "module:function, e.g. --reward rewards:judge=0.7 --reward safety=0.3")
    p.add_argument("--judge", metavar="MODEL[=WEIGHT]",
                   help="add a local LLM judge to the reward (its probability of 'yes' to: is the reply helpful, "
                        "correct and polite?), e.g. --judge Qwen/Qwen2.5-0.5B-Instruct=0.3; with --scenarios or "
                        "the built-in task")
    p.add_argument("--model", help="Hugging Face model name or local path (default: the tiny local model)")
    p.add_argument("--dashboard-storage", metavar="URL|PATH|off",
                   help="where optuna-dashboard can watch the study live, whatever the backend (default: a "
                        "journal file in --output-dir, or the Optuna backend's --storage); off: none")
    p.add_argument("--output-dir", help="where results go (default: ./hpo_results)")
    p.add_argument("--study-name", help="name of the study")
    p.add_argument("--seed", type=int, help="seed of the search (Optuna's sampler, the Ray searcher, the offline W&B "
                                            "sweep engine); default: unseeded")
    p.add_argument("--grid-points", type=int, help="values per range in a grid search (default 3)")
    p.add_argument("--save-every", type=int, metavar="N",
                   help="save the results so far (summary.json, trials.csv) every N finished trials (default 10; "
                        "HPOConfig.checkpoint_freq, the guide's name: not model checkpoints)")
    p.add_argument("--warm-start", metavar="SUMMARY|FOLDER|STORAGE#STUDY",
                   help="start from an earlier study (its summary.json or folder, or an Optuna storage and study "
                        "name): its best configurations (those that beat its run of the defaults) run first, after the "
                        "baseline")
    p.add_argument("--warm-start-comparable", action="store_true",
                   help="the earlier trials were measured as this study measures (same task, model, budget): tell "
                        "them to the searcher as observations instead (one that takes none runs them first)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted study in --output-dir")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the study and compile its search space for the backend, then exit")
    p.add_argument("--quiet", action="store_true", help="no progress view (live on a terminal, a line per trial "
                                                          "elsewhere)")
    p.add_argument("--verbose", action="store_true",
                   help="also show what the libraries print (Optuna's per-trial log lines, Ray's raylet messages, "
                        "transformers' loading bars)")
    added = set()
    for backend in all_backends():  # each backend's own flags, from its registry entry
        group = p.add_argument_group(f"backend {backend.name}")
        for flag in backend.flags:
            if flag.name not in added:  # a flag several backends take (--sampler) is listed once
                added.add(flag.name)
                group.add_argument("--" + flag.name.replace("_", "-"), help=flag.help, **(
                    {"action": "store_true", "default": None} if flag.switch
                    else {"choices": flag.choices, "type": flag.type}))
    return p


def backend_flags() -> Dict[str, Flag]:
    """Every backend's flags by name."""
    return {flag.name: flag for backend in all_backends() for flag in backend.flags}


_PLAIN_FLAGS = {
    "n_trials": "n_trials", "timeout": "timeout", "metric": "objective_metric", "direction": "direction",
    "n_parallel_trials": "n_parallel_trials", "gpu_per_trial": "gpu_per_trial",
    "cpu_per_trial": "cpu_per_trial", "output_dir": "output_dir", "study_name": "study_name",
    "validation_top_k": "validation_top_k", "validation_seeds": "validation_seeds",
    "validation_episodes": "validation_episodes", "validation_max_seeds": "validation_max_seeds",
    "min_effect": "min_effect", "race_seeds": "race_seeds", "race_top_k": "race_top_k",
    "validation_topics": "validation_topics", "seed": "seed", "grid_points": "grid_points",
    "save_every": "checkpoint_freq", "warm_start": "warm_start",
}


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
    if args.engine:
        settings["engine"] = args.engine
    if settings.get("engine") == "trl" and not (args.space or args.space_file or settings.get("search_space")) \
            and settings.get("search_space_name", "grpo") == "grpo":
        settings["search_space_name"] = "trl"  # (the default space names our engine's parameters)
    if args.dataset and settings.get("engine") != "trl":
        raise UsageError("--dataset gives TRL trials their prompts: add --engine trl")
    for flag, field_name in _PLAIN_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            # a path quoted past the shell (e.g. in `ray job submit`, which quotes its command) is expanded here
            settings[field_name] = os.path.expanduser(value) if flag == "output_dir" else value
    chosen = {flag.name: flag for flag in get_backend(backend).flags}
    for name in backend_flags():
        value = getattr(args, name)
        if value is None:
            continue
        if name not in chosen:
            having = [b.name for b in all_backends() if any(f.name == name for f in b.flags)]
            raise UsageError(f"--{name.replace('_', '-')} applies to --backend {' or '.join(having)}, not {backend}")
        section = chosen[name].section or get_backend(backend).section
        settings[section] = {**settings.get(section, {}), chosen[name].key: value}
    if args.dashboard_storage is not None:
        settings["dashboard_storage"] = None if args.dashboard_storage.lower() in ("off", "none") else \
            os.path.expanduser(args.dashboard_storage)
    if args.warm_start_comparable:
        settings["warm_start_comparable"] = True
    if args.quiet:
        settings["verbose"] = False
    if args.verbose:
        settings["library_logs"] = True
    health = _parse_sets(args.health, "--health")
    if args.no_health_rules and health:
        raise UsageError(f"--no-health-rules turns every health rule off, and --health sets "
                         f"{', '.join(sorted(health))}: give one of them")
    if args.no_health_rules:
        health["enabled"] = False
    if health:
        settings["health_rules"] = {**(settings.get("health_rules") or {}), **health}
    constraints: Dict[str, Dict[str, float]] = dict(settings.get("constraints") or {})
    given = [(f"--constraint {text}", text) for text in args.constraint] + \
        ([(f"--kl-budget {args.kl_budget:g}", f"kl<={args.kl_budget}")] if args.kl_budget is not None else [])
    flagged: Dict[Tuple[str, str], Tuple[str, float]] = {}  # (metric, bound) -> (the flag that set it, value)
    try:
        for flag, text in given:
            for metric, bounds in parse_constraint(text).items():
                for bound, value in bounds.items():
                    earlier = flagged.setdefault((metric, bound), (flag, value))
                    if earlier[1] != value:  # (flags may override a config file's bound, not each other)
                        raise UsageError(f"{earlier[0]} and {flag} set the {bound} of {metric} to {earlier[1]:g} "
                                         f"and {value:g}: give one of them")
                constraints[metric] = {**constraints.get(metric, {}), **bounds}
    except ValueError as exc:
        raise UsageError(f"--constraint: {exc}") from None
    if constraints:
        settings["constraints"] = constraints
    budget = _parse_sets(args.budget, "--budget")
    if budget:
        settings["budget"] = {**(settings.get("budget") or {}), **budget}
    fixed = _parse_sets(args.set, "--set")
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
        config = HPOConfig.from_dict(settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for name, flag in chosen.items():  # a value this study's search would not use is refused, not dropped
        why = flag.unused(config) if flag.unused is not None and getattr(args, name) is not None else None
        if why:
            raise UsageError(f"--{name.replace('_', '-')} {why}")
    return config


def _parse_sets(items: List[str], flag: str) -> Dict[str, Any]:
    import yaml

    from .yaml_io import load_yaml

    fixed: Dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} takes KEY=VALUE, got {item!r}")
        try:
            fixed[key.strip()] = load_yaml(text)
        except (yaml.YAMLError, ValueError) as exc:  # (ValueError: an integer of thousands of digits)
            raise UsageError(f"{flag} {key}: cannot read value {text[:80]!r}{'...' if len(text) > 80 else ''} "
                             f"({str(exc).splitlines()[0][:120]})") from None
    return fixed


MAX_ERROR = 600  # characters of an error line: a message may echo a value the user gave, of any size


def one_line(exc: Exception) -> str:
    """The error's message on one line (a YAML parser's position diagrams folded in), cut to
    MAX_ERROR characters (saying how long it was)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    text = "; ".join(line for line in lines if line and set(line) != {"^"})
    return text if len(text) <= MAX_ERROR else f"{text[:MAX_ERROR]}... ({len(text)} characters in all)"


def interrupted_hint(config: HPOConfig) -> str:
    """What an interrupted in-process study left, and how to continue it."""
    storage = get_backend(config.backend).optuna_storage(config)
    if storage:
        return (f"the study was interrupted; its finished trials are in {masked(storage)!r}: run the same command "
                "with --resume to finish it")
    return (f"the study was interrupted; the results saved so far (every --save-every / checkpoint_freq trials) are in "
            f"{str(config.output_dir)!r}; it cannot be resumed without a persistent study (--backend optuna "
            "--storage sqlite:///hpo.db, or --backend ray_tune)")


def main(argv: Optional[List[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        config = config_from_args(args)
        space = config.resolve_search_space()
        backend = get_backend(config.backend)
        compiled = backend.compiled(config, space)  # compile the space the way the backend will consume it
        from .study import check_study, default_spec, describe_study, spec_from_config, trl_spec
        from .trial import TrialSpec
        from .user_task import task_from_flags, trl_task_from_flags

        if args.dataset:
            given = trl_task_from_flags(args.dataset, args.reward, args.task or args.scenarios or args.judge)
        else:
            task = task_from_flags(args.task, args.scenarios, args.reward, args.judge,
                                   builtin=default_spec(config) if args.judge else None)
            given = TrialSpec(environment=task[0], reward=task[1]) if task else None
            given = trl_spec(given) if given is not None and config.engine == "trl" else given
        # bad --set / --model values and everything else run_study checks fail here, before Ray starts
        spec = check_study(config, spec_from_config(config, given), space, dry_run=args.dry_run, resume=args.resume)
    except (UsageError, ValueError) as exc:
        print(f"stateset_hpo.launch: error: {one_line(exc)}", file=sys.stderr)
        return 2
    for number, line in enumerate(describe_study(config, space, spec)):
        print(f"{line} resume={args.resume}" if number == 0 else line)
    model = spec.agent_config.model_name
    if "/" in model and not Path(model).expanduser().exists():  # a Hub name
        import socket

        from .grpo.agent import hub_model_status

        print(f"model: {model}: {hub_model_status(model)} (checked on {socket.gethostname()}, the driver)")
    print(space.describe())
    print(compiled)
    if args.dry_run:
        print("dry run: the study is valid; no trial was started")
        return 0
    watch = dashboard_command(config)
    if watch:
        print(f"watch it live: {watch}  (pip install optuna-dashboard)")
    from .results import StudyInterrupted
    from .study import run_study

    sigterm_as_ctrl_c()  # `ray job stop` and Kubernetes send SIGTERM: a saved, resumable study

    try:
        summary = run_study(config, spec, resume=args.resume)
    except ValueError as exc:  # e.g. a trial that can never be placed on this cluster
        print(f"stateset_hpo.launch: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except StudyInterrupted as exc:
        print(f"stateset_hpo.launch: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # an in-process backend, stopped mid-trial
        print(f"stateset_hpo.launch: {interrupted_hint(config)}", file=sys.stderr)
        return 130
    print()
    summary.print_summary()
    print(f"\nsummary: {Path(config.output_dir) / 'summary.json'}  trials: {Path(config.output_dir) / 'trials.csv'}")
    shared = backend.shared_results(config)
    if shared:
        from .shared_storage import unpublished

        missing = unpublished(Path(config.output_dir), shared)
        if missing:  # (run_study warned why): a job whose results stay on the head must not pass
            print(f"stateset_hpo.launch: error: the results were not copied to the shared storage {masked(shared)} "
                  f"(missing or incomplete there: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}); "
                  f"they are only in {Path(config.output_dir).resolve()} on this machine", file=sys.stderr)
            return 1
        print(f"results also in the shared storage: {masked(shared)}")
    return 0 if summary.n_successful else 1


if __name__ == "__main__":
    sys.exit(main())
