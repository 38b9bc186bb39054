"""One trial lifecycle for every backend: the order of the per-iteration rules (health, then
checkpoint, then the backend's stop), the report's non-numeric parts surviving a flat result
row, and the status derived from what a backend observed."""

from pathlib import Path

from stateset_hpo.grpo import TrainingConfig
from stateset_hpo.health import HealthRules
from stateset_hpo.lifecycle import (
    Report,
    TrialOutcome,
    TrialReporter,
    annotations_of,
    schedule_of,
)
from stateset_hpo.results import TrialStatus
from stateset_hpo.summary_text import describe_schedule

TRANSCRIPT = [{"index": 0, "topic": "refund", "reward": 0.5,
               "conversation": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]


class FakeTrainer:
    """What the reporter reads of a trainer: its config, history, test transcripts, and a checkpoint."""

    def __init__(self, iterations=4, test_at_end=False):
        self.config = TrainingConfig(per_device_train_batch_size=4, group_size=4, num_episodes=16 * iterations)
        self.history, self.test_at_end, self.test_transcripts = [], test_at_end, list(TRANSCRIPT)
        self.config_schedule = [{"iteration": 0, "config": self.config.to_dict()}]
        self.saved = []

    def save_checkpoint(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "state").write_text(str(len(self.history)))
        self.saved.append(len(self.history))
        return Path(folder)


def drive(reporter, trainer, rows):
    """Feed rows as iterations until the reporter says stop; the iterations fed."""
    fed = 0
    for i, row in enumerate(rows, start=1):
        metrics = {"iteration": i, "eval_reward": 0.3, "frac_reward_zero_std": 0.0, "kl": 0.01, "entropy": 0.5,
                   "completion_length": 10.0, **row}
        trainer.history.append(metrics)
        fed = i
        if reporter(metrics, trainer):
            break
    return fed


def test_a_health_stop_comes_before_the_checkpoint_and_the_backend_cannot_overrule_it():
    sent = []
    reporter = TrialReporter(lambda report: sent.append(report) or None, HealthRules(), checkpoint_every=1)
    trainer = FakeTrainer(iterations=8)
    fed = drive(reporter, trainer, [{"frac_reward_zero_std": 1.0}] * 8)
    assert fed == 3 and reporter.stopped_by == "no_learning_signal"
    assert [r.checkpoint is not None for r in sent] == [True, True, False]  # no checkpoint of a stopped trial
    assert sent[-1].flat()["stopped_by"] == "no_learning_signal" and trainer.saved == [1, 2]


def test_the_backend_stops_a_trial_but_not_on_its_last_iteration():
    def stop_at(step):
        return lambda report: ("pruner", f"pruned at {step}") if report.metrics["iteration"] >= step else None

    reporter = TrialReporter(stop_at(2), None)
    assert drive(reporter, FakeTrainer(iterations=4), [{}] * 4) == 2
    assert (reporter.stopped_by, reporter.stop_reason) == ("pruner", "pruned at 2")
    last = TrialReporter(stop_at(4), None)
    assert drive(last, FakeTrainer(iterations=4), [{}] * 4) == 4 and last.stopped_by is None


def test_health_rules_never_act_on_the_last_iteration():
    reporter = TrialReporter(lambda report: None, HealthRules(zero_std_iterations=3))
    assert drive(reporter, FakeTrainer(iterations=3), [{"frac_reward_zero_std": 1.0}] * 3) == 3
    assert reporter.stopped_by is None


def test_a_kept_checkpoint_is_written_at_the_end_only_unless_asked_more_often(tmp_path):
    kept = TrialReporter(lambda report: None, None, checkpoint_folder=tmp_path / "final")
    trainer = FakeTrainer(iterations=3)
    drive(kept, trainer, [{}] * 3)
    assert trainer.saved == [3] and kept.checkpoint_path == str(tmp_path / "final")
    none = TrialReporter(lambda report: None, None, checkpoints=False)
    drive(none, FakeTrainer(iterations=3), [{}] * 3)
    assert none.checkpoint_path is None


def test_test_transcripts_travel_in_a_flat_row_and_back():
    sent = []
    reporter = TrialReporter(lambda report: sent.append(report.flat()) or None, None)
    drive(reporter, FakeTrainer(iterations=2, test_at_end=True), [{}] * 2)
    assert "test_transcripts" not in sent[0]  # only the run's last iteration, scored on the test split
    assert annotations_of(sent[-1])["transcripts"] == TRANSCRIPT and reporter.transcripts == TRANSCRIPT
    assert annotations_of({"iteration": 1}) == {}
    # a search trial (not scored on the test split) carries none
    plain = []
    drive(TrialReporter(lambda report: plain.append(report.flat()) or None, None), FakeTrainer(iterations=2), [{}] * 2)
    assert all("test_transcripts" not in row for row in plain)


def test_a_custom_objective_reports_once_as_its_last_iteration():
    sent = []
    reporter = TrialReporter(lambda report: sent.append(report) or ("pruner", "no"), HealthRules())
    assert reporter({"iteration": 1, "score": 1.0}, None) is False
    assert sent[0].final and sent[0].checkpoint is None


def test_the_outcome_keeps_only_the_run_that_counts():
    def rows(*iterations, tag):
        return [{"iteration": i, "eval_reward": 0.1 * i, "run": tag} for i in iterations]

    # retried without a checkpoint: starts again at 1 and dies at 2; the abandoned run had reached 3
    retried = TrialOutcome("t", {}, rows(1, 2, 3, tag="first") + rows(1, 2, tag="retry"), 3).result("eval_reward")
    assert [(r["iteration"], r["run"]) for r in retried.history] == [(1, "retry"), (2, "retry")]
    assert retried.status is TrialStatus.PRUNED  # not "success": the run that counts never reached 3
    # resumed from its checkpoint at 2: iterations 1-2 stay, 3 is replayed, 4 is new
    resumed = TrialOutcome("t", {}, rows(1, 2, 3, tag="first") + rows(3, 4, tag="resumed"), 4).result("eval_reward")
    assert [(r["iteration"], r["run"]) for r in resumed.history] == [(1, "first"), (2, "first"), (3, "resumed"),
                                                                     (4, "resumed")]
    assert resumed.status is TrialStatus.SUCCESS


def test_the_outcome_says_why_a_trial_failed_or_stopped_and_forgets_a_stop_of_a_finished_one():
    nan = TrialOutcome("t", {}, [{"iteration": 2, "eval_reward": float("nan")}], 2).result("eval_reward")
    assert nan.status is TrialStatus.FAILED and "not a finite number" in nan.error
    stopped = TrialOutcome("t", {}, [{"iteration": 1, "eval_reward": 0.2}], 3, stopped_by="kl_runaway",
                           stop_reason="KL too high").result("eval_reward")
    assert (stopped.status, stopped.stopped_by, stopped.stop_reason) == (TrialStatus.PRUNED, "kl_runaway", "KL too high")
    finished = TrialOutcome("t", {}, [{"iteration": 1, "eval_reward": 0.2}], 1, stopped_by="scheduler",
                            stop_reason="stopped by Tune", transcripts=TRANSCRIPT).result("eval_reward")
    assert finished.status is TrialStatus.SUCCESS and finished.stopped_by is None
    assert finished.transcripts == TRANSCRIPT


def test_report_flat_keeps_metrics_as_they_are():
    row = Report({"iteration": 1, "reward": 0.5}, final=False).flat()
    assert row == {"iteration": 1, "reward": 0.5}
    assert annotations_of(row) == {}


def test_a_schedule_names_only_the_settings_that_changed_and_none_for_a_fixed_run():
    base = FakeTrainer().config.to_dict()
    assert schedule_of([{"iteration": 0, "config": base}]) == []
    changed = [{"iteration": 0, "config": base}, {"iteration": 2, "config": {**base, "learning_rate": 0.5}},
               {"iteration": 5, "config": {**base, "learning_rate": 0.5, "kl_penalty_coef": 0.2}}]
    assert schedule_of(changed) == [
        {"iteration": 0, "params": {"kl_penalty_coef": base["kl_penalty_coef"], "learning_rate": base["learning_rate"]}},
        {"iteration": 2, "params": {"kl_penalty_coef": base["kl_penalty_coef"], "learning_rate": 0.5}},
        {"iteration": 5, "params": {"kl_penalty_coef": 0.2, "learning_rate": 0.5}}]
    assert describe_schedule(schedule_of(changed)) == [
        f"iterations 1-2: kl_penalty_coef={base['kl_penalty_coef']!r}, learning_rate={base['learning_rate']!r}",
        f"iterations 3-5: kl_penalty_coef={base['kl_penalty_coef']!r}, learning_rate=0.5",
        "from iteration 6: kl_penalty_coef=0.2, learning_rate=0.5"]
    # it travels in the last report's flat row
    trainer = FakeTrainer(iterations=2)
    trainer.config_schedule = changed
    rows = []
    drive(TrialReporter(lambda report: rows.append(report.flat()) or None, None), trainer, [{}] * 2)
    assert annotations_of(rows[-1])["schedule"] == schedule_of(changed) and "schedule" not in rows[0]
