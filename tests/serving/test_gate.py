"""The validation gate: absolute minimums, regressions against the served model, RMSE reversed."""

import pytest

from serving.gate import evaluate_gate


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


def test_the_model_must_beat_the_best_baseline_of_its_own_evaluation():
    candidate = {
        "recall@50": 0.15,
        "ndcg@10": 0.026,
        "rmse": 0.95,
        "baselines": {
            "cooccurrence": {"recall@50": 0.136, "ndcg@10": 0.0252, "rmse": 0.99},
            "ease": {"recall@50": 0.161, "ndcg@10": 0.0248, "rmse": 0.9},
        },
    }
    ratios = {"recall@50": 1.0, "ndcg@10": 1.0, "rmse": 1.0}
    result = evaluate_gate(candidate, {}, {}, None, ratios)
    checks = {c.metric: c for c in result.checks}
    assert [c.kind for c in result.checks] == ["baseline"] * 3
    assert not checks["recall@50"].passed and checks["recall@50"].limit == pytest.approx(0.161)
    assert "1× ease" in checks["recall@50"].detail
    assert checks["ndcg@10"].passed and "cooccurrence" in checks["ndcg@10"].detail
    assert not checks["rmse"].passed and checks["rmse"].limit == pytest.approx(0.9)  # lower wins
    assert "short by 0.011" in result.report()
    relaxed = evaluate_gate(candidate, {}, {}, None, {"recall@50": 0.9})
    assert relaxed.passed  # 0.15 ≥ 0.9 × 0.161


def test_an_evaluation_without_baselines_cannot_pass_a_baseline_check():
    result = evaluate_gate({"recall@50": 0.9}, {}, {}, None, {"recall@50": 1.0})
    assert not result.passed
    assert "no baseline" in result.report()
