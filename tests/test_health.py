"""Health rules: each rule stops the run it is meant for, with its reason, and leaves a healthy
slow starter alone; on every backend a stopped trial is recorded as pruned with the rule and
reason (summary.json, trials.csv, report.html, the CLI line)."""

import csv
import dataclasses
import json
import sys

import optuna
import pytest
from helpers import NO_FROZEN_RULES, backends_ray_slow, study_config, tiny_spec
from ray import cloudpickle

from stateset_hpo import HPOConfig, SearchDimension, SearchSpace, SearchSpaceType, TrialStatus
from stateset_hpo.dashboard import dashboard_storage
from stateset_hpo.grpo import CompositeReward, TrainingConfig
from stateset_hpo.grpo.rewards import Reward
from stateset_hpo.health import HealthMonitor, HealthRules
from stateset_hpo.progress import StudyProgress
from stateset_hpo.results import HPOResult
from stateset_hpo.search.optuna.storage import open_storage
from stateset_hpo.search.trial_runner import run_one
from stateset_hpo.study import run_study

cloudpickle.register_pickle_by_value(sys.modules[__name__])

HEALTHY = dict(eval_reward=0.3, frac_reward_zero_std=0.2, kl=0.01, entropy=0.5, completion_length=20.0)


def first_stop(rows, rules=HealthRules(), max_new_tokens=64, iterations=12, **training):
    """(iteration, rule, reason) of the first iteration the rules stop, or None."""
    monitor = HealthMonitor(rules)
    config = TrainingConfig(max_new_tokens=max_new_tokens, per_device_train_batch_size=4, group_size=4,
                            num_episodes=16 * iterations, **training)
    for i, changes in enumerate(rows, start=1):
        found = monitor.check({**HEALTHY, **changes, "iteration": i}, config)
        if found:
            return (i, *found)
    return None


def test_equal_rewards_in_every_group_for_three_iterations_is_no_learning_signal():
    stop = first_stop([{}, {"frac_reward_zero_std": 1.0}, {"frac_reward_zero_std": 0.96},
                       {"frac_reward_zero_std": 1.0}, {}])
    assert stop[:2] == (4, "no_learning_signal") and "95% of groups had equal rewards for 3 iterations" in stop[2]
    # one iteration of signal in between starts the count again
    assert first_stop([{"frac_reward_zero_std": 1.0}, {"frac_reward_zero_std": 1.0}, {},
                       {"frac_reward_zero_std": 1.0}, {"frac_reward_zero_std": 1.0}]) is None


def test_with_one_prompt_per_step_no_learning_signal_waits_for_twelve_groups():
    # one group per iteration: three all-equal groups happen by chance under a sparse reward
    # (two in three groups of 8 when 5% of replies score), so the rule waits for 12 groups
    def stop(rows):
        monitor = HealthMonitor(HealthRules())
        config = TrainingConfig(per_device_train_batch_size=1, group_size=8, num_episodes=8 * 40)
        return next((i for i, row in enumerate(rows, start=1)
                     if monitor.check({**HEALTHY, **row, "iteration": i}, config)), None)

    assert stop([{"frac_reward_zero_std": 1.0}] * 11 + [{}]) is None
    assert stop([{"frac_reward_zero_std": 1.0}] * 20) == 12


@pytest.mark.parametrize("rows, rules, rule, words", [
    ([{}, {"kl": 0.7}], HealthRules(kl_max=0.5), "kl_runaway", "KL to the reference 0.7 nats per token, above the "
                                                               "ceiling 0.5"),
    ([{}, {"kl": 7.0}], HealthRules(), "kl_runaway", "above the ceiling 5"),
    ([{}, {"entropy": 0.001}], HealthRules(), "entropy_floor", "below the floor 0.005"),
    ([{}, {"entropy": 9.0}], HealthRules(entropy_max=6.0), "entropy_ceiling", "above the ceiling 6"),
    ([{"entropy": 0.2}, {"entropy": 0.5}, {"entropy": 0.7}], HealthRules(), "entropy_blowup",
     "0.7 nats per token, 3.5x its first iteration's 0.2 (ceiling 3x)"),
    ([{"completion_length": 64.0}] * 3, HealthRules(), "length_limit", "length limit (64 tokens) for 3 iterations"),
    ([{"eval_reward": 0.6}, {"eval_reward": 0.2}, {"eval_reward": 0.25}], HealthRules(), "reward_collapse",
     "more than 50% below its best 0.6"),
])
def test_each_rule_stops_its_failure_with_its_reason(rows, rules, rule, words):
    stop = first_stop(rows, rules)
    assert stop is not None and stop[1] == rule and words in stop[2]


def test_a_healthy_slow_starter_is_not_stopped():
    # low reward for a while, some groups without signal, then learning: no rule may fire
    rows = [dict(eval_reward=0.02, frac_reward_zero_std=0.9), dict(eval_reward=0.01, frac_reward_zero_std=0.9),
            dict(eval_reward=0.03, frac_reward_zero_std=0.75), dict(eval_reward=0.1), dict(eval_reward=0.3),
            dict(eval_reward=0.5)]
    assert first_stop(rows) is None


def test_a_policy_that_does_not_move_is_frozen_and_the_projection_spares_long_runs_and_warm_ups():
    # 12 iterations: a KL of 5e-8 after one update projects to 5e-8 * 12**2 = 7.2e-6 by the last step
    stop = first_stop([{"kl": 0.0}, {"kl": 5e-8}])
    assert stop[:2] == (2, "policy_frozen") and "about 7.2e-06 by the last of 12 iterations" in stop[2]
    assert "below the floor 1e-05" in stop[2]
    assert first_stop([{"kl": 0.0}, {"kl": 1e-7}]) is None  # 1.44e-5: it moves enough to count
    assert first_stop([{"kl": 0.0}, {"kl": 5e-8}], iterations=100) is None  # 5e-4 by its 100th iteration
    # a warm-up over the first 3 iterations: the first update had a third of the learning rate,
    # so the same KL promises 33x the drift by the end (sum of lr factors 11 against 1/3)
    assert first_stop([{"kl": 0.0}, {"kl": 5e-8}], warmup_ratio=0.25) is None
    # once projected to move, a later quiet iteration does not make a run frozen
    assert first_stop([{"kl": 0.0}, {"kl": 1e-6}, {"kl": 1e-9}, {"kl": 1e-9}]) is None
    assert first_stop([{"kl": 0.0}, {"kl": 5e-8}], HealthRules(kl_floor=None)) is None
    # an iteration in which every group's rewards were equal had no gradient: the policy could not
    # move there, so it is not counted as spent (frozen only after an update that had a signal)
    silent_first = [{"kl": 0.0, "frac_reward_zero_std": 1.0}, {"kl": 0.0}, {"kl": 5e-8}]
    assert first_stop(silent_first[:2]) is None and first_stop(silent_first)[:2] == (3, "policy_frozen")
    assert "about 6e-06 by the last" in first_stop(silent_first)[2]  # 5e-8 * (12 - 1)**2: 11 steps can move it


def test_replies_that_never_change_stop_a_run_once_its_share_of_the_learning_rate_budget_is_spent():
    # evaluations from the second on report the share of held-out replies changed since the first
    unchanged = [{}] + [{"eval_replies_changed": 0.0}] * 10
    stop = first_stop(unchanged)  # 12 iterations: half the budget is spent after 6
    assert stop[:2] == (6, "replies_unchanged")
    assert "to iteration 6 of 12 (5 evaluations since, 50% of the learning-rate budget" in stop[2]
    # a short run needs 4 evaluations after the first as well: one update unchanged is too little
    assert first_stop(unchanged, iterations=6)[0] == 5 and first_stop(unchanged, iterations=20)[0] == 10
    assert first_stop(unchanged[:4], iterations=5) is None  # (the rules are not asked at a run's last iteration)
    assert first_stop(unchanged, HealthRules(unchanged_evaluations=2), iterations=6)[0] == 3
    # one changed reply, even if a later evaluation is back to the first replies, and it never stops
    assert first_stop([{}, {"eval_replies_changed": 0.0}, {"eval_replies_changed": 0.1}] + unchanged[3:]) is None
    # a warm-up over the first 3 iterations spends little of the budget: it waits longer (sum of lr
    # factors after 6 iterations: 1/3 + 2/3 + 1 + 3 = 5 of 11, 45%; after 7, 55%)
    assert first_stop(unchanged, warmup_ratio=0.25)[0] == 7
    assert first_stop(unchanged, HealthRules(unchanged_fraction=None)) is None
    assert first_stop([{}] * 11) is None  # no evaluation of the replies (a custom objective): nothing to read


def test_a_restored_trials_new_monitor_takes_in_the_run_before_the_checkpoint():
    config = TrainingConfig(per_device_train_batch_size=4, group_size=4, num_episodes=16 * 12)
    before = [{**HEALTHY, "iteration": 1, "entropy": 0.2}, {**HEALTHY, "iteration": 2, "entropy": 0.5}]
    now = {**HEALTHY, "iteration": 3, "entropy": 0.7}
    # a new monitor alone would take 0.7 for the base policy's entropy and see no blow-up
    assert HealthMonitor(HealthRules()).check(now, config) is None
    stop = HealthMonitor(HealthRules()).check(now, config, earlier=before)
    assert stop[0] == "entropy_blowup" and "3.5x its first iteration's 0.2" in stop[1]
    # a monitor that saw the run all along takes nothing in twice
    # (two iterations without signal: a third, counted by taking in the first again, would stop it)
    monitor = HealthMonitor(HealthRules())
    rows = [{**HEALTHY, "iteration": i, "frac_reward_zero_std": z} for i, z in enumerate([1.0, 1.0, 0.0], start=1)]
    assert [monitor.check(row, config, rows[:i]) for i, row in enumerate(rows)] == [None] * 3


@pytest.mark.slow  # real runs of 12 iterations (CI runs it; the inner loop stays under 5 minutes)
def test_a_real_run_at_a_near_zero_learning_rate_is_frozen_and_a_real_slow_starter_is_not(tmp_path):
    # the setting the rules' thresholds were chosen on: 12 iterations of 4 groups of 4, replies of 24 tokens
    spec = tiny_spec(num_episodes=16 * 12, per_device_train_batch_size=4)
    config = HPOConfig(output_dir=str(tmp_path), n_trials=1, verbose=False)
    frozen = run_one(config, spec, "0", {"learning_rate": 1e-7, "temperature": 0.5})
    assert frozen.status is TrialStatus.PRUNED and frozen.stopped_by == "policy_frozen"
    assert len(frozen.history) == 2 and frozen.stop_reason.startswith("policy frozen: KL to the reference")
    # without the KL rule its replies tell: not one changed, so it stops once half its budget is spent
    unchanged = run_one(config, dataclasses.replace(spec, health=HealthRules(kl_floor=None)), "2",
                        {"learning_rate": 1e-7, "temperature": 0.5})
    assert unchanged.stopped_by == "replies_unchanged" and len(unchanged.history) == 6
    assert [row.get("eval_replies_changed") for row in unchanged.history] == [None] + [0.0] * 5
    # lr 2e-4 scores the base model's score for its first half (ASHA with a grace period of 3
    # iterations would cut it), changes its first held-out reply at iteration 6, then gains
    slow = run_one(config, spec, "1", {"learning_rate": 2e-4, "temperature": 1.0})
    evals = [row["eval_reward"] for row in slow.history]
    assert slow.status is TrialStatus.SUCCESS and len(evals) == 12
    assert evals[4] == evals[0] and evals[-1] > evals[0] + 0.03, evals


def test_rules_wait_for_the_grace_iterations_and_can_be_turned_off():
    assert first_stop([{"entropy": 0.0}, {}]) is None  # iteration 1 is the grace period
    assert first_stop([{"entropy": 0.0}] * 3, HealthRules(grace_iterations=3)) is None
    assert first_stop([{"entropy": 0.0}] * 3, HealthRules(entropy_min=None)) is None
    assert first_stop([{"frac_reward_zero_std": 1.0, "entropy": 0.0}] * 5, HealthRules(enabled=False)) is None


@pytest.mark.parametrize("settings, message", [
    ({"kl_max": 0}, r"health_rules\['kl_max'\] must be a number > 0.0 or None"),
    ({"zero_std_fraction": 1.5}, r"health_rules\['zero_std_fraction'\] must be a number > 0.0 and <= 1.0"),
    ({"entropy_floor": 0.1}, r"unknown keys \['entropy_floor'\]; valid keys: enabled, zero_std_fraction"),
])
def test_bad_health_settings_fail_when_the_config_is_built(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        HPOConfig(health_rules=settings, output_dir=str(tmp_path))


T = SearchSpaceType
SPACE = SearchSpace([SearchDimension("learning_rate", T.LOGUNIFORM, low=3e-3, high=1e-2, default=5e-3)])


@pytest.mark.parametrize("backend", backends_ray_slow())
def test_a_trial_over_its_kl_ceiling_is_pruned_with_the_reason_on_every_backend(tmp_path, backend, ray_if_needed):
    # any update moves the policy off the reference: a KL ceiling of 1e-12 is exceeded at iteration 2
    config = study_config(tmp_path, backend, search_space=SPACE, n_trials=1, save_plots=True,
                          optuna_config={"pruner": "none"}, health_rules={"kl_max": 1e-12})
    summary = run_study(config, tiny_spec(num_episodes=32))  # 4 iterations planned
    assert [r.status for r in summary.all_results] == [TrialStatus.PRUNED]
    for r in summary.all_results:
        assert r.stopped_by == "kl_runaway" and r.stop_reason.startswith("KL to the reference")
        assert len(r.history) == 2 and r.history[-1]["kl"] > 1e-12
    assert summary.stopped_by == {"kl_runaway": 1}
    out = tmp_path / "out"
    assert json.loads((out / "summary.json").read_text())["stopped_by"] == {"kl_runaway": 1}
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [row["stopped_by"] for row in rows] == ["kl_runaway"]
    assert "above the ceiling 1e-12" in rows[0]["stop_reason"]
    assert "KL to the reference" in (out / "report.html").read_text()
    # and live in optuna-dashboard's storage, whatever the backend: pruned, both iterations, the reason
    (mirrored,) = optuna.load_study(study_name=config.resolved_study_name,
                                    storage=open_storage(dashboard_storage(config))).trials
    assert mirrored.state is optuna.trial.TrialState.PRUNED and sorted(mirrored.intermediate_values) == [1, 2]
    assert mirrored.user_attrs["stopped_by"] == "kl_runaway" and mirrored.user_attrs["cost:episodes"] == 16


class GoodThenBad(Reward):
    """Scores replies well for its first 60 calls (the first iteration: at most 16 training and
    40 selection replies), then poorly (a reward that collapses
    mid-run, as after reward hacking turns against the task); replies still differ, so the
    groups keep a learning signal and only the collapse rule can see it."""

    name = "good_then_bad"

    def __init__(self):
        super().__init__(weight=1.0)
        self.calls = 0

    def __call__(self, ctx):
        self.calls += 1
        return (0.8 if self.calls <= 60 else 0.1) + 0.1 * (len(ctx.reply) % 3) / 3


@pytest.mark.parametrize("backend", backends_ray_slow())
def test_a_collapsing_trial_is_stopped_with_the_reason_on_every_backend(tmp_path, backend, ray_if_needed):
    config = study_config(tmp_path, backend, search_space=SPACE, n_trials=1, optuna_config={"pruner": "none"})
    spec = dataclasses.replace(tiny_spec(num_episodes=48), reward=CompositeReward([GoodThenBad()]))  # 6 iterations
    (trial,) = run_study(config, spec).all_results
    assert trial.status is TrialStatus.PRUNED and trial.stopped_by == "reward_collapse"
    assert trial.stop_reason.startswith("held-out reward collapsed") and len(trial.history) < 6
    rewards = [row["eval_reward"] for row in trial.history]
    assert max(rewards) > 0.8 and rewards[-1] < 0.5 * max(rewards)


@pytest.mark.slow  # (6 s: the inner loop stays under 5 minutes; CI runs it)
def test_validation_reruns_are_not_stopped_by_health_rules(tmp_path):
    # search trials of 2 iterations end before any rule may act (iteration 1 is the grace
    # period, the last is never judged); the validation re-runs train 4 iterations, past a KL
    # budget every update exceeds, and must still train to their end
    config = HPOConfig(backend="optuna", search_space=SPACE, n_trials=1, output_dir=str(tmp_path / "out"),
                       verbose=False, save_plots=False, validation_top_k=1, validation_seeds=1,
                       validation_episodes=32, seed=0, optuna_config={"sampler": "random", "pruner": "none"},
                       health_rules={"kl_max": 1e-12})
    summary = run_study(config, tiny_spec(num_episodes=16))
    assert summary.all_results[0].status is TrialStatus.SUCCESS
    assert all(not e["errors"] and len(e["scores"]) == 1 for e in summary.validation["configurations"])


def test_the_cli_line_of_a_pruned_trial_says_why(capsys, tmp_path):
    printer = StudyProgress(HPOConfig(output_dir=str(tmp_path), n_trials=2), live=False)
    printer.on_trial_start("0", {})
    printer.on_trial_end(HPOResult("0", {}, status=TrialStatus.PRUNED, stopped_by="reward_collapse",
                                   stop_reason="reward collapsed: 0.1, more than 50% below its best 0.6"))
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "pruned 1" in line and line.endswith("(reward collapsed: 0.1, more than 50% below its best 0.6)")


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("scheduler", ["asha", "pbt"])
def test_ray_schedulers_neither_take_a_rule_for_their_own_decision_nor_exploit_what_it_stopped(tmp_path, scheduler):
    space = SearchSpace([SearchDimension("learning_rate", T.CHOICE, choices=[1e-9, 5e-2], default=1e-9)])
    config = study_config(tmp_path, "ray_tune", search_space=space, n_trials=4, n_parallel_trials=2,
                          # lr 5e-2 runs away at once; lr 1e-9 never moves, and is left to the scheduler
                          health_rules={"kl_max": 0.5, **NO_FROZEN_RULES},
                          # ASHA's first rung after iteration 2, where the rule acts first
                          seed=1, ray_config={"scheduler": scheduler, "perturbation_interval": 8, "grace_period": 16})
    summary = run_study(config, tiny_spec(num_episodes=24))  # 3 iterations of 8 episodes
    assert summary.n_failed == 0
    stopped = {r.trial_id: len(r.history) for r in summary.all_results if r.stopped_by == "kl_runaway"}
    assert stopped, "no trial ran away"
    for r in summary.all_results:
        if r.stopped_by == "kl_runaway":
            assert r.status is TrialStatus.PRUNED and r.history[-1]["kl"] > 0.5
        elif r.status is TrialStatus.PRUNED:
            assert r.stopped_by == "scheduler" and r.stop_reason.startswith(f"stopped by the {scheduler} scheduler")
    log = tmp_path / "out" / "ray_results" / config.resolved_study_name / "pbt_global.txt"
    if scheduler == "pbt" and log.is_file():  # no exploit took a checkpoint from the iteration a rule stopped
        for target, donor, target_step, donor_step, old, new in map(json.loads, log.read_text().splitlines()):
            assert donor not in stopped or donor_step < stopped[donor]
