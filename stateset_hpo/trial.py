"""One HPO trial: a real GRPO training run with the sampled parameters, reporting every
iteration through a function the backend supplies.

This knows nothing about where it runs (a Ray Train worker, a Tune trial process, an Optuna
objective in-process): backends differ only in ``report``, which forwards the metrics to
their scheduler or pruner and may save a checkpoint, and in where a restored trial's
checkpoint comes from.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .grpo import (AgentConfig, CompositeReward, ConversationEnvironment, MultiTurnAgent, MultiTurnGRPOTrainer,
                   TrainingConfig, default_reward)
from .grpo.config import EVAL_PROTOCOL_FIELDS
from .grpo.model_loading import QUANTISED_NEEDS_LORA, loads_quantised
from .grpo.model_pool import agent_for_trial
from .grpo.tiny_model import task_agent_config
from .grpo.trainer import reported_metrics
from .health import HealthRules

if TYPE_CHECKING:
    from .trl_engine import TRLTask

# report(metrics, trainer) -> True to stop the trial early (what a pruner decided). ``trainer``
# is our engine's MultiTurnGRPOTrainer or a TRL run (trl_engine.run.TRLRun), which give the same
# view (config, history, save_checkpoint), or None for a custom objective, which reports once
# and has no checkpoint to give.
Reporter = Callable[[Dict[str, float], Any], Optional[bool]]


@dataclass
class TrialSpec:
    """What every trial of a study shares; picklable, so Ray can ship it to workers.

    ``base_config`` supplies every parameter the search space does not; each trial builds its
    own agent from ``agent_config``, so trials never share weights.

    ``derived_metrics`` adds named metrics computed from each iteration's engine metrics, e.g.
    ``{"composite_score": lambda m: 0.7 * m["reward"] + 0.3 * m["safety_score"]}``; they are
    reported with the rest, so any backend can optimise, prune or schedule on them.

    ``objective`` replaces the engine run with a user function ``params -> final metrics``
    (e.g. GRPOHPOTrainer._objective_function overridden): the trial reports those metrics
    once, as iteration 1, so nothing can be pruned or checkpointed mid-way. An objective that
    takes a second argument, ``objective(params, report)``, reports every step itself:
    ``report(metrics)`` returns True when the trial is to stop there (a pruner or scheduler
    decided), and the objective then returns None (e.g. from its own Hugging Face trainer,
    with `integrations.hf.ReportCallback`); ``objective_steps`` is how many reports it plans,
    so a trial stopped before them counts as pruned (the schedulers' clock is its reports,
    unless its metrics carry ``episodes``). Such trials have no checkpoint and no health rules.

    ``test_at_end`` adds the test split's scores (``test_*``) to the last iteration's metrics:
    validation sets it; search trials never see the test split. ``test_topics`` (custom
    objectives that score test conversations, ``test_<metric>[i]``): each conversation's topic,
    so the validation's interval treats a topic's conversations as one cluster, as it does for
    the engine's own test scenarios.

    ``health`` are the rules that stop a trial that cannot learn or has collapsed (see
    health.py; HPOConfig.health_rules sets them for a study); None turns them off, as the
    validation re-runs do (each is trained to its end).

    ``trl``: the trials run TRL's `GRPOTrainer` on this task instead of our engine (see
    trl_engine/); ``base_config`` is then a `TRLTrainingConfig` (GRPOConfig settings and the
    study's budget), `for_trl` builds such a spec, and ``environment`` only names the scenarios
    the tiny model is built from.
    """

    agent_config: AgentConfig = field(default_factory=AgentConfig)
    environment: ConversationEnvironment = field(default_factory=ConversationEnvironment)
    reward: CompositeReward = field(default_factory=default_reward)
    base_config: TrainingConfig = field(default_factory=TrainingConfig)
    derived_metrics: Dict[str, Callable[[Dict[str, float]], float]] = field(default_factory=dict)
    objective: Optional[Callable[[Dict[str, Any]], Mapping[str, float]]] = None
    test_at_end: bool = False
    health: Optional[HealthRules] = field(default_factory=HealthRules)
    test_topics: Optional[Sequence[str]] = None
    trl: Optional["TRLTask"] = None
    objective_steps: Optional[int] = None

    def __post_init__(self) -> None:
        if self.objective is not None and reports_steps(self.objective):
            if isinstance(self.objective_steps, bool) or not isinstance(self.objective_steps, int) or \
                    self.objective_steps < 1:
                raise ValueError("an objective that takes `report` needs TrialSpec.objective_steps, the number of "
                                 f"reports it plans (an integer >= 1), got {self.objective_steps!r}")

    @property
    def engine(self) -> str:
        return "trl" if self.trl is not None else "grpo"

    @classmethod
    def for_trl(cls, task: "TRLTask", grpo_args: Optional[Mapping[str, Any]] = None, **parts: Any) -> "TrialSpec":
        """A spec whose trials train ``task`` with TRL; ``grpo_args``: the base GRPOConfig (a
        GRPOConfig, or a dict of its fields, with the study's ``num_episodes`` / ``eval_every`` /
        ``eval_max_new_tokens`` / ``seed`` among them if wanted; its ``model_init_kwargs``
        go to the agent config, which loads the model)."""
        from .trl_engine import TRLTrainingConfig, grpo_args_of
        from .trl_engine.config import OWN_FIELDS

        args = grpo_args_of(grpo_args)
        own = {k: args.pop(k) for k in OWN_FIELDS if k in args}
        init = args.pop("model_init_kwargs", None)
        if init:  # the engine loads the model, as the agent config says
            agent = parts.get("agent_config", AgentConfig())
            parts["agent_config"] = dataclasses.replace(agent, model_init_kwargs={**agent.model_init_kwargs, **init})
        return cls(trl=task, base_config=TRLTrainingConfig(grpo_args=args, **own), **parts)

    def with_overrides(self, overrides: Mapping[str, Any]) -> "TrialSpec":
        """This spec with the given field values (e.g. HPOConfig.base_training_config): AgentConfig
        fields to the agent, the rest to the base config (TrainingConfig, or TRL's); a key that
        is neither is an error."""
        overrides = dict(overrides)
        agent_fields = {f.name for f in dataclasses.fields(AgentConfig)}
        agent_values = {k: overrides.pop(k) for k in list(overrides) if k in agent_fields}
        return dataclasses.replace(self, agent_config=dataclasses.replace(self.agent_config, **agent_values),
                                   base_config=self.base_config.with_params(overrides))

    def training_config(self, params: Mapping[str, Any]) -> TrainingConfig:
        """The trial's config: the base config with ``params`` applied (a point with a schedule:
        its own, last, settings). The evaluation protocol is the study's yardstick, so a
        parameter of it is an error here."""
        params, _ = split_schedule(params)
        fixed = sorted(k for k in params if k in self.protocol_fields)
        if fixed:
            raise ValueError(f"parameters {fixed} belong to the evaluation protocol, the yardstick every trial is "
                             "scored with, and cannot be searched; fix them in the base config (--set)")
        return self.base_config.with_params(params)

    @property
    def protocol_fields(self) -> Tuple[str, ...]:
        if self.trl is not None:
            from .trl_engine.config import PROTOCOL_FIELDS

            return PROTOCOL_FIELDS
        return EVAL_PROTOCOL_FIELDS

    def check_space(self, space, model: bool = True) -> None:
        """Fail before any trial starts on a space this spec cannot train as asked: its
        defaults must make a config (`check`), and ``clip_range`` only acts with several
        updates per rollout (with one, the policy ratio is exactly 1 and the clip inert).
        ``model=False`` (a dry run) checks a model path but does not build the tiny model."""
        baseline = space.baseline()
        self.check(baseline, model)
        if self.objective is None:  # every choice and both ends of every range, one dimension at a time
            for dim in space:  # (a conditional one with its parents set to make it active)
                for value in (dim.choices if not dim.is_range else (dim.low, dim.high)):
                    try:
                        self.check_config(self.training_config({**baseline, **space.activating(dim.name),
                                                                dim.name: value}))
                    except ValueError as exc:
                        raise ValueError(f"search space dimension {dim.name!r}: the value {value!r} cannot be "
                                         f"trained: {exc}") from None
        clip = [n for n in ("clip_range", "clip_range_high") if n in space]
        if clip and self.objective is None and self.trl is None:
            dim = space["num_iterations"] if "num_iterations" in space else None
            most = self.base_config.num_iterations if dim is None else (dim.high if dim.is_range else max(dim.choices))
            if most == 1:
                raise ValueError(f"{clip[0]} has no effect with num_iterations=1 (one update per rollout: the policy "
                                 f"ratio is exactly 1); set num_iterations > 1 (and lora_dropout=0) or drop {clip[0]} "
                                 "from the space")

    def check_objectives(self, metrics: Sequence[str], space, what: str = "objective metric") -> None:
        """Every objective must be a metric the trials report (the engine's, or a derived one):
        a typo such as "rewrd" fails here, not as a study of trials without a score. The test
        split's ``test_*`` is no objective: only validation sees it. (A custom objective reports
        what it returns, so it is not checked.)"""
        if self.objective is not None:
            return
        if self.trl is not None:
            from .trl_engine.run import reported_metrics as trl_metrics

            known = set(self.derived_metrics) | trl_metrics(self.trl)
        else:
            value_function = {self.base_config.include_value_function}
            if "include_value_function" in space:
                value_function |= {True, False}
            known = set(self.derived_metrics) | reported_metrics(self.reward.names, any(value_function))
        unknown = [m for m in metrics if m not in known]
        if unknown:
            raise ValueError(f"{what} {unknown[0]!r} is reported by no trial of this study; trials report "
                             f"{', '.join(sorted(known))} (or add it as a derived metric)")

    def check(self, params: Mapping[str, Any], model: bool = True) -> None:
        """Fail before any trial starts if ``params`` (e.g. the space's baseline) cannot be
        trained: a name that maps to nothing, a reward weight for a missing component, a local
        model path that does not exist. (The tiny model, or the task's own, is built here, once.)
        An objective that reports its own steps takes its parameters whatever their names: nothing
        to check. A plain one's parameters still make the training config that sets the
        schedulers' and pruners' clock (`iteration_episodes`, `max_episodes`), so they are checked."""
        if self.objective is not None and reports_steps(self.objective):
            return
        self.check_config(self.training_config(params))
        agent_config = task_agent_config(self.agent_config, self.environment) if model else self.agent_config
        MultiTurnAgent(agent_config).model_path(build=model)

    def check_config(self, config) -> None:
        """A trial's config can be trained: ours, its reward weights name components of the
        reward; TRL's, TRL accepts it as a GRPOConfig. A quantised model trains LoRA adapters only."""
        if loads_quantised(self.agent_config) and \
                (self.trl.peft_config is None if self.trl is not None else not config.use_lora):
            raise ValueError(QUANTISED_NEEDS_LORA)
        if self.trl is not None:
            from .grpo.agent import resolve_device_and_dtype

            try:
                device, dtype = resolve_device_and_dtype(self.agent_config)
            except ValueError:  # (CUDA asked for on a driver without it: the trials' workers have it)
                device, dtype = "cuda", "bfloat16"
            with tempfile.TemporaryDirectory() as folder:
                try:
                    config.grpo_config(folder, str(device).split(":")[0], str(dtype).removeprefix("torch."))
                except (ValueError, TypeError) as exc:  # (TRL's and transformers' own checks)
                    raise ValueError(f"GRPOConfig refuses it: {exc}"[:500]) from None
        else:
            self.reward.with_weights(config.reward_weights)


# Building a trainer is not thread-safe: transformers' lazy imports and from_pretrained's
# meta-device initialisation patch process-wide state, and the seeded adapter init uses
# torch's global RNG. Trials running in threads (Optuna's n_jobs) build one at a time and
# then train concurrently.
_SETUP_LOCK = threading.Lock()


def planned_episodes(spec: TrialSpec, params: Mapping[str, Any]) -> int:
    """The episodes (sampled conversations) a trial with ``params`` trains on: the time unit
    schedulers compare trials in, so that batch size does not change how far a trial got."""
    config = spec.training_config(params)
    return config.total_iterations * config.episodes_per_iteration


def iteration_episodes(spec: TrialSpec, space) -> int:
    """Episodes in one iteration of the space's defaults (the search's first trial): the default grace period and
    warm-up of schedulers and pruners, whose clock is episodes (a reporting objective's: its steps)."""
    if spec.objective is not None and reports_steps(spec.objective):
        return 1
    return spec.training_config(space.baseline()).episodes_per_iteration


def planned_iterations(spec: TrialSpec, params: Mapping[str, Any]) -> int:
    """How many iterations a trial with ``params`` trains unless stopped early (1 if the
    params cannot even make a config: such a trial fails at once)."""
    if spec.objective is not None:
        return spec.objective_steps if reports_steps(spec.objective) else 1
    try:
        return spec.training_config(params).total_iterations
    except ValueError:
        return 1


def max_episodes(spec: TrialSpec, space) -> int:
    """The most episodes a trial can train on (ASHA/HyperBand's max_t), over the space's budgets."""
    if spec.objective is not None and reports_steps(spec.objective):
        return spec.objective_steps
    point = space.baseline()
    if "num_episodes" in space:
        dim = space["num_episodes"]
        point["num_episodes"] = dim.high if dim.is_range else max(dim.choices)
    return max(planned_episodes(spec, point), spec.training_config(point).num_episodes)


# A point's key for a schedule to replay ([{iteration, params}], as `lifecycle.schedule_of` gives
# it, or its JSON): a PBT recommendation's validation re-runs and train_with_best_params follow it.
SCHEDULE_KEY = "schedule"
# what a replay keeps from its point whatever the schedule says: the run's own seed and budget
REPLAY_FIXED = ("seed", "num_episodes")


def split_schedule(params: Mapping[str, Any]) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """(the point's training parameters, its schedule: [] when it has none)."""
    params = dict(params)
    schedule = params.pop(SCHEDULE_KEY, None) or []
    return params, json.loads(schedule) if isinstance(schedule, str) else list(schedule)


def stretch_params(params: Dict[str, Any], schedule: List[Dict[str, Any]], iteration: int) -> Dict[str, Any]:
    """The parameters to train iteration ``iteration + 1`` with: the schedule's stretch that
    holds it, over ``params`` (whose seed and budget stay)."""
    current = [entry for entry in schedule if entry["iteration"] <= iteration]
    if not current:
        return params
    changes = {k: v for k, v in current[-1]["params"].items() if k not in REPLAY_FIXED}
    return {**params, **changes}


def build_trainer(spec: TrialSpec, params: Mapping[str, Any]) -> MultiTurnGRPOTrainer:
    config = spec.training_config(params)
    # a LoRA trial trains on this process's loaded base model (see grpo/model_pool.py)
    agent = agent_for_trial(task_agent_config(spec.agent_config, spec.environment), warm=config.use_lora)
    with _SETUP_LOCK:
        return MultiTurnGRPOTrainer(agent, spec.environment, spec.reward, config, test_at_end=spec.test_at_end)


def hand_over(trainer: MultiTurnGRPOTrainer, spec: TrialSpec, params: Mapping[str, Any]) -> MultiTurnGRPOTrainer:
    """The run continued under ``params``: a new trainer restored from this one's state, as a
    PBT exploit restores its donor's (so a replayed schedule trains as the original did)."""
    with tempfile.TemporaryDirectory() as folder:
        trainer.save_checkpoint(folder)
        follower = build_trainer(spec, params)
        follower.load_checkpoint(folder, same_config=False)
    return follower


def train(spec: TrialSpec, params: Mapping[str, Any], report: Reporter,
          restore_from: Optional[Union[str, Path]] = None) -> MultiTurnGRPOTrainer:
    """Train with ``params`` (following its schedule, if it has one), calling ``report`` after
    every iteration until it says stop; the trainer, as it ended."""
    params, schedule = split_schedule(params)
    trainer = build_trainer(spec, stretch_params(params, schedule, 0))
    if restore_from is not None:
        trainer.load_checkpoint(restore_from, same_config=False)
    while trainer.step < trainer.config.total_iterations:
        wanted = stretch_params(params, schedule, trainer.step)
        if schedule and spec.training_config(wanted) != trainer.config:
            trainer = hand_over(trainer, spec, wanted)
        if report(with_derived_metrics(spec, trainer.train_step()), trainer):
            break
    return trainer


def run_trial(spec: TrialSpec, params: Mapping[str, Any], report: Reporter,
              restore_from: Optional[Union[str, Path]] = None) -> Dict[str, float]:
    """Train with ``params``, calling ``report`` after every iteration; the last metrics.

    ``restore_from`` continues from a `MultiTurnGRPOTrainer.save_checkpoint` folder: the
    trial's own (a resumed or retried trial) or another trial's (a PBT exploit, whose
    params differ from the checkpoint's). A point with a schedule (``SCHEDULE_KEY``) changes
    its settings where the schedule says.
    """
    if spec.objective is not None and reports_steps(spec.objective):
        return run_reporting_objective(spec, params, report)
    if spec.objective is not None:
        metrics = with_derived_metrics(spec, {**spec.objective(dict(params)), "iteration": 1})
        report(metrics, None)
        return metrics
    last: Dict[str, float] = {}

    def remember(metrics: Dict[str, float], trainer: Any) -> Optional[bool]:
        nonlocal last
        last = with_derived_metrics(spec, metrics) if spec.trl is not None else metrics
        return report(last, trainer)

    if spec.trl is not None:
        from .trl_engine.run import train as train_trl

        train_trl(spec, params, remember, restore_from)
    else:
        train(spec, params, remember, restore_from)
    return last


def reports_steps(objective: Callable[..., Any]) -> bool:
    """Whether a custom objective takes ``report`` (its second argument) to report every step."""
    import inspect

    try:
        params = list(inspect.signature(objective).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.name == "report" for p in params)


def run_reporting_objective(spec: TrialSpec, params: Mapping[str, Any], report: Reporter) -> Dict[str, float]:
    """``objective(params, report)``: each call of ``report(metrics)`` is one step of the trial
    (numbered from 1; ``episodes`` the step unless the metrics say otherwise), returning True
    when the trial is to stop; the last metrics."""
    from .lifecycle import ObjectiveProgress

    progress = ObjectiveProgress(spec.objective_steps)
    last: Dict[str, float] = {}
    stopped = False

    def report_step(metrics: Mapping[str, float]) -> bool:
        nonlocal last, stopped
        if stopped:
            raise RuntimeError("the trial was stopped at its previous report; the objective must return then")
        progress.step += 1
        last = with_derived_metrics(spec, {"episodes": float(progress.step), **metrics, "iteration": progress.step})
        progress.history.append(last)
        stopped = bool(report(last, progress))
        return stopped

    returned = spec.objective(dict(params), report_step)
    if returned is not None:
        raise ValueError("an objective that reports through `report` returns None: report its final metrics as its "
                         f"last step (it returned {str(returned)[:80]})")
    if not stopped and progress.step < progress.config.total_iterations:
        raise ValueError(f"the objective reported {progress.step} steps of the {progress.config.total_iterations} it "
                         "plans (TrialSpec.objective_steps) without being stopped")
    return last


def with_derived_metrics(spec: TrialSpec, metrics: Dict[str, float]) -> Dict[str, float]:
    out = dict(metrics)
    for name, function in spec.derived_metrics.items():
        if name in metrics:
            raise ValueError(f"derived metric {name!r} would replace the engine's own metric of that name")
        out[name] = float(function(metrics))
    return out
