"""The drift check: a candidate's data against the served model's run, each check with its
value, limit and verdict."""

import shutil

import pytest

from serving.drift import data_profile, drift_checks, popularity_shift
from serving.gate import GateResult
from tests.models.conftest import small_config

LIMITS = {
    "max_volume_drop": 0.3,
    "max_rejected_share_increase": 0.05,
    "max_empty_text_increase": 0.05,
    "max_popularity_shift": 0.05,
}


def _profile(**changes):
    profile = {
        "schema_version": 3,
        "features": {"events": {"item_id": {"dtype": "string", "varlen": False}}},
        "events": 1000,
        "users": 100,
        "rejected_share": 0.01,
        "empty_text_share": 0.02,
        "item_shares": {"a": 0.5, "b": 0.3, "c": 0.2},
    }
    profile.update(changes)
    return profile


def test_an_unchanged_run_passes_every_check():
    checks = drift_checks(_profile(), _profile(), LIMITS)
    assert [c.metric for c in checks] == [
        "schema",
        "events",
        "users",
        "rejected_share",
        "empty_text_share",
        "popularity_shift",
    ]
    assert all(c.passed for c in checks)


def test_events_cut_by_half_are_blocked_with_value_limit_and_gap():
    result = GateResult(checks=drift_checks(_profile(events=500), _profile(), LIMITS))
    failed = [c for c in result.checks if not c.passed]
    assert [c.metric for c in failed] == ["events"]
    assert failed[0].limit == pytest.approx(700)  # 1,000 less 30%
    assert (
        "events = 500, needs at least 700" in result.report() and "short by 200" in result.report()
    )


def test_rejections_missing_text_schema_and_popularity_each_block():
    candidate = _profile(
        rejected_share=0.2,
        empty_text_share=0.5,
        schema_version=4,
        item_shares={"a": 0.2, "b": 0.3, "d": 0.5},
    )
    failed = {c.metric for c in drift_checks(candidate, _profile(), LIMITS) if not c.passed}
    assert failed == {"schema", "rejected_share", "empty_text_share", "popularity_shift"}


def test_popularity_shift_is_the_largest_change_of_one_items_share():
    # a: 0.5 → 0.2 (0.3), c: 0.2 → 0 (0.2), d: 0 → 0.5 (0.5)
    assert popularity_shift({"a": 0.2, "d": 0.5}, {"a": 0.5, "c": 0.2}) == pytest.approx(0.5)
    assert popularity_shift({}, {}) == 0.0


def test_the_profile_of_a_preprocess_run(prepared, tmp_path):
    work, _ = prepared
    shutil.copytree(work / "preprocess", tmp_path / "preprocess")
    profile = data_profile(str(tmp_path / "preprocess"))
    config = small_config(tmp_path)
    assert profile["events"] > 0 and profile["users"] == config.sample_data.n_users
    assert sum(profile["item_shares"].values()) == pytest.approx(1.0)  # fewer than 1,000 items
    assert 0 <= profile["rejected_share"] < 1 and 0 <= profile["empty_text_share"] < 1
    assert "events" in profile["features"]
    assert drift_checks(profile, profile, LIMITS)[-1].value == 0.0
