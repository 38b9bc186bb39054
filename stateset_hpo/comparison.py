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
                sign: float = 1.0) -> Dict:
    """Compare two configurations run with the same seeds on the same conversations.

    ``candidate`` / ``baseline`` map a seed to that run's per-conversation scores (one score
    when only the mean is known); seeds missing on either side are left out. ``sign`` is
    -1 when lower is better. Returns gain (candidate - baseline, positive = better), the 95%
    interval, p-value, verdict and the counts it rests on."""
    seeds = sorted(set(candidate) & set(baseline))
    widths = {len(candidate[s]) for s in seeds} | {len(baseline[s]) for s in seeds}
    if len(widths) > 1:
        raise ValueError(f"the two configurations were scored on different numbers of conversations: {sorted(widths)}")
    out = {"n_seeds": len(seeds), "n_conversations": widths.pop() if widths else 0, "level": LEVEL,
           "gain": None, "ci95": None, "p_value": None, "verdict": UNTESTED,
           "method": "paired t over seeds and conversations (crossed random effects, conservative df)"}
    if not seeds:
        return out
    d = [[sign * (c - b) for c, b in zip(candidate[s], baseline[s])] for s in seeds]
    gain = statistics.fmean(x for row in d for x in row)
    out["gain"] = gain
    if len(seeds) < 2:
        return out  # one seed cannot measure how much a run varies from seed to seed
    by_seed = [statistics.fmean(row) for row in d]
    n_s, n_c = len(seeds), out["n_conversations"]
    variance = statistics.variance(by_seed) / n_s
    if n_c > 1:
        by_conversation = [statistics.fmean(col) for col in zip(*d)]
        v_c = statistics.variance(by_conversation) / n_c
        mse = sum((d[i][j] - by_seed[i] - by_conversation[j] + gain) ** 2
                  for i in range(n_s) for j in range(n_c)) / ((n_s - 1) * (n_c - 1))
        variance = max(variance + v_c - mse / (n_s * n_c), variance, v_c)
    if variance <= 0.0:  # every difference identical: exact, no noise to test against
        out.update(ci95=[gain, gain], p_value=1.0 if gain == 0 else 0.0,
                   verdict=NO_DIFFERENCE if gain == 0 else (BETTER if gain > 0 else WORSE))
        return out
    df = n_s - 1
    from scipy import stats

    half = stats.t.ppf(0.5 + LEVEL / 2, df) * math.sqrt(variance)
    low, high = gain - half, gain + half
    out.update(ci95=[float(low), float(high)], p_value=float(2 * stats.t.sf(abs(gain) / math.sqrt(variance), df)),
               df=df, verdict=BETTER if low > 0 else WORSE if high < 0 else NO_DIFFERENCE)
    return out


def sentence(label: str, comparison: Optional[Dict], metric: str) -> str:
    """What the study concludes, in one line: a gain only where the interval excludes 0."""
    if not comparison or comparison.get("gain") is None:
        return f"{label} vs the baseline: not tested (no paired runs finished for both)"
    c = comparison
    counts = f"{c['n_seeds']} seeds x {c['n_conversations']} test conversations"
    if c["verdict"] == UNTESTED:
        return (f"{label} vs the baseline: {c['gain']:+.4f} on {metric}, untested ({counts}: a confidence "
                "interval needs at least 2 seeds)")
    interval = f"95% CI [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}], p = {c['p_value']:.3g}; {counts}"
    if c["verdict"] == UNSTABLE:
        return (f"{label} is not better than the baseline: it was ahead by {c['gain']:+.4f} on {metric} only on "
                f"the seeds where it finished ({interval})")
    if c["verdict"] == BETTER:
        return f"{label} beats the baseline by {c['gain']:+.4f} on {metric} ({interval})"
    if c["verdict"] == WORSE:
        return f"{label} is worse than the baseline by {-c['gain']:.4f} on {metric} ({interval}): keep the baseline"
    return f"no significant difference from the baseline: {label} {c['gain']:+.4f} on {metric} ({interval})"


def seed_scores(rows: Dict[int, List[float]]) -> List[float]:
    """Each seed's mean score, in seed order."""
    return [statistics.fmean(rows[s]) for s in sorted(rows)]
