"""A study's summary as plain text (what the CLI prints at the end; report.html is report.py):
totals and cost, the recommendation and how it was chosen, the validation verdict, and the
trials ranked by the objective."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List

from .constraints import broken
from .constraints import describe as describe_constraints
from .cost import describe as describe_cost
from .diagnosis import error_line, why_no_success
from .results import by_metric
from .transcripts import degenerate_replies
from .trial_status import TrialStatus

if TYPE_CHECKING:
    from .results import HPOSummary


def describe_schedule(schedule: List[Dict[str, Any]]) -> List[str]:
    """One line per stretch of a schedule: "iterations 1-4: learning_rate=0.001", "from iteration 5: ..."."""
    lines = []
    for entry, after in zip(schedule, schedule[1:] + [None]):
        settings = ", ".join(f"{k}={v!r}" for k, v in entry["params"].items())
        first = entry["iteration"] + 1
        span = f"from iteration {first}" if after is None else (
            f"iteration {first}" if after["iteration"] == first else f"iterations {first}-{after['iteration']}")
        lines.append(f"{span}: {settings}")
    return lines


def format_summary(summary: "HPOSummary", max_rows: int = 20) -> str:
    """A plain-text report: totals, the best trial, and the trials ranked by metric."""
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [
        f"HPO summary  objective: {summary.objective_metric} ({summary.direction})",
        f"trials: {summary.n_trials}  success: {summary.n_successful}  pruned: {summary.n_pruned}  "
        f"failed: {summary.n_failed}  total time: {summary.total_time:.1f}s",
    ]
    lines.append(f"cost: {describe_cost(summary.cost)}")
    if summary.warm_start:
        from .warm_start import WarmStart

        warm = summary.warm_start
        lines.append(WarmStart(warm["source"], warm["comparable"], [(t["params"], t["value"]) for t in warm["told"]],
                               warm["first"], warm["dropped"]).describe())
    if summary.ended_by:
        lines.append(summary.ended_by)
    if summary.stopped_by:
        lines.append("stopped early by: " + ", ".join(f"{who} {n}" for who, n in sorted(summary.stopped_by.items())))
    best = summary.best_result
    if best is None:
        lines.append("best: none (no trial finished successfully"
                     + (f" within the constraints {describe_constraints(summary.constraints)})" if summary.constraints
                        else ")"))
    else:
        named = "the best after racing" if summary.racing else "the search's best"
        lines.append(f"recommended: trial {best.trial_id}  {summary.objective_metric} = {fmt(best.best_metric)} "
                     f"({named}, chosen before validation)")
        if summary.baseline_metric is not None and summary.baseline_trial_id != best.trial_id:
            lines.append(f"the space's defaults (trial {summary.baseline_trial_id}, the search's first): "
                         f"{fmt(summary.baseline_metric)}")
        lines += [f"  {name} = {value!r}" for name, value in best.params.items()]
        if best.schedule:
            lines.append("  a schedule, not one configuration (its settings changed as it trained; validation "
                         "and train_with_best_params replay it):")
            lines += [f"    {line}" for line in describe_schedule(best.schedule)]
        if summary.racing:
            raced = summary.racing["trials"]
            order = [r.trial_id for r in summary.ranked() if r.trial_id in raced]
            lines.append(f"raced on {summary.racing['seeds']} more seed(s) each before naming it (mean "
                         f"{summary.objective_metric} over every run): " + ", ".join(
                             f"trial {t} {raced[t]['mean']:.4f}"
                             + (f" ({raced[t]['failed']} failed)" if raced[t]["failed"] else "") for t in order))
    lines += validation_lines(summary)
    if best is not None:
        lines.append(f"cost of the search up to the recommendation: {describe_cost(summary.cost_to_recommendation)}")
        gain, per = summary.gain, summary.cost_per_gain
        if per is not None:
            lines.append(f"cost per unit of {gain[1]} ({gain[0]:+.4f}): {describe_cost(per)}")
        else:
            lines.append("cost per unit of gain: none (" + ("the validation found no significant gain"
                                                           if summary.validation else "no validation ran") + ")")
    if summary.objective_metrics and len(summary.objective_metrics) > 1:
        lines.append(f"Pareto front ({', '.join(summary.objective_metrics)}): {', '.join(summary.pareto_front)}")
    rows = by_metric(summary.all_results, summary.direction)
    id_width = max([len("trial")] + [len(r.trial_id) for r in rows])
    lines.append("")
    lines.append(f"{'trial':<{id_width}}  {'status':<8}  {'metric':>10}  {'iters':>5}  {'time s':>8}  "
                 "error or why it stopped")
    for r in rows[:max_rows]:
        error = (error_line(r.error) if r.error else r.stop_reason or "")[:80]
        if r.status is TrialStatus.SUCCESS and broken(r.metrics, summary.constraints):
            error = "infeasible: " + ", ".join(broken(r.metrics, summary.constraints))
        lines.append(f"{r.trial_id:<{id_width}}  {r.status.value:<8}  {fmt(r.best_metric):>10}  "
                     f"{len(r.history):>5}  {r.training_time:>8.1f}  {error}")
    if len(rows) > max_rows:
        lines.append(f"... {len(rows) - max_rows} more trials")
    diagnosis = why_no_success(summary)
    if diagnosis:
        lines += [""] + diagnosis
    return "\n".join(lines)

def validation_lines(summary: "HPOSummary") -> List[str]:
    """The validation block as text: each configuration's test scores, then the verdict."""
    v = summary.validation
    if not v:
        return []
    fmt = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
    if "comparison" not in v:  # written before the paired comparison existed
        lines = [f"validation (retrained with fresh seeds, held-out {v['metric']}):"]
        lines += [f"  {e['label']:<24} {fmt(e['mean'])} +- {fmt(e['std'])}" for e in v["configurations"]]
        return lines
    budget = f", {v['budget_episodes']} episodes each" if v.get("budget_episodes") else ""
    where = "test scenarios" if v["held_out"] else "not a held-out score"
    lines = [f"validation: retrained with {len(v['configurations'][0]['seeds'])} fresh seeds{budget}, "
             f"scored by {v['metric']} ({where}):"]
    for e in v["configurations"]:
        role = {"recommended": "  <- recommended", "other": "  (not the recommendation)"}.get(e["role"], "")
        failed = f"  ({len(e['errors'])} failed)" if e["errors"] else ""
        lines.append(f"  {e['label']:<16} {fmt(e['mean'])} +- {fmt(e['std'])}  over {len(e['scores'])} seeds"
                     f"{failed}{role}")
    if v.get("space_defaults_differ"):
        lines.append("  baseline = the base training configuration; the space's defaults differ in "
                     + ", ".join(f"{k} (space default {d!r})" for k, d in v["space_defaults_differ"].items()))
    lines.append(v["sentence"])
    recommended = next(e for e in v["configurations"] if e["role"] == "recommended")
    degenerate = degenerate_replies(recommended.get("transcripts", []))
    if degenerate:
        lines.append(f"caution: the recommendation's greedy test replies look degenerate ({degenerate}); read "
                     "them in report.html before acting on this verdict")
    return lines
