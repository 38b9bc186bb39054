"""PBT's answer is a schedule: a trial whose settings changed as it trained records them (its
donor's included), and validation and train_with_best_params replay that schedule instead of
retraining its last settings from scratch."""

import asyncio
import json

from helpers import tiny_spec

from stateset_hpo import HPOConfig, HPOResult, HPOSummary, SearchDimension, SearchSpace, SearchSpaceType
from stateset_hpo.grpo import MultiTurnAgent
from stateset_hpo.hpo_trainer import GRPOHPOTrainer
from stateset_hpo.lifecycle import TrialReporter
from stateset_hpo.report import write_report
from stateset_hpo.search.trial_runner import run_points
from stateset_hpo.trial import SCHEDULE_KEY, build_trainer, run_trial
from stateset_hpo.validation import run_validation

TIMING = {"step_time", "rollout_time", "tokens_per_s"}
SPACE = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-4, high=1e-2, default=1e-3)])


def measured(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def record(spec, point, restore_from=None):
    """(every iteration's metrics, the schedule the run reports at its end)."""
    reporter = TrialReporter(lambda report: None)
    run_trial(spec, point, reporter, restore_from=restore_from)
    return reporter.history, reporter.schedule


def test_a_replayed_schedule_trains_exactly_as_the_exploit_it_records(tmp_path):
    spec = tiny_spec(num_episodes=24)  # 3 iterations of 8 episodes
    # the original: a donor trains 2 iterations at 1e-3, then a PBT exploit continues its weights at 3e-3
    donor = build_trainer(spec, {"learning_rate": 1e-3})
    donor.train_step(), donor.train_step()
    donor.save_checkpoint(tmp_path / "donor")
    exploited, schedule = record(spec, {"learning_rate": 3e-3}, restore_from=tmp_path / "donor")
    assert schedule == [{"iteration": 0, "params": {"learning_rate": 1e-3}},
                        {"iteration": 2, "params": {"learning_rate": 3e-3}}]
    # the replay, from scratch: the same three iterations, metric for metric, and the same schedule
    replayed, again = record(spec, {"learning_rate": 3e-3, SCHEDULE_KEY: json.dumps(schedule)})
    assert again == schedule
    assert measured(replayed) == measured(donor.history + exploited)
    # retraining the last settings from scratch (what was validated before) is another run
    fixed, none = record(spec, {"learning_rate": 3e-3})
    assert none == [] and measured(fixed) != measured(replayed)


def test_validation_and_train_with_best_params_replay_a_pbt_recommendation(tmp_path):
    schedule = [{"iteration": 0, "params": {"learning_rate": 1e-3}}, {"iteration": 1, "params": {"learning_rate": 3e-3}}]
    spec = tiny_spec(num_episodes=16)  # 2 iterations; the baseline's learning rate is TrainingConfig's default
    config = HPOConfig(backend="optuna", search_space=SPACE, n_trials=1, output_dir=str(tmp_path / "out"),
                       verbose=False, save_plots=False, validation_top_k=1, validation_seeds=1)
    found = HPOResult("7", {"learning_rate": 3e-3}, {"eval_reward": 0.5}, 0.5, history=[{"iteration": 2}],
                      schedule=schedule)
    summary = HPOSummary("eval_reward", "maximize", all_results=[found])
    assert "a schedule, not one configuration" in summary.format_summary()
    assert "iteration 1: learning_rate=0.001" in summary.format_summary()
    page = write_report(summary, SPACE, tmp_path).read_text()
    assert "The recommendation is a schedule" in page and "from iteration 2: learning_rate=0.003" in page
    block = run_validation(config, spec, SPACE, summary)
    recommended, baseline = block["configurations"]
    assert recommended["schedule"] == schedule and baseline["schedule"] == []
    assert recommended["params"] == {"learning_rate": 3e-3, "num_episodes": 16} and not recommended["errors"]
    # the re-run itself followed the schedule: its own record is the same schedule, at the validation's seed
    (rerun,) = run_points(config, spec, [{"learning_rate": 3e-3, "seed": 10_042, SCHEDULE_KEY: json.dumps(schedule)}])
    assert rerun.schedule == schedule and rerun.status.value == "success"
    # train_with_best_params replays it too, and saves it with the parameters
    trainer = GRPOHPOTrainer(MultiTurnAgent(spec.agent_config), spec.environment, spec.reward, spec.base_config, config)
    trainer.summary = summary
    asyncio.run(trainer.train_with_best_params(output_dir=str(tmp_path / "best")))
    saved = json.loads((tmp_path / "best" / "best_params.json").read_text())
    assert saved == {"learning_rate": 3e-3, SCHEDULE_KEY: schedule}
