"""Why a study found nothing, and what to change: the last lines of a study none of whose
trials succeeded.

"best: none" alone leaves a new user stuck: the guide's own `conservative` space on the tiny
model stops every trial as `policy_frozen` after one update. When most trials were stopped by
the same health rule, the diagnosis names the rule, the numbers that led there (one trial's
reason, the searched learning rates) and what to change: the range or budget, or the flag
that turns the rule off. When most trials failed, it gives the most common error once.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, List

from .trial_status import TrialStatus

if TYPE_CHECKING:
    from .results import HPOSummary

# health rule -> (the setting that turns it off, what to change instead)
ADVICE = {
    "policy_frozen": ("kl_floor", "the updates are too small to move the policy: raise learning_rate (the "
                                  "space's lower end), or train each trial longer (--set num_episodes=N)"),
    "replies_unchanged": ("unchanged_fraction", "the updates never changed a held-out reply: raise learning_rate, "
                                                "or train each trial longer (--set num_episodes=N)"),
    "no_learning_signal": ("zero_std_fraction", "every reply of a group scored the same, so there was no "
                                                "gradient: raise temperature or group_size (TRL: num_generations), or use a reward that "
                                                "tells replies apart"),
    "kl_runaway": ("kl_max", "the policy ran away from the reference: lower learning_rate or raise kl_penalty_coef "
                             "(TRL: beta)"),
    "entropy_floor": ("entropy_min", "sampling collapsed to one reply: raise temperature or lower learning_rate"),
    "entropy_ceiling": ("entropy_max", "sampling went random: lower learning_rate or temperature"),
    "entropy_blowup": ("entropy_rise", "sampling went random: lower learning_rate or temperature"),
    "length_limit": ("length_limit_iterations", "every reply ran to the length limit: raise max_new_tokens (TRL: "
                                                "max_completion_length) or "
                                                "reward concise replies"),
    "reward_collapse": ("collapse_fraction", "the held-out reward fell from its best: lower learning_rate or "
                                             "raise kl_penalty_coef (TRL: beta)"),
}


def error_line(text: str) -> str:
    """The line of a trial's error text that says what went wrong: a traceback's last (Ray's
    errors carry one), else the first ("DivergenceError: ...")."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if any(line.startswith("Traceback") for line in lines) else lines[0]


def why_no_success(summary: "HPOSummary") -> List[str]:
    """Lines for a study in which no trial succeeded (empty when one did, or none ran)."""
    results = summary.all_results
    if summary.best_result is not None or not results:
        return []
    n = len(results)
    stopped = Counter(r.stopped_by for r in results if r.stopped_by)
    failed = [r for r in results if r.status is TrialStatus.FAILED]
    lines = []
    if stopped:
        rule, count = stopped.most_common(1)[0]
        if count * 2 >= n:
            example = next(r for r in results if r.stopped_by == rule)
            rates = sorted(r.params["learning_rate"] for r in results
                           if r.stopped_by == rule and isinstance(r.params.get("learning_rate"), (int, float)))
            lines.append(f"why: {count} of {n} trials were stopped by the health rule {rule}; e.g. trial "
                         f"{example.trial_id}: {example.stop_reason}"
                         + (f"; their learning rates: {rates[0]:.3g} to {rates[-1]:.3g}" if rates else ""))
            if rule in ADVICE:
                setting, advice = ADVICE[rule]
                lines.append(f"what to change: {advice}; or let such trials run: --health {setting}=null")
            elif rule in ("scheduler", "pruner"):
                lines.append("what to change: the scheduler or pruner stopped them before their end: give trials a "
                             "longer grace period, or compare them at their end (--scheduler fifo / --pruner none)")
    if failed and len(failed) * 2 >= n:
        errors = Counter(error_line(r.error)[:300] or "no error text" for r in failed)
        error, count = errors.most_common(1)[0]
        lines.append(f"why: {len(failed)} of {n} trials failed; the most common error ({count} of them): {error}")
        lines.append("what to change: fix that error (each trial's error is in trials.csv; --verbose shows the "
                     "libraries' tracebacks); a study whose trials fail has nothing to recommend")
    return lines
