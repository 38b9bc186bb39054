"""One trial on TRL's `GRPOTrainer`, reporting every optimizer step like a trial of our engine.

`TRLRun` is what the study's trial lifecycle sees of a trainer (`lifecycle.TrialReporter`):
``config`` (the clock), ``history``, ``save_checkpoint``, the test split's transcripts. A
`TrainerCallback` turns each of TRL's step logs into the study's metrics (TRL's names mapped
to the ones health rules, objectives and reports read: ``completions/mean_length`` is
``completion_length``, ``clip_ratio/region_mean`` is ``clip_ratio``; the rest kept with ``/``
as ``_``), adds the held-out evaluation every ``eval_every`` steps, and hands them to the
backend's reporter; a reporter that says stop (a pruner, a scheduler, a health rule) ends
training there (``control.should_training_stop``).

Checkpoints are TRL's own (`Trainer`'s checkpoint folder: adapter only under LoRA, optimizer,
scheduler, RNG state), so a trial resumes with ``resume_from_checkpoint`` as a TRL user would.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Union

from transformers import TrainerCallback

from ..lifecycle import continued_schedule
from .config import TRLTrainingConfig
from .evaluation import evaluate
from .task import TRLTask

from ..trial import split_schedule, stretch_params

if TYPE_CHECKING:
    from ..trial import TrialSpec

HISTORY_FILE = "stateset_trl_run.json"  # beside TRL's own files in a checkpoint: the run's metrics so far
RENAMED = {"completions/mean_length": "completion_length", "clip_ratio/region_mean": "clip_ratio"}
TRANSCRIPTS_KEPT = 5


def reported_metrics(task: TRLTask, test: bool = False) -> set:
    """The names a TRL trial reports for sure (TRL's own optional logs aside), so a study can
    refuse an objective no trial reports before the first trial."""
    names = {"reward", "reward_std", "frac_reward_zero_std", "completion_length", "loss", "entropy", "grad_norm",
             "learning_rate", "eval_reward", "eval_replies_changed", "iteration", "episodes", "step_time",
             "tokens_per_s", "generated_tokens", "optimizer_steps", "kl", "clip_ratio"}
    names |= {f"{n}_score" for n in task.reward_names} | {f"eval_{n}_score" for n in task.reward_names}
    if test:
        names |= {"test_reward"} | {f"test_{n}_score" for n in task.reward_names}
    return names


class TRLRun:
    """A TRL trial in progress: the trainer and what the study's reporter reads of it."""

    def __init__(self, spec: "TrialSpec", config: TRLTrainingConfig, output_dir: str) -> None:
        from datasets import Dataset
        from transformers import PrinterCallback
        from trl import GRPOTrainer

        from ..grpo import MultiTurnAgent
        from ..grpo.tiny_model import task_agent_config

        self.task: TRLTask = spec.trl
        self.config = config
        self.test_at_end = spec.test_at_end
        self.history: List[Dict[str, float]] = []
        self.config_schedule = [{"iteration": 0, "config": config.to_dict()}]  # (lifecycle.schedule_of reads it)
        self.test_transcripts: List[Dict[str, Any]] = []
        self.first_replies: Optional[List[str]] = None
        self.generated_tokens = 0.0
        self.exploited = False  # restored from another configuration's checkpoint
        agent = MultiTurnAgent(task_agent_config(spec.agent_config, spec.environment)).initialize()
        dtype = str(next(agent.model.parameters()).dtype).removeprefix("torch.")
        self.args = config.grpo_config(output_dir, agent.device.type, dtype)
        self.forward = _Forward(self)
        self.tokenizer = agent.tokenizer
        self.trainer = GRPOTrainer(model=agent.model, reward_funcs=list(self.task.reward_funcs), args=self.args,
                                   train_dataset=Dataset.from_list(self.task.train), processing_class=agent.tokenizer,
                                   peft_config=self.task.peft_config, callbacks=[self.forward])
        self.trainer.remove_callback(PrinterCallback)  # (it prints every step's logs)
        self.report: Callable[[Dict[str, float], Any], Optional[bool]] = lambda metrics, run: None

    @property
    def step(self) -> int:
        return self.trainer.state.global_step

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, folder: Union[str, Path]) -> Path:
        """TRL's checkpoint of this step, with the run's history, into ``folder``."""
        folder = Path(folder)
        # Trainer's own checkpoint writer: no public method writes a resumable checkpoint (weights,
        # optimizer, scheduler, RNG, trainer state) at a step the trainer did not plan to save at
        self.trainer._save_checkpoint(self.trainer.model, trial=None)
        written = Path(self.args.output_dir) / f"checkpoint-{self.step}"
        folder.mkdir(parents=True, exist_ok=True)
        for item in written.iterdir():
            target = folder / item.name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(item), str(target))
        shutil.rmtree(written, ignore_errors=True)
        (folder / HISTORY_FILE).write_text(json.dumps({
            "history": self.history, "generated_tokens": self.generated_tokens, "first_replies": self.first_replies,
            "config_schedule": self.config_schedule}))
        return folder

    def restore_state(self, folder: Union[str, Path]) -> None:
        """What the run had measured and how it was configured, from a checkpoint (TRL's part,
        the weights and optimizer, is loaded by ``train(resume_from_checkpoint=...)``)."""
        saved, step = json.loads((Path(folder) / HISTORY_FILE).read_text()), _checkpoint_step(folder)
        self.history = [h for h in saved["history"] if h["iteration"] <= step]
        self.generated_tokens = saved["generated_tokens"]
        self.first_replies = saved["first_replies"]
        # another configuration's checkpoint (a PBT exploit): the donor's past, then this trial's settings
        self.config_schedule = continued_schedule(saved["config_schedule"], step, self.config.to_dict())
        self.exploited = saved["config_schedule"][-1]["config"] != self.config.to_dict()

    # -- one step's metrics --------------------------------------------------------------------
    def metrics_of(self, logs: Mapping[str, Any], seconds: float) -> Dict[str, float]:
        step = self.step
        metrics: Dict[str, float] = {}
        for key, value in logs.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                name = RENAMED.get(key, key)
                if name.startswith("rewards/") and name.endswith("/mean"):
                    name = name[len("rewards/"):-len("/mean")] + "_score"
                metrics[name.replace("/", "_")] = float(value)
        per_step = self.config.episodes_per_iteration
        if "completion_length" in metrics:
            self.generated_tokens += metrics["completion_length"] * per_step
        metrics.update(iteration=float(step), episodes=float(step * per_step), optimizer_steps=float(step),
                       step_time=seconds, generated_tokens=self.generated_tokens,
                       tokens_per_s=metrics.get("completion_length", 0.0) * per_step / max(seconds, 1e-9))
        last = step >= self.config.total_iterations
        if step % self.config.eval_every == 0 or last:
            metrics.update(self._evaluate("selection"))
        if last and self.test_at_end:
            metrics.update(self._evaluate("test"))
        return metrics

    def _evaluate(self, split: str) -> Dict[str, float]:
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        weights = self.args.reward_weights
        got = evaluate(self.task, model, self.tokenizer, split, self.config.eval_max_new_tokens, weights,
                       self.trainer.state)
        metrics = dict(got["metrics"])
        if split == "selection":
            if self.first_replies is None:
                self.first_replies = got["replies"]
            metrics["eval_replies_changed"] = float(sum(a != b for a, b in zip(got["replies"], self.first_replies)))
        else:
            self.test_transcripts = transcripts(self.task.test, got["replies"],
                                                [metrics[f"test_reward[{i}]"] for i in range(len(self.task.test))])
        return metrics


def transcripts(rows: List[Dict[str, Any]], replies: List[str], rewards: List[float]) -> List[Dict[str, Any]]:
    """A few test conversations in `transcripts.transcripts`' shape (the report reads them):
    the first of each topic, or the first few rows when the data has no topics."""
    out, seen = [], set()
    for index, (row, reply, reward) in enumerate(zip(rows, replies, rewards)):
        topic = str(row.get("topic", "-"))
        if topic in seen and (topic != "-" or len(out) >= TRANSCRIPTS_KEPT):
            continue
        seen.add(topic)
        prompt = row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}]
        out.append({"index": index, "topic": topic, "reward": reward,
                    "conversation": [dict(m) for m in prompt if m["role"] != "system"]
                    + [{"role": "assistant", "content": reply}]})
    return out


def _checkpoint_step(folder: Union[str, Path]) -> int:
    return int(json.loads((Path(folder) / "trainer_state.json").read_text())["global_step"])


class _Forward(TrainerCallback):
    """Each training log (one per optimizer step) to the study's reporter; ``step_time`` is the
    time from the end of the previous report (the held-out evaluation is not counted)."""

    def __init__(self, run: TRLRun) -> None:
        self.run = run
        self.since = time.perf_counter()

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        if self.run.exploited and optimizer is not None:
            # restored from another configuration's checkpoint (a PBT exploit): the optimizer and
            # scheduler state are the donor's, including its learning rate, weight decay and betas,
            # which Trainer loads as they were; the trial's own take over from here
            for group in optimizer.param_groups:
                if group.get("weight_decay"):  # (Trainer's group of biases and norms has none, and keeps none)
                    group["weight_decay"] = args.weight_decay
                if "betas" in group:
                    group.update(betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon)
            lr_scheduler.base_lrs = [args.learning_rate for _ in lr_scheduler.base_lrs]
            for group, factor in zip(optimizer.param_groups, lr_scheduler.lr_lambdas):
                group["initial_lr"] = args.learning_rate
                group["lr"] = args.learning_rate * factor(lr_scheduler.last_epoch)
            lr_scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # (what step() sets; logged)
        self.since = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:  # (the summary log at the end of train())
            return
        metrics = self.run.metrics_of(logs, time.perf_counter() - self.since)
        self.run.history.append(metrics)
        if self.run.report(metrics, self.run):
            control.should_training_stop = True
        self.since = time.perf_counter()


def train(spec: "TrialSpec", params: Mapping[str, Any], report: Callable[[Dict[str, float], Any], Optional[bool]],
          restore_from: Optional[Union[str, Path]] = None) -> TRLRun:
    """Train a TRL trial with ``params``, calling ``report(metrics, run)`` after every optimizer
    step until it says stop; ``restore_from``: a `TRLRun.save_checkpoint` folder to continue
    from (the trial's own, or a PBT donor's). A point with a schedule (a PBT trial replayed)
    trains each stretch under its settings, handing the weights and optimizer on through a
    checkpoint, as the exploit did. The run, as it ended."""
    params, schedule = split_schedule(params)
    starts = [entry["iteration"] for entry in schedule] or [0]
    stopped = False
    with tempfile.TemporaryDirectory(prefix="stateset-trl-") as scratch:
        for number, start in enumerate(starts):
            end = starts[number + 1] if number + 1 < len(starts) else None
            done = _checkpoint_step(restore_from) if restore_from is not None else 0
            if end is not None and end <= done:
                continue  # (a restored run past this stretch)

            def relay(metrics: Dict[str, float], run: TRLRun) -> bool:
                nonlocal stopped, restore_from
                stopped = bool(report(metrics, run))
                if not stopped and end is not None and metrics["iteration"] >= end:
                    restore_from = run.save_checkpoint(Path(scratch) / f"stretch-{number}")
                    return True  # the next stretch goes on from here
                return stopped

            run = TRLRun(spec, spec.training_config(stretch_params(params, schedule, start)), scratch)
            run.report = relay
            if restore_from is not None:
                run.restore_state(restore_from)
            run.trainer.train(resume_from_checkpoint=str(restore_from) if restore_from is not None else None)
            if stopped:
                break
    return run
