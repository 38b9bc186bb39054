"""Plots of a finished study, from its HPOSummary, whatever backend ran it.

Four views: optimization history (each trial's objective and the best so far, against the
trial number and against wall time), parameter importances (Optuna's fANOVA evaluator over
the successful trials, so they exist for Ray and W&B studies too), parallel coordinates (each
successful trial's parameters, coloured by its objective) and learning curves (every trial's
objective per iteration, the best trials named in the legend; pruned trials end early, marked
with an x). Each is a PNG (matplotlib, no browser or display needed); all of them are also in
one interactive HTML page (plotly, with plotly.js embedded so it opens offline).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Dict, List

from .results import HPOSummary, TrialStatus, is_better
from .search.optuna.space import to_optuna
from .space import SearchSpace

PNG_NAMES = ("optimization_history.png", "param_importances.png", "parallel_coordinates.png",
             "learning_curves.png")


MIN_TRIALS_FOR_IMPORTANCE = 8  # below this, fANOVA's ranking of parameters is noise
LABELLED_CURVES = 8  # learning curves named in the legend (the best successful trials); the rest grey


def param_importances(summary: HPOSummary, space: SearchSpace) -> Dict[str, float]:
    """Importance of each searched parameter for the objective (sums to 1), computed by
    Optuna's importance evaluator from the successful trials; {} with fewer than
    MIN_TRIALS_FOR_IMPORTANCE (a forest fitted to a handful of noisy points ranks noise)."""
    import optuna

    from .library_logs import logger_level

    scored = summary.ranked()
    if len(scored) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}
    distributions = to_optuna(space)
    with logger_level("optuna", logging.WARNING):  # a scratch study
        study = optuna.create_study(direction=summary.direction)
    for r in scored:
        names = [n for n in r.params if n in distributions]
        study.add_trial(optuna.trial.create_trial(params={n: r.params[n] for n in names},
                                                  distributions={n: distributions[n] for n in names},
                                                  value=r.best_metric))
    try:
        return dict(optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)))
    except (ValueError, RuntimeError):  # e.g. every trial with the same parameters
        return {}


def _numeric(values: List) -> List[float]:
    """Axis positions for a parameter: numbers as they are (log10 for log ranges is done by
    the caller), categories by their index."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values]
    labels = sorted({str(v) for v in values})
    return [float(labels.index(str(v))) for v in values]


def save_plots(summary: HPOSummary, space: SearchSpace, output_dir: Path) -> List[Path]:
    """Write the four PNGs and plots.html into ``output_dir/plots``; their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    folder = Path(output_dir) / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    metric = summary.objective_metric
    importances = param_importances(summary, space)
    paths = []

    # 1. optimization history, against the trial number and against the study's wall time
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, clock, label in ((axes[0], lambda i, r: i, "trial (in creation order)"),
                             (axes[1], lambda i, r: r.ended_at, "seconds since the study started (trial end)")):
        timed = [(clock(i, r), r) for i, r in enumerate(summary.all_results) if clock(i, r) is not None]
        timed.sort(key=lambda item: item[0])
        best, running = [], None
        for _, r in timed:
            if r.status is TrialStatus.SUCCESS and r.best_metric is not None and \
                    is_better(r.best_metric, running, summary.direction):
                running = r.best_metric
            best.append(math.nan if running is None else running)
        for status, marker, colour in ((TrialStatus.SUCCESS, "o", "tab:blue"),
                                       (TrialStatus.PRUNED, "x", "tab:orange"), (TrialStatus.FAILED, "s", "tab:red")):
            points = [(x, r.best_metric) for x, r in timed if r.status is status and r.best_metric is not None]
            if points:
                ax.scatter(*zip(*points), marker=marker, color=colour, label=f"{status.value} trials")
        if timed:
            ax.step([x for x, _ in timed], best, where="post", color="tab:green", label="best so far")
        else:  # (a resumed study's earlier trials have no end time)
            ax.text(0.5, 0.5, "no trial end times recorded", ha="center", transform=ax.transAxes)
        ax.set(xlabel=label)
        ax.legend()
    axes[0].set(ylabel=metric, title=f"Optimization history ({summary.direction})")
    axes[0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[1].set(title="against wall time")
    paths.append(_save(fig, folder / PNG_NAMES[0]))

    # 2. parameter importances
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.4 * len(importances) + 1)))
    if importances:
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names], color="tab:blue")
        ax.set(xlabel=f"importance for {metric} (fANOVA, sums to 1)", title="Parameter importances")
    else:
        ax.text(0.5, 0.5, f"not shown: importances need at least {MIN_TRIALS_FOR_IMPORTANCE} successful trials with\n"
                f"different parameters (this study has {len(summary.ranked())} successful)", ha="center")
        ax.set_axis_off()
    paths.append(_save(fig, folder / PNG_NAMES[1]))

    # 3. parallel coordinates
    scored = summary.ranked()
    names = [d.name for d in space if any(d.name in r.params for r in scored)]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(names) + 2), 4.5))
    if scored and names:
        columns = []
        for n in names:
            values = _numeric([r.params.get(n) for r in scored])
            if space[n].is_log:
                values = [math.log10(v) for v in values]
            low, high = min(values), max(values)
            columns.append([(v - low) / (high - low) if high > low else 0.5 for v in values])
        scores = [r.best_metric for r in scored]
        norm = matplotlib.colors.Normalize(min(scores), max(scores))
        cmap = matplotlib.colormaps["viridis"]
        for j, score in enumerate(scores):
            ax.plot(range(len(names)), [c[j] for c in columns], color=cmap(norm(score)), alpha=0.8)
        ax.set_xticks(range(len(names)), [n + (" (log)" if space[n].is_log else "")
                                          for n in names], rotation=30, ha="right")
        ax.set(ylabel="position in the sampled range (0 = lowest)", title="Parallel coordinates")
        fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
    else:
        ax.text(0.5, 0.5, "no successful trial", ha="center")
        ax.set_axis_off()
    paths.append(_save(fig, folder / PNG_NAMES[2]))

    # 4. learning curves: the best trials named in the legend (best first), the others grey
    fig, ax = plt.subplots(figsize=(8, 4.5))
    palette = [c for i, c in enumerate(matplotlib.colormaps["tab10"].colors) if i != 7]  # (tab10's 7 is grey)
    named = [r.trial_id for r in scored[:LABELLED_CURVES]]
    others_labelled = False
    for r in sorted(summary.all_results, key=lambda r: named.index(r.trial_id) if r.trial_id in named else len(named)):
        steps = [(h.get("iteration"), h.get(metric)) for h in r.history
                 if h.get("iteration") is not None and h.get(metric) is not None]
        if not steps:
            continue
        style = {"linestyle": "--" if r.status is TrialStatus.PRUNED else "-"}
        if r.trial_id in named:
            style.update(label=f"trial {r.trial_id} ({r.best_metric:.3g})", alpha=0.9, zorder=3,
                         color=palette[named.index(r.trial_id) % len(palette)])
        else:
            style.update(color="0.65", alpha=0.6, linewidth=0.9, zorder=2,
                         label=None if others_labelled else "other trials")
            others_labelled = True
        ax.plot(*zip(*steps), **style)
        if r.status is TrialStatus.PRUNED:
            ax.scatter([steps[-1][0]], [steps[-1][1]], marker="x", color=style["color"], zorder=style["zorder"])
    ax.set(xlabel="training iteration", ylabel=metric,
           title=f"Learning curves (the best {LABELLED_CURVES} named; dashed, x: pruned early)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if ax.lines:
        ax.legend(fontsize="small", loc="best")
    paths.append(_save(fig, folder / PNG_NAMES[3]))

    paths.append(_interactive(summary, importances, scored, names, folder / "plots.html"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _interactive(summary: HPOSummary, importances: Dict[str, float], scored, names: List[str], path: Path) -> Path:
    import plotly.graph_objects as go

    metric = summary.objective_metric
    figures = []
    fig = go.Figure()
    for status in TrialStatus:
        rows = [(i, r) for i, r in enumerate(summary.all_results) if r.status is status and r.best_metric is not None]
        if rows:
            fig.add_scatter(x=[i for i, _ in rows], y=[r.best_metric for _, r in rows], mode="markers",
                            name=status.value, text=[f"trial {r.trial_id}: {r.params}" for _, r in rows])
    fig.update_layout(title="Optimization history", xaxis_title="trial", yaxis_title=metric)
    figures.append(fig)
    fig = go.Figure()
    for status in TrialStatus:
        rows = [r for r in summary.all_results if r.status is status and r.best_metric is not None
                and r.ended_at is not None]
        if rows:
            fig.add_scatter(x=[r.ended_at for r in rows], y=[r.best_metric for r in rows], mode="markers",
                            name=status.value, text=[f"trial {r.trial_id}: {r.params}" for r in rows])
    fig.update_layout(title="Optimization history against wall time", xaxis_title="seconds since the study started",
                      yaxis_title=metric)
    figures.append(fig)
    if importances:
        fig = go.Figure(go.Bar(x=list(importances.values()), y=list(importances), orientation="h"))
        fig.update_layout(title="Parameter importances (fANOVA)", xaxis_title="importance")
        figures.append(fig)
    if scored and names:
        dims = []
        for n in names:
            values = [r.params.get(n) for r in scored]
            numeric = _numeric(values)
            dims.append(dict(label=n, values=numeric))
        fig = go.Figure(go.Parcoords(line=dict(color=[r.best_metric for r in scored], showscale=True,
                                               colorbar=dict(title=metric)), dimensions=dims))
        fig.update_layout(title="Parallel coordinates")
        figures.append(fig)
    fig = go.Figure()
    for r in summary.all_results:
        steps = [(h.get("iteration"), h.get(metric)) for h in r.history if h.get(metric) is not None]
        if steps:
            fig.add_scatter(x=[s[0] for s in steps], y=[s[1] for s in steps], mode="lines+markers",
                            name=f"trial {r.trial_id} ({r.status.value})",
                            line=dict(dash="dash" if r.status is TrialStatus.PRUNED else "solid"))
    fig.update_layout(title="Learning curves", xaxis_title="training iteration", yaxis_title=metric)
    figures.append(fig)
    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figures)]
    path.write_text("<!doctype html><html><head><meta charset='utf-8'><title>stateset-hpo plots</title></head>"
                    f"<body>{''.join(parts)}</body></html>")
    return path

