"""Is the recommended configuration better than the baseline? A paired test that may say no.

Both configurations are trained with the same seeds and scored on the same test
conversations, so the data is a matrix of differences ``d[seed][conversation]`` (the sign
turned so that positive means better in the study's direction). Two sources of noise move
its mean: the seed (a whole training run goes better or worse) and the conversation (some are
harder). Both are treated as random, crossed effects, and the variance of the mean difference
is the two-way ANOVA estimate ``var(seed means) / S + var(conversation means) / C - MSE / (S C)``
(each of the first two also holds the interaction, MSE the residual mean square), never
below either of the first two. The 95% interval and p-value come from Student's t with S - 1
degrees of freedom: exact when the seed dominates (as in RL), conservative otherwise.
Measured on null studies (bench/validity.py, A/A): Welch-Satterthwaite df instead called 8%
of them significant (the seed variance rests on 2 df with 3 seeds); counting the interaction
twice instead floored the variance and called none.

Why not a bootstrap or a Wilcoxon test over all seed x conversation cells: validation has
few seeds (3 by default). Cells of one seed are not independent, so a cell-level test
ignores the seed-to-seed variation that dominates RL results, and a bootstrap over 3 seeds
underestimates it by a third; the t interval with about S - 1 degrees of freedom is wide when
it should be. `bench/validity.py` checks the false-positive rate of the whole study (A/A).
"""

from __future__ import annotations

import math
import statistics
from typing import Dict, List, Optional, Sequence

BETTER, WORSE, NO_DIFFERENCE, UNTESTED = "better", "worse", "no significant difference", "untested"
UNSTABLE = "not better: failed in some seeds"  # ahead where it finished, but some of its runs failed
LEVEL = 0.95


def paired_gain(candidate: Dict[int, Sequence[float]], baseline: Dict[int, Sequence[float]],
                sign: float = 1.0, groups: Optional[Sequence[str]] = None, looks: int = 1) -> Dict:
    """Compare two configurations run with the same seeds on the same conversations.

    ``candidate`` / ``baseline`` map a seed to that run's per-conversation scores (one score
    when only the mean is known); seeds missing on either side are left out. ``sign`` is
    -1 when lower is better. ``groups`` (optional) names each conversation's cluster, e.g. its
    topic: conversations of one topic share its effect, so they are not independent evidence
    (the built-in test split's 60 conversations are 5 topics x 12 wordings). The conversation factor is then the
    group: the differences are averaged per (seed, group) cell and the crossed formula runs on
    seeds x groups, with Satterthwaite's degrees of freedom for its three mean squares (at
    least ``min(S, G) - 1``, at most ``S + G - 2``; the one component's own where it alone is
    the estimate). Measured (tests/test_validation.py): with topic-clustered effects and
    5 seeds, treating conversations as independent called 6-15% of null comparisons
    significant; with topics, one-sided false gains stay at or below the nominal 2.5%, and at
    3 seeds x 5 topics a true +0.05 is found about twice as often as with ``min(S, G) - 1``
    degrees of freedom (0.45 against 0.18), which left 2 whatever the data. ``looks``: how many looks at the data a sequential validation planned; the
    verdict then rests on the interval at level ``1 - 0.05 / looks`` (``ci_adjusted``: Bonferroni
    over the looks keeps the chance of any false verdict at 5%), ``ci95`` stays the plain one.
    Returns gain (candidate - baseline, positive = better), the intervals, p-value, verdict,
    ``detectable_gain`` (the smallest true gain this design finds 80% of the time) and the
    counts it rests on."""
    seeds = sorted(set(candidate) & set(baseline))
    widths = {len(candidate[s]) for s in seeds} | {len(baseline[s]) for s in seeds}
    if len(widths) > 1:
        raise ValueError(f"the two configurations were scored on different numbers of conversations: {sorted(widths)}")
    width = widths.pop() if widths else 0
    if groups is not None and len(groups) != width:
        groups = None  # (scores that are one mean per run, or of another split: nothing to group)
    out = {"n_seeds": len(seeds), "n_conversations": width, "level": LEVEL,
           "gain": None, "ci95": None, "p_value": None, "verdict": UNTESTED,
           "method": "paired t over seeds and conversations (crossed random effects, conservative df)"}
    if not seeds:
        return out
    d = [[sign * (c - b) for c, b in zip(candidate[s], baseline[s])] for s in seeds]
    gain = statistics.fmean(x for row in d for x in row)
    out["gain"] = gain
    if len(seeds) < 2:
        return out  # one seed cannot measure how much a run varies from seed to seed
    df = len(seeds) - 1
    names = sorted(set(groups)) if groups is not None else []
    if len(names) > 1:
        columns = {g: [j for j, name in enumerate(groups) if name == g] for g in names}
        d = [[statistics.fmean(row[j] for j in columns[g]) for g in names] for row in d]
        df = min(df, len(names) - 1)
        gain = statistics.fmean(x for row in d for x in row)  # each group weighs the same (equal sizes: no change)
        out.update(gain=gain, n_groups=len(names), method="paired t over seeds and conversation groups (topics) "
                                              "(crossed random effects, Satterthwaite df)")
    by_seed = [statistics.fmean(row) for row in d]
    n_s, n_c = len(seeds), len(d[0])
    variance = statistics.variance(by_seed) / n_s
    if n_c > 1:
        by_conversation = [statistics.fmean(col) for col in zip(*d)]
        v_c = statistics.variance(by_conversation) / n_c
        mse = sum((d[i][j] - by_seed[i] - by_conversation[j] + gain) ** 2
                  for i in range(n_s) for j in range(n_c)) / ((n_s - 1) * (n_c - 1))
        v_e = mse / (n_s * n_c)
        combined = variance + v_c - v_e
        if len(names) > 1:  # the degrees of freedom of the variance estimate used below
            if combined >= max(variance, v_c):  # Satterthwaite, for the combination
                parts = variance ** 2 / (n_s - 1) + v_c ** 2 / (n_c - 1) + v_e ** 2 / ((n_s - 1) * (n_c - 1))
                df = max(df, min(combined ** 2 / parts, n_s - 1 + n_c - 1)) if parts > 0 else df
            else:  # one component alone: its own
                df = n_c - 1 if v_c > variance else n_s - 1
        variance = max(combined, variance, v_c)
    if variance <= 0.0:  # every difference identical: exact, no noise to test against
        out.update(ci95=[gain, gain], p_value=1.0 if gain == 0 else 0.0,
                   verdict=NO_DIFFERENCE if gain == 0 else (BETTER if gain > 0 else WORSE))
        return out
    from scipy import stats

    se = math.sqrt(variance)
    half = stats.t.ppf(0.5 + LEVEL / 2, df) * se
    level = 1 - (1 - LEVEL) / looks
    critical = stats.t.ppf(0.5 + level / 2, df)
    low, high = gain - critical * se, gain + critical * se
    out.update(ci95=[float(gain - half), float(gain + half)], df=df,
               p_value=float(2 * stats.t.sf(abs(gain) / se, df)),
               detectable_gain=float((critical + stats.t.ppf(0.8, df)) * se),
               verdict=BETTER if low > 0 else WORSE if high < 0 else NO_DIFFERENCE)
    if looks > 1:
        out.update(looks=looks, level_adjusted=level, ci_adjusted=[float(low), float(high)])
    return out


def power_at(comparison: Dict, gain: float) -> Optional[float]:
    """The chance this comparison's design (its standard error and degrees of freedom) calls a
    true gain of ``gain`` better; None when it has no interval (fewer than 2 seeds, no noise)."""
    if comparison.get("df") is None or not comparison.get("ci95") or comparison["ci95"][0] == comparison["ci95"][1]:
        return None
    from scipy import stats

    df = comparison["df"]
    se = (comparison["ci95"][1] - comparison["ci95"][0]) / (2 * stats.t.ppf(0.5 + LEVEL / 2, df))
    level = comparison.get("level_adjusted", LEVEL)
    return float(stats.t.sf(stats.t.ppf(0.5 + level / 2, df) - gain / se, df))


def interval(comparison: Dict) -> Optional[List[float]]:
    """The interval the verdict rests on (adjusted for sequential looks where there were any)."""
    return comparison.get("ci_adjusted") or comparison.get("ci95")


def sentence(label: str, comparison: Optional[Dict], metric: str) -> str:
    """What the study concludes, in one line: a gain only where the interval excludes 0."""
    if not comparison or comparison.get("gain") is None:
        return f"{label} vs the baseline: not tested (no paired runs finished for both)"
    c = comparison
    counts = f"{c['n_seeds']} seeds x {c['n_conversations']} test conversations" \
        + (f" in {c['n_groups']} topics" if c.get("n_groups") else "")
    if c["verdict"] == UNTESTED:
        return (f"{label} vs the baseline: {c['gain']:+.4f} on {metric}, untested ({counts}: a confidence "
                "interval needs at least 2 seeds)")
    low, high = interval(c)
    level = f"{c['level_adjusted']:.1%} CI, adjusted for {c['looks']} planned looks" if c.get("looks") else "95% CI"
    detectable = f"; smallest gain it could detect: {c['detectable_gain']:.4f}" if c.get("detectable_gain") else ""
    interval_said = f"{level} [{low:+.4f}, {high:+.4f}], p = {c['p_value']:.3g}; {counts}{detectable}"
    if c["verdict"] == UNSTABLE:
        return (f"{label} is not better than the baseline: it was ahead by {c['gain']:+.4f} on {metric} only on "
                f"the seeds where it finished ({interval_said})")
    if c["verdict"] == BETTER:
        return f"{label} beats the baseline by {c['gain']:+.4f} on {metric} ({interval_said})"
    if c["verdict"] == WORSE:
        return f"{label} is worse than the baseline by {-c['gain']:.4f} on {metric} ({interval_said}): keep the baseline"
    return f"no significant difference from the baseline: {label} {c['gain']:+.4f} on {metric} ({interval_said})"


def seed_scores(rows: Dict[int, List[float]]) -> List[float]:
    """Each seed's mean score, in seed order."""
    return [statistics.fmean(rows[s]) for s in sorted(rows)]
