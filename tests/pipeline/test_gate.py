"""The validation gate: absolute minimums, regressions against the served model, RMSE reversed."""

import pytest

from pipeline.gate import evaluate_gate


def test_the_first_run_checks_minimums_only():
    result = evaluate_gate({"recall@50": 0.5}, {"recall@50": 0.3}, {"recall@50": 0.01})
    assert result.passed and result.baseline is None
    assert [c.kind for c in result.checks] == ["minimum"]


def test_a_degraded_model_fails_with_the_metric_and_the_gap():
    served = {"recall@50": 0.76, "ndcg@10": 0.44, "rmse": 0.90}
    degraded = {"recall@50": 0.31, "ndcg@10": 0.43, "rmse": 1.2}
    result = evaluate_gate(
        degraded,
        {"recall@50": 0.3},
        {"recall@50": 0.05, "ndcg@10": 0.05, "rmse": 0.02},
        served,
    )
    assert not result.passed
    failed = {c.metric: c for c in result.checks if not c.passed}
    assert set(failed) == {"recall@50", "rmse"}  # ndcg@10 lost 2.3%, within 5%
    assert failed["recall@50"].limit == pytest.approx(0.76 * 0.95)
    assert failed["rmse"].limit == pytest.approx(0.90 * 1.02)  # lower is better
    report = result.report()
    assert "FAILED" in report and "recall@50 = 0.31" in report and "short by 0.412" in report


def test_a_missing_metric_fails_and_an_unknown_baseline_metric_is_skipped():
    result = evaluate_gate({"ndcg@10": 0.4}, {"recall@50": 0.1}, {"mrr": 0.1}, {"ndcg@10": 0.4})
    assert not result.passed
    assert [(c.metric, c.value) for c in result.checks] == [("recall@50", None)]
    assert "missing" in result.report()
