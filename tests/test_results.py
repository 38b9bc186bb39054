"""HPOResult / HPOSummary: best trial by direction, totals, strict JSON round trip, table."""

import io
import json

import numpy as np
import pytest

from stateset_hpo import HPOResult, HPOSummary, TrialStatus


def make_summary(direction="maximize"):
    return HPOSummary(
        objective_metric="reward", direction=direction, total_time=12.5, search_space_name="grpo",
        baseline_trial_id="t0",
        all_results=[
            # (trial_id, params, metrics, best_metric, training_time), the replaced system's order
            HPOResult("t0", {"learning_rate": 1e-5}, {"reward": 0.4}, 0.4, 3.0, [{"reward": 0.2}, {"reward": 0.4}]),
            HPOResult("t1", {"learning_rate": 1e-4}, {"reward": 0.7}, 0.7, 2.0, [{"reward": 0.7}]),
            HPOResult("t2", {"learning_rate": 1e-3}, {"reward": 0.9}, 0.9, 1.0, [{"reward": 0.9}], status="pruned"),
            HPOResult("t3", {"learning_rate": 1e-2}, {"reward": float("nan")}, float("nan"), 0.5,
                      [{"reward": float("nan")}], status=TrialStatus.FAILED, error="DivergenceError: loss is NaN\ntrace"),
            HPOResult("t4", {"learning_rate": np.float64(2e-6)}, {"reward": np.float32(0.1)}, np.float64(0.1), 1.0, []),
        ])


def test_best_is_the_best_successful_trial_for_the_direction():
    s = make_summary()
    assert (s.best_trial_id, s.best_metric, s.best_params) == ("t1", 0.7, {"learning_rate": 1e-4})
    m = make_summary("minimize")
    assert m.best_trial_id == "t4" and m.best_metric == pytest.approx(0.1)


def test_totals_by_status():
    s = make_summary()
    assert (s.n_trials, s.n_successful, s.n_pruned, s.n_failed) == (5, 3, 1, 1)
    assert s.baseline_metric == 0.4


def test_non_finite_values_become_none_and_numpy_becomes_python():
    failed = make_summary().all_results[3]
    assert failed.best_metric is None and failed.metrics["reward"] is None and failed.history == [{"reward": None}]
    t4 = make_summary().all_results[4]
    assert type(t4.params["learning_rate"]) is float and type(t4.best_metric) is float


def test_strict_json_round_trip(tmp_path):
    s = make_summary()
    path = s.save(tmp_path / "out" / "summary.json")
    text = path.read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict token {c}"))
    loaded = HPOSummary.load(path)
    assert loaded == s
    assert loaded.to_dict() == s.to_dict()
    assert json.loads(text)["best_trial_id"] == "t1"


def test_summary_with_no_successful_trial():
    s = HPOSummary("reward", "maximize", [HPOResult("a", {}, status="failed", error="boom")])
    assert s.best_result is None and s.best_metric is None and s.best_params == {}
    assert "no trial finished successfully" in s.format_summary()
    assert HPOSummary.from_dict(json.loads(s.to_json())) == s


def test_print_summary_is_a_readable_table():
    out = io.StringIO()
    make_summary().print_summary(file=out)
    text = out.getvalue()
    lines = text.splitlines()
    assert "trials: 5  success: 3  pruned: 1  failed: 1" in text
    assert "recommended: trial t1  reward = 0.7000" in text
    # the first trial's search score is shown, but no "change": a maximum of noisy runs is no gain
    assert "the space's defaults (trial t0, the search's first): 0.4000" in text and "change" not in text
    table = lines[lines.index(next(l for l in lines if l.startswith("trial "))) + 1:]
    assert [row.split()[0] for row in table] == ["t2", "t1", "t0", "t4", "t3"]
    assert "DivergenceError: loss is NaN" in text and "trace" not in text


def test_bad_input():
    with pytest.raises(ValueError):
        HPOResult("x", {}, status="done")
    with pytest.raises(ValueError, match="direction"):
        HPOSummary("reward", "up")


