"""Tests of merging partial statistics and the readable summary."""

from __future__ import annotations

import math

import pytest

from pipeline.preprocess.stats import log2_bucket, merge_stats, summarize


def test_merge_stats_sums_keeps_extremes_and_merges_nested():
    a = {
        "train": 3,
        "label_sum": 1.5,
        "time_min": 50,
        "time_max": 60,
        "event_types": {"click": 2, "buy": 1},
        "only_a": 1,
    }
    b = {
        "train": 4,
        "label_sum": 2.0,
        "time_min": 40,
        "time_max": 55,
        "event_types": {"click": 5, "view": 7},
        "only_b": {"x": 1},
    }
    assert merge_stats(a, b) == {
        "train": 7,
        "label_sum": 3.5,
        "time_min": 40,
        "time_max": 60,
        "event_types": {"click": 7, "buy": 1, "view": 7},
        "only_a": 1,
        "only_b": {"x": 1},
    }


def test_merge_stats_is_order_independent_and_leaves_inputs_alone():
    a = {"n": 1, "h": {"1": 2}, "x_min": 3}
    b = {"n": 2, "h": {"1": 1, "2-3": 1}, "x_min": 1}
    assert merge_stats(a, b) == merge_stats(b, a) == {"n": 3, "h": {"1": 3, "2-3": 1}, "x_min": 1}
    assert a == {"n": 1, "h": {"1": 2}, "x_min": 3}
    assert b == {"n": 2, "h": {"1": 1, "2-3": 1}, "x_min": 1}
    assert merge_stats({}, a) == a
    assert merge_stats(a, {}) == a


@pytest.mark.parametrize(
    ("n", "label"),
    [
        (1, "1"),
        (2, "2-3"),
        (3, "2-3"),
        (4, "4-7"),
        (7, "4-7"),
        (8, "8-15"),
        (1000, "512-1023"),
        (1024, "1024-2047"),
        (2**40 - 1, f"{2**39}-{2**40 - 1}"),
    ],
)
def test_log2_bucket(n, label):
    assert log2_bucket(n) == label


def test_log2_bucket_contains_large_counts():
    n = 2**49 - 1
    low, high = (int(x) for x in log2_bucket(n).split("-"))
    assert low <= n <= high


EVENTS = {
    "train": 6,
    "eval": 2,
    "users": 3,
    "users_with_train": 2,
    "eval_users_without_train": 1,
    "eval_events_cold_users": 1,
    "label_sum": 24.0,  # labels 1, 2, 3, 3, 3, 4, 4, 4 over 8 events: mean 3
    "label_sq_sum": 80.0,  # variance 80/8 - 9 = 1
    "label_min": 1.0,
    "label_max": 4.0,
    "history_len_sum": 12,
    "time_min": 0,
    "time_max": 86400,
    "event_types": {"view": 5, "buy": 3},
    "events_per_user": {"4-7": 1, "1": 1, "2-3": 1},
    "events_per_day": {"1970-01-02": 1, "1970-01-01": 7},
}
ITEMS = {
    "items": 12,
    "empty_description": 4,
    "text_chars_sum": 600,
    "text_chars_max": 90,
    "categories_per_item": {"2-3": 5, "1": 7},
}
# 10 items with counts: train counts 3, 2, 1, 0 (×7); items "cold1"/"cold2" only in eval.
ITEM_COUNTS = {
    "a": (3, 3),
    "b": (2, 2),
    "c": (1, 1),
    "cold1": (0, 1),
    "cold2": (0, 1),
    "n1": (0, 0),
    "n2": (0, 0),
    "n3": (0, 0),
    "n4": (0, 0),
    "n5": (0, 0),
}


def test_summarize_hand_made_input():
    summary = summarize(EVENTS, ITEMS, ITEM_COUNTS)
    events = summary["events"]
    assert events["total"] == 8
    assert (events["train"], events["eval"]) == (6, 2)
    assert events["first"] == "1970-01-01T00:00:00Z"
    assert events["last"] == "1970-01-02T00:00:00Z"
    assert list(events["by_event_type"].items()) == [("buy", 3), ("view", 5)]
    assert events["label_mean"] == 3.0
    assert events["label_std"] == pytest.approx(1.0)
    assert (events["label_min"], events["label_max"]) == (1.0, 4.0)
    assert events["mean_history_length"] == 1.5
    assert list(events["per_day"]) == ["1970-01-01", "1970-01-02"]

    users = summary["users"]
    assert users["total"] == 3
    assert users["with_train_events"] == 2
    assert users["eval_users_without_train_events"] == 1
    assert users["eval_events_of_those_users"] == 1
    assert list(users["events_per_user_histogram"].items()) == [("1", 1), ("2-3", 1), ("4-7", 1)]

    items = summary["items"]
    assert items["catalog"] == 12
    assert items["with_events"] == 5
    assert items["without_events"] == 7
    assert items["only_in_eval"] == 2
    assert items["eval_events_on_items_unseen_in_train"] == 2
    # top 10% of 10 items is the single most trained item: 3 of 6 train events
    assert items["train_share_of_top_10pct_items"] == 0.5
    assert items["empty_description"] == 4
    assert items["mean_text_chars"] == 50.0
    assert items["max_text_chars"] == 90
    assert list(items["categories_per_item"].items()) == [("1", 7), ("2-3", 5)]


def test_summarize_top_share_uses_at_least_one_item():
    summary = summarize(EVENTS, ITEMS, {"a": (1, 1), "b": (3, 4)})
    assert summary["items"]["train_share_of_top_10pct_items"] == 0.75


def test_summarize_without_events():
    summary = summarize({}, {}, {})
    assert summary["events"]["total"] == 0
    for key in ("first", "last", "label_mean", "label_std", "mean_history_length"):
        assert summary["events"][key] is None
    assert summary["items"]["train_share_of_top_10pct_items"] is None
    assert summary["items"]["mean_text_chars"] is None
    assert summary["items"]["catalog"] == 0


def test_summarize_label_std_survives_a_slightly_negative_variance():
    labels = [1.6, 1.6, 1.6]  # sum of squares / n - mean**2 is -4.4e-16 in floating point
    events = dict(
        EVENTS,
        train=3,
        eval=0,
        label_sum=sum(labels),
        label_sq_sum=sum(x * x for x in labels),
    )
    std = summarize(events, ITEMS, ITEM_COUNTS)["events"]["label_std"]
    assert std >= 0.0
    assert math.isclose(std, 0.0, abs_tol=1e-6)


def test_summarize_counts_validation_events_in_the_total():
    events = dict(EVENTS, train=4, validation=2)  # the same 8 events, 2 of them validation
    summary = summarize(events, ITEMS, ITEM_COUNTS)["events"]
    split = tuple(summary[k] for k in ("total", "train", "validation", "eval"))
    assert split == (8, 4, 2, 2)
    assert summary["label_mean"] == 3.0
    assert summarize(EVENTS, ITEMS, ITEM_COUNTS)["events"]["validation"] == 0
