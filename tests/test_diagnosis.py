"""A study in which no trial succeeded ends with why and what to change, not only "best: none"."""

from stateset_hpo import HPOSummary
from stateset_hpo.results import HPOResult, TrialStatus


def frozen(i, lr):
    return HPOResult(str(i), {"learning_rate": lr}, {"eval_reward": 0.1}, 0.1, history=[{"kl": 1e-9}] * 2,
                     status=TrialStatus.PRUNED, stopped_by="policy_frozen",
                     stop_reason=f"policy frozen: KL to the reference {1e-9 * (i + 1):.3g} nats per token after 1 "
                                 "iteration(s) of updates")


def test_trials_all_stopped_by_one_rule_end_with_the_rule_and_what_to_change():
    summary = HPOSummary("eval_reward", "maximize", [frozen(i, lr) for i, lr in enumerate([2e-6, 7e-6, 1e-6, 4e-6])])
    text = summary.format_summary().splitlines()
    assert "best: none (no trial finished successfully)" in text
    why, change = text[-2:]
    assert why.startswith("why: 4 of 4 trials were stopped by the health rule policy_frozen; e.g. trial 0: policy "
                          "frozen: KL to the reference 1e-09") and why.endswith("their learning rates: 1e-06 to 7e-06")
    assert "raise learning_rate" in change and "num_episodes" in change and change.endswith("--health kl_floor=null")


def test_a_study_whose_trials_failed_names_the_most_common_error_once():
    results = [HPOResult(str(i), {"learning_rate": 1e-3}, status=TrialStatus.FAILED,
                         error=f"Traceback (most recent call last):\n  ...\nValueError: {msg}")
               for i, msg in enumerate(["the reward returned 3 scores for 4 replies"] * 3 + ["out of memory"])]
    text = summary_text = HPOSummary("eval_reward", "maximize", results).format_summary()
    assert summary_text.count("the reward returned 3 scores") == 1 + 3  # the diagnosis once, and each trial's row
    assert "why: 4 of 4 trials failed; the most common error (3 of them): ValueError: the reward returned 3 scores " \
           "for 4 replies" in text


def test_a_study_with_a_success_or_mixed_stops_gets_no_diagnosis():
    ok = HPOResult("9", {"learning_rate": 1e-3}, {"eval_reward": 0.5}, 0.5)
    assert "why:" not in HPOSummary("eval_reward", "maximize", [frozen(0, 1e-6), ok]).format_summary()
    mixed = [frozen(0, 1e-6)] + [HPOResult(str(i), {}, status=TrialStatus.PRUNED, stopped_by=rule, stop_reason="x")
                                 for i, rule in enumerate(["kl_runaway", "entropy_floor"], 1)]
    assert "why:" not in HPOSummary("eval_reward", "maximize", mixed).format_summary()


def test_the_report_of_such_a_study_leads_with_the_diagnosis(tmp_path):
    from stateset_hpo import SearchDimension, SearchSpace, SearchSpaceType
    from stateset_hpo.report import write_report

    space = SearchSpace([SearchDimension("learning_rate", SearchSpaceType.LOGUNIFORM, low=1e-6, high=1e-5)])
    summary = HPOSummary("eval_reward", "maximize", [frozen(i, 1e-6 * (i + 1)) for i in range(3)])
    page = write_report(summary, space, tmp_path).read_text()
    assert "why: 3 of 3 trials were stopped by the health rule policy_frozen" in page
    assert page.index("--health kl_floor=null") < page.index("<h2>Trials</h2>")
