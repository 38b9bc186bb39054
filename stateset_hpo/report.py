"""report.html: one page per study, next to summary.json.

The study's settings, totals, the recommended parameters against the space's defaults and the baseline, the
validation verdict (also as a picture), re-runs and what the agent says in a few test conversations, the plots (if saved) and every trial in a table. Plain HTML, no scripts, so it opens anywhere.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Optional, Sequence

from .atomic import write_atomically
from .cost import describe as describe_cost
from .diagnosis import error_line, why_no_success
from .masking import masked
from .plots import PNG_NAMES
from .results import HPOSummary, by_metric
from .summary_text import describe_schedule
from .space import SearchSpace
from .transcripts import degenerate_replies
from .verdict_picture import verdict_svg


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _conversation(transcript: Optional[dict]) -> str:
    if not transcript:
        return "-"
    said = "".join(f"<div><i>{'agent' if m['role'] == 'assistant' else html.escape(m['role'])}:</i> "
                   f"{html.escape(m['content']) or '<i>(empty)</i>'}</div>" for m in transcript["conversation"])
    return f"{said}<div><small>reward {_fmt(transcript.get('reward'))}</small></div>"


def replies_html(validation: dict) -> str:
    """The recommendation's greedy test conversations beside the baseline's (the same
    conversations), with a caution when they look degenerate: what the agent says is the
    first thing a person checks."""
    by_role = {e["role"]: e for e in validation["configurations"]}
    recommended, baseline = by_role["recommended"], by_role.get("baseline", {})
    if not recommended.get("transcripts"):
        return ""
    theirs = {t["index"]: t for t in baseline.get("transcripts", [])}
    rows = "".join(f"<tr><td>{html.escape(str(t['topic']))} (#{t['index']})</td><td>{_conversation(t)}</td>"
                   f"<td>{_conversation(theirs.get(t['index']))}</td></tr>" for t in recommended["transcripts"])
    degenerate = degenerate_replies(recommended["transcripts"])
    caution = (f"<p><b>caution: these replies look degenerate ({html.escape(degenerate)}): a weak policy, or one "
               "that games the reward if the reward scores them well.</b></p>") if degenerate else ""
    seeds = f"seed {_fmt(recommended.get('transcripts_seed'))}" + (
        f" and {_fmt(baseline.get('transcripts_seed'))}" if baseline.get("transcripts_seed") not in
        (None, recommended.get("transcripts_seed")) else "")
    return (f"<h3>What the agent says: greedy replies in test conversations, one per topic ({seeds})</h3>{caution}"
            f"<table><tr><th>conversation</th><th>{html.escape(recommended['label'])} (recommended)</th>"
            f"<th>{html.escape(baseline.get('label', 'baseline'))}</th></tr>{rows}</table>")


def write_report(summary: HPOSummary, space: SearchSpace, output_dir: Path, title: Optional[str] = None,
                 settings: Sequence[str] = ()) -> Path:
    """report.html in ``output_dir``; ``settings`` are the study's settings, one line each
    (study.describe_study), shown first so the page can be read on its own."""
    output_dir = Path(output_dir)
    best, defaults = summary.best_result, space.baseline()
    v = summary.validation if summary.validation and "comparison" in summary.validation else None
    base = next((e["params"] for e in v["configurations"] if e["role"] == "baseline"), {}) if v else {}
    metric = html.escape(summary.objective_metric)
    rows = []
    for name in space.names:
        chosen = best.params.get(name) if best else None
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{_fmt(defaults.get(name))}</td>"
                    f"<td>{_fmt(base.get(name))}</td><td>{_fmt(chosen)}</td></tr>")
    rows.append(f"<tr><th>{metric} (selection)</th><th>{_fmt(summary.baseline_metric)}</th><th>-</th>"
                f"<th>{_fmt(summary.best_metric)}</th></tr>")
    trials = []
    for r in by_metric(summary.all_results, summary.direction):
        error = html.escape((error_line(r.error) if r.error else r.stop_reason or "")[:160])
        params = ", ".join(f"{html.escape(k)}={_fmt(v)}" for k, v in r.params.items())
        trials.append(f"<tr><td>{html.escape(r.trial_id)}</td><td>{r.status.value}</td><td>{_fmt(r.best_metric)}</td>"
                      f"<td>{len(r.history)}</td><td>{r.training_time:.1f}</td><td>{params}</td><td>{error}</td></tr>")
    validation = ""
    if v:
        lines = "".join(f"<tr><td>{html.escape(e['label'])}</td><td>{html.escape(e['role'])}</td>"
                        f"<td>{_fmt(e['mean'])}</td><td>{_fmt(e['std'])}</td>"
                        f"<td>{', '.join(_fmt(x) for x in e['scores'])}</td><td>{len(e['errors'])}</td></tr>"
                        for e in v["configurations"])
        validation = (f"<h2>Validation: the recommendation against the baseline on the test scenarios</h2>"
                      f"<p><b>{html.escape(v['sentence'])}</b></p>"
                      f"<p>scored by {html.escape(str(v['metric']))}, every configuration retrained with the same "
                      f"fresh seeds at {_fmt(v.get('budget_episodes'))} episodes; scores are per-seed means; the "
                      "recommendation was named from the search alone, before these runs.</p>"
                      f"{verdict_svg(v['comparison'], v['recommended'], str(v['metric'])) or ''}"
                      "<table><tr><th>configuration</th><th>role</th><th>mean</th><th>std</th><th>scores</th>"
                      f"<th>failed</th></tr>{lines}</table>{replies_html(v)}")
    study_line = ("<h2>Settings</h2><ul class='settings'>" + "".join(f"<li>{html.escape(line)}</li>" for line in settings)
                  + f"</ul><pre class='space'>{html.escape(space.describe())}</pre>") if settings else ""
    study_line += f"<p>{html.escape(summary.ended_by)}</p>" if summary.ended_by else ""
    study_line += f"<p>cost of the search: {html.escape(describe_cost(summary.cost))}"
    if summary.cost_to_recommendation is not None:
        study_line += f"; up to the recommendation: {html.escape(describe_cost(summary.cost_to_recommendation))}"
    if summary.cost_per_gain is not None:
        study_line += (f"; per unit of {html.escape(summary.gain[1])} ({summary.gain[0]:+.4f}): "
                     f"{html.escape(describe_cost(summary.cost_per_gain))}")
    study_line += "</p>"
    stopped = "".join(f" &middot; stopped by {html.escape(who)}: {n}" for who, n in sorted(summary.stopped_by.items()))
    diagnosis = "".join(f"<p><b>{html.escape(line)}</b></p>" for line in why_no_success(summary))
    racing = ""
    if summary.racing:
        racing = ("<p>raced before naming the recommendation (mean of the objective over the search's run and "
                  f"{summary.racing['seeds']} more seed(s)): "
                  + ", ".join(f"trial {html.escape(t)} {_fmt(e['mean'])}" + (f" ({e['failed']} failed)"
                                                                          if e["failed"] else "")
                              for t, e in summary.racing["trials"].items()) + "</p>")
    warm = ""
    if summary.warm_start:  # what an earlier study gave this one, and from where
        w = summary.warm_start
        rows_ = ([(json.dumps(t["params"]), f"told (earlier {_fmt(t['value'])})") for t in w["told"]]
                 + [(json.dumps(p), "run first") for p in w["first"]])
        warm = (f"<h2>Warm start</h2><p>from {html.escape(masked(w['source']))}"
                + (": nothing transferred" if not rows_ else
                   " (comparable: told to the searcher as observations)" if w["comparable"] else
                   " (not comparable: its scores ordered the first trials only)") + "</p>"
                + ("<table><tr><th>earlier configuration</th><th>used as</th></tr>"
                   + "".join(f"<tr><td>{html.escape(c)}</td><td>{html.escape(u)}</td></tr>" for c, u in rows_)
                   + "</table>" if rows_ else "")
                + ("<p>not transferred: " + html.escape("; ".join(w["dropped"])) + "</p>" if w["dropped"] else ""))
    schedule = ""
    if best is not None and best.schedule:
        schedule = ("<p>The recommendation is a schedule, not one configuration: its settings changed as it trained "
                    "(the column above holds its last ones); validation and train_with_best_params replay it:</p><ul>"
                    + "".join(f"<li>{html.escape(line)}</li>" for line in describe_schedule(best.schedule)) + "</ul>")
    plots = ""
    if (output_dir / "plots" / PNG_NAMES[0]).is_file():
        images = "".join(f"<img src='plots/{name}' alt='{name}' style='max-width:48%;margin:4px'>"
                         for name in PNG_NAMES)
        plots = f"<h2>Plots</h2><p><a href='plots/plots.html'>interactive version</a></p>{images}"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title or 'HPO report')}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}</style></head><body>
<h1>{html.escape(title or 'HPO report')}</h1>
<p>objective: <b>{metric}</b> ({summary.direction}) &middot; trials: {summary.n_trials} &middot;
success {summary.n_successful} &middot; pruned {summary.n_pruned} &middot; failed {summary.n_failed} &middot;
{summary.total_time:.1f} s{stopped} &middot; <a href="summary.json">summary.json</a> &middot; <a href="trials.csv">trials.csv</a></p>
{study_line}{warm}{diagnosis}{racing}<h2>The recommendation against the baseline</h2>
<table><tr><th>parameter</th><th>space default (first trial)</th><th>baseline (base training config)</th>
<th>recommended: trial {html.escape(summary.best_trial_id or '-')}</th></tr>
{''.join(rows)}</table>
{schedule}{validation}
{plots}
<h2>Trials</h2>
<table><tr><th>trial</th><th>status</th><th>{metric}</th><th>iterations</th><th>time s</th><th>parameters</th><th>error or why it stopped</th></tr>
{''.join(trials)}</table></body></html>"""
    path = output_dir / "report.html"
    write_atomically(path, page)
    return path
