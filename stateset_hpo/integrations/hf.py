"""`ReportCallback`: any Hugging Face `Trainer` (TRL's included) reporting to the study, so a
custom objective that trains with its own trainer is pruned and scheduled step by step.

    def objective(params, report):
        trainer = Trainer(..., callbacks=[ReportCallback(report)])
        trainer.train()

    spec = TrialSpec(objective=objective, objective_steps=N)  # N: the reports the trainer makes

``on="log"`` (default) reports every log (``logging_steps``: training loss, learning rate,
and for TRL's trainers reward, kl, entropy, ...); ``on="evaluate"`` reports each evaluation
(``eval_loss``, ``eval_*``: what `Trainer.hyperparameter_search` prunes on). When the study
says stop, the callback ends training after that step; the objective then returns.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

from transformers import TrainerCallback

EVENTS = ("log", "evaluate")


class ReportCallback(TrainerCallback):
    def __init__(self, report: Callable[[Mapping[str, float]], bool], on: str = "log") -> None:
        if on not in EVENTS:
            raise ValueError(f"ReportCallback(on=...) must be one of {', '.join(EVENTS)}, got {on!r}")
        self.report, self.on = report, on

    def _send(self, metrics, state, control) -> None:
        numbers = {k.replace("/", "_"): float(v) for k, v in (metrics or {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        if self.report({**numbers, "global_step": float(state.global_step)}):
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        # (the log at the end of train() holds the run's summary, train_runtime..., not a step)
        if self.on == "log" and logs and "train_runtime" not in logs and not any(k.startswith("eval_") for k in logs):
            self._send(logs, state, control)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.on == "evaluate":
            self._send(metrics, state, control)
