"""Health rules: stop a GRPO trial that cannot learn or has collapsed, and say why.

Schedulers and pruners see one number per iteration and cannot tell a slow starter from a
dead run. A GRPO run reports more, and its known failure modes show there: the policy does
not move from the reference at all (a learning rate far too small: ASHA keeps such a run
while it scores the base model's score, above the runs that broke) or its updates do not
change a single held-out reply, groups whose rewards are
all equal give no gradient (``frac_reward_zero_std`` near 1), the KL to the reference runs
away, entropy collapses (or explodes), every completion runs to the length limit, or the
held-out reward falls far from its best after a good start. Each rule below watches one of
these and stops the trial with a reason ("no learning signal: ..."); the trial is recorded as
pruned with that reason on every backend (Ray reports its last result with ``done=True``, so
no scheduler acts on it and PBT never exploits it). A non-finite loss or gradient already
stops a trial as failed (`DivergenceError`), with its reason.

The thresholds are conservative by default (a rule must see its sign for several iterations
where one noisy iteration could mislead it) and each can be turned off with None. The rules
never act on a trial's last planned iteration (it has finished) nor on validation re-runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .checks import boolean, check_section, integer, number

if TYPE_CHECKING:
    from .grpo.config import TrainingConfig


@dataclass(frozen=True)
class HealthRules:
    """The study's health rules (HPOConfig.health_rules); None turns a rule off."""

    enabled: bool = True
    # no learning signal: at least this fraction of groups had equal rewards ...
    zero_std_fraction: Optional[float] = 0.95
    zero_std_iterations: int = 3  # ... for this many iterations in a row
    # ... covering at least this many groups. With one prompt per step three iterations are three
    # groups, and under a reward the base model rarely earns, a healthy group of 8 is all-equal
    # about two times in three (0.95^8): bench/time_to_target.py (one prompt per step) saw every
    # trial stopped at iteration 3 so. 12 is 3 iterations of the 4 groups the rule was set with.
    zero_std_groups: int = 12
    # KL to the reference (nats per token) above this: the policy ran away from it. Healthy GRPO
    # runs stay near 0.01-0.1; this is a runaway bound, not the study's KL budget (constraints).
    # bench/health_pruning.py: at 1.0 it cut a top-3 trial that drifted to 2 while its score held
    kl_max: Optional[float] = 5.0
    # policy frozen: the KL to the reference, projected to the last planned step, stays below
    # this. The projection assumes the policy keeps moving as fast as it has so far: its drift
    # grows with the summed learning rate, and the KL with the drift squared, so
    # KL_end = KL_now * (sum of lr factors over every step / over the steps taken)^2. A drift
    # that later turns about (a random walk) grows slower, so the projection errs towards
    # keeping a trial. bench/health_pruning.py: runs projected below 1e-5 ended at the base
    # model's held-out score (or 0.02 above it); the lowest projection of a run that gained
    # 0.04 was 1e-4. A 1000-step run is frozen only below a KL of 1e-11 after its first step.
    kl_floor: Optional[float] = 1e-5
    # replies unchanged: not one token of the agent's greedy replies in the held-out conversations
    # has changed since the first evaluation (``eval_replies_changed`` 0 at every evaluation)
    # once this fraction of the run's learning-rate budget (summed lr factors) is spent, and in
    # at least ``unchanged_evaluations`` evaluations after the first (in a short run half the
    # budget is one or two updates: too little evidence; a run of 5 iterations or fewer is never
    # stopped so). Direct evidence where the KL is a noisy estimate (at low temperatures); replies,
    # not the held-out score, so a coarse reward (0/1 accuracy) that stays put while the replies
    # change does not trigger it. It was 0.4, set on bench/health_pruning.py's curves under the
    # earlier rewards; with rewards that give a reply without substance nothing (rewards.relevance),
    # a run at lr 2e-4 first changed a held-out reply at 50% of its budget and ended +0.035 above
    # the base score (tests/test_health.py), so the rule now waits for half the budget
    unchanged_fraction: Optional[float] = 0.5
    unchanged_evaluations: int = 4
    # mean token entropy (nats, of the sampling distribution, so a low temperature lowers it)
    # below this floor: collapsed. A healthy run at temperature 0.08 sat at 0.01-0.03 in the bench
    entropy_min: Optional[float] = 0.005
    entropy_max: Optional[float] = None  # above this ceiling: the policy has dissolved into noise
    # entropy above this multiple of the first iteration's (the base policy's, at the trial's own
    # temperature, so unlike entropy_max it needs no per-temperature value): the policy is
    # dissolving into noise, as runs with a learning rate far too large do. bench/health_pruning.py:
    # healthy runs stayed within 1.9x their first entropy (most within 1.3x), runaways passed 3.9x
    entropy_rise: Optional[float] = 3.0
    length_limit_iterations: Optional[int] = 3  # every completion at max_new_tokens this many iterations in a row
    # held-out reward (eval_reward: the same selection scenarios, greedily, each time it is
    # measured) this fraction below its best (best > 0) for collapse_iterations evaluations in a
    # row. Not the training reward: it depends on which scenarios the iteration drew, so its
    # best is a lucky batch (examples/bring_your_own_task.py: a run whose held-out score rose
    # steadily from 0 to 0.4 had a training reward of 0.46 once, then 0.11 and 0.22)
    collapse_fraction: Optional[float] = 0.5
    collapse_iterations: int = 2
    grace_iterations: int = 1  # no rule acts before this many iterations have run

    def describe(self) -> str:
        """One line for the start of a study: which rules act, with their thresholds."""
        if not self.enabled:
            return "health rules: off"
        rules = {"no_learning_signal": self.zero_std_fraction is not None and
                 f">= {self.zero_std_fraction:.0%} of groups with equal rewards for {self.zero_std_iterations} "
                 f"iterations and {self.zero_std_groups} groups",
                 "kl_runaway": self.kl_max is not None and f"KL > {self.kl_max:g}",
                 "policy_frozen": self.kl_floor is not None and f"KL projected to the last step < {self.kl_floor:g}",
                 "replies_unchanged": self.unchanged_fraction is not None and
                 f"no held-out reply changed in {self.unchanged_evaluations} evaluations and "
                 f"{self.unchanged_fraction:.0%} of the learning-rate budget",
                 "entropy_floor": self.entropy_min is not None and f"entropy < {self.entropy_min:g}",
                 "entropy_ceiling": self.entropy_max is not None and f"entropy > {self.entropy_max:g}",
                 "entropy_blowup": self.entropy_rise is not None and
                 f"entropy > {self.entropy_rise:g}x its first iteration's",
                 "length_limit": self.length_limit_iterations is not None and
                 f"every completion at the limit for {self.length_limit_iterations} iterations",
                 "reward_collapse": self.collapse_fraction is not None and
                 f"held-out reward {self.collapse_fraction:.0%} below its best for {self.collapse_iterations} "
                 "evaluations"}
        on = [f"{name} ({text})" for name, text in rules.items() if text]
        off = [name for name, text in rules.items() if not text]
        return (f"health rules (from iteration {self.grace_iterations + 1}): " + "; ".join(on)
                + (f"; off: {', '.join(off)}" if off else ""))

    @classmethod
    def from_settings(cls, settings: Optional[Mapping[str, Any]]) -> "HealthRules":
        """From HPOConfig.health_rules (a mapping, checked and filled with the defaults)."""
        return cls(**check_section("health_rules", settings, SETTINGS))


_CHECKS = {
    "enabled": boolean,
    "zero_std_fraction": number(0.0, strict=True, optional=True, maximum=1.0),
    "zero_std_iterations": integer(1),
    "zero_std_groups": integer(1),
    "kl_max": number(0.0, strict=True, optional=True),
    "kl_floor": number(0.0, strict=True, optional=True),
    "unchanged_fraction": number(0.0, strict=True, optional=True, maximum=1.0),
    "unchanged_evaluations": integer(1),
    "entropy_min": number(0.0, strict=False, optional=True),
    "entropy_max": number(0.0, strict=True, optional=True),
    "entropy_rise": number(1.0, strict=True, optional=True),
    "length_limit_iterations": integer(1, optional=True),
    "collapse_fraction": number(0.0, strict=True, optional=True, maximum=1.0),
    "collapse_iterations": integer(1),
    "grace_iterations": integer(0),
}
# HPOConfig.health_rules: {key: (default, check)}
SETTINGS = {f.name: (f.default, _CHECKS[f.name]) for f in dataclasses.fields(HealthRules)}
class HealthMonitor:
    """Follows one trial's metrics, iteration by iteration; `check` says why it should stop."""

    def __init__(self, rules: HealthRules) -> None:
        self.rules = rules
        self.runs: Dict[str, int] = {}  # rule -> iterations in a row its sign was seen
        self.best_reward: Optional[float] = None
        self.first_entropy: Optional[float] = None  # the base policy's (iteration 1 samples before any update)
        self.moving = False  # the policy was once projected to move past kl_floor: it is not frozen
        self.replies_changed = False  # a held-out reply changed once: the updates do reach the policy
        self._lr_sums: Optional[List[float]] = None  # summed lr factors before each optimizer step
        # lr factors of the iterations in which no group had a learning signal (every group's
        # rewards equal: zero advantages, no policy gradient): the policy could not move there,
        # so they are not counted as budget spent by the frozen-policy projection
        self.silent_lr = 0.0
        self.last_iteration = 0  # the last iteration taken in

    def _lr_sums_to(self, steps: int, config: "TrainingConfig") -> Tuple[float, float]:
        """(summed lr factors of the first ``steps`` optimizer steps, of every planned step)."""
        if self._lr_sums is None:
            factor, sums = config.lr_factor(), [0.0]
            for step in range(config.total_iterations * config.updates_per_iteration):
                sums.append(sums[-1] + factor(step))
            self._lr_sums = sums
        return self._lr_sums[min(max(steps, 0), len(self._lr_sums) - 1)], self._lr_sums[-1]

    def _projected_kl(self, kl: float, iteration: int, config: "TrainingConfig") -> Optional[float]:
        """The KL at the last planned step if the policy keeps its pace (see HealthRules.kl_floor);
        None before the first optimizer step that had a learning signal (the KL is 0 by construction there)."""
        taken, planned = self._lr_sums_to((iteration - 1) * config.updates_per_iteration, config)  # before this loss
        taken, planned = taken - self.silent_lr, planned - self.silent_lr  # (HealthMonitor.silent_lr)
        if taken <= 1e-12:
            return None
        return kl * (planned / taken) ** 2

    def _streak(self, rule: str, seen: bool) -> int:
        self.runs[rule] = self.runs.get(rule, 0) + 1 if seen else 0
        return self.runs[rule]

    def check(self, metrics: Mapping[str, float], config: "TrainingConfig",
              earlier: Sequence[Mapping[str, float]] = ()) -> Optional[Tuple[str, str]]:
        """(rule, reason) when the trial should stop after these metrics (one iteration's, of a
        run of ``config``), else None. ``earlier``: the run's history; its entries before these
        metrics' iteration that this monitor has not seen are taken in first (a trial restored from a checkpoint, whose
        monitor is new: its streaks, first entropy, best score and what it learnt of the policy
        continue, where they would otherwise start over at the restored iteration)."""
        iteration = int(metrics.get("iteration", 0))
        for past in earlier:
            if self.last_iteration < int(past.get("iteration", 0)) < iteration:
                self._observe(past, config)
                self.last_iteration = int(past["iteration"])
        self.last_iteration = iteration
        return self._observe(metrics, config)

    def _observe(self, metrics: Mapping[str, float], config: "TrainingConfig") -> Optional[Tuple[str, str]]:
        r = self.rules
        if not r.enabled:
            return None
        max_new_tokens, iteration = config.max_new_tokens, int(metrics.get("iteration", 0))
        reward, zero_std = metrics.get("eval_reward"), metrics.get("frac_reward_zero_std")
        kl, entropy, length = metrics.get("kl"), metrics.get("entropy"), metrics.get("completion_length")
        found = []
        if r.zero_std_fraction is not None and zero_std is not None:
            streak = self._streak("zero_std", zero_std >= r.zero_std_fraction)
            if streak >= r.zero_std_iterations and streak * config.prompts_per_iteration >= r.zero_std_groups:
                found.append(("no_learning_signal",
                              f"no learning signal: at least {r.zero_std_fraction:.0%} of groups had equal rewards for "
                              f"{streak} iterations ({streak * config.prompts_per_iteration} groups; {zero_std:.0%} in "
                              "the last)"))
        if r.kl_max is not None and kl is not None and kl > r.kl_max:
            found.append(("kl_runaway", f"KL to the reference {kl:.4g} nats per token, above the ceiling {r.kl_max:g}"))
        projected = self._projected_kl(kl, iteration, config) if r.kl_floor is not None and kl is not None else None
        if projected is not None and not self.moving:
            self.moving = projected >= r.kl_floor
            if not self.moving:
                found.append(("policy_frozen",
                              f"policy frozen: KL to the reference {kl:.3g} nats per token after "
                              f"{iteration - 1} iteration(s) of updates; at this pace about {projected:.2g} by the last of "
                              f"{config.total_iterations} iterations, below the floor {r.kl_floor:g} (learning rate "
                              "too small to change the policy)"))
        if zero_std is not None and zero_std >= 1.0:  # this iteration's updates had nothing to learn from
            before, _ = self._lr_sums_to((iteration - 1) * config.updates_per_iteration, config)
            self.silent_lr += self._lr_sums_to(iteration * config.updates_per_iteration, config)[0] - before
        changed = metrics.get("eval_replies_changed")
        if r.unchanged_fraction is not None and changed is not None and not self.replies_changed:
            self.replies_changed = changed > 0
            unchanged = self._streak("unchanged", not self.replies_changed)  # evaluations after the first
            spent, planned = self._lr_sums_to(iteration * config.updates_per_iteration, config)  # this iteration's included
            if unchanged >= r.unchanged_evaluations and planned > 0 and spent >= r.unchanged_fraction * planned:
                found.append(("replies_unchanged",
                              f"replies unchanged: not one token of the agent's greedy replies in the held-out "
                              f"conversations changed from the first evaluation to iteration {iteration} of "
                              f"{config.total_iterations} ({unchanged} evaluations since, {spent / planned:.0%} of the "
                              "learning-rate budget spent; the updates do not change what the policy says)"))
        if r.entropy_min is not None and entropy is not None and entropy < r.entropy_min:
            found.append(("entropy_floor",
                          f"entropy collapsed: {entropy:.4g} nats per token, below the floor {r.entropy_min:g}"))
        if r.entropy_max is not None and entropy is not None and entropy > r.entropy_max:
            found.append(("entropy_ceiling",
                          f"entropy {entropy:.4g} nats per token, above the ceiling {r.entropy_max:g}"))
        if entropy is not None and self.first_entropy is None:
            self.first_entropy = entropy
        elif r.entropy_rise is not None and entropy is not None and self.first_entropy and \
                entropy > r.entropy_rise * self.first_entropy:
            found.append(("entropy_blowup",
                          f"entropy blew up: {entropy:.4g} nats per token, {entropy / self.first_entropy:.1f}x its "
                          f"first iteration's {self.first_entropy:.4g} (ceiling {r.entropy_rise:g}x): the policy is "
                          "dissolving into noise"))
        if r.length_limit_iterations is not None and length is not None and \
                self._streak("length", length >= max_new_tokens - 1e-6) >= r.length_limit_iterations:
            found.append(("length_limit", f"every completion ran to the length limit ({max_new_tokens} tokens) "
                                          f"for {r.length_limit_iterations} iterations"))
        if r.collapse_fraction is not None and reward is not None:
            best = self.best_reward
            fallen = best is not None and best > 0 and reward < best * (1 - r.collapse_fraction)
            if self._streak("collapse", fallen) >= r.collapse_iterations:
                found.append(("reward_collapse",
                              f"held-out reward collapsed: {reward:.4g}, more than {r.collapse_fraction:.0%} below its best "
                              f"{best:.4g}, for {r.collapse_iterations} evaluations"))
            self.best_reward = reward if best is None else max(best, reward)
        if not found or iteration <= r.grace_iterations:
            return None
        return found[0]
