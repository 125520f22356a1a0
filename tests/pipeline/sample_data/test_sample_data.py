"""Tests of the synthetic marketplace generator and writer."""

from __future__ import annotations

import collections
import csv
import json
import os
import re
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.core.config import SampleDataConfig
from pipeline.sample_data import (
    EVENT_TYPES,
    LOG_START,
    SampleData,
    generate,
    write_sample_data,
    writers,
)
from pipeline.sample_data.catalog import build_catalog
from pipeline.sample_data.vocabulary import CATEGORIES

SMALL = SampleDataConfig(n_users=200, n_items=300, seed=3)


@pytest.fixture(scope="module")
def small() -> SampleData:
    return generate(SMALL)


@pytest.fixture(scope="module")
def default_run() -> tuple[SampleData, float]:
    started = time.perf_counter()
    data = generate(SampleDataConfig())
    return data, time.perf_counter() - started


def _event_counts(data: SampleData) -> collections.Counter:
    return collections.Counter(e["item_id"] for e in data.events)


def _read(path: str, fmt: str) -> list[dict]:
    """Reads records back, converting CSV strings to the generator's types."""
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in ("timestamp", "added_at"):
            if key in row:
                row[key] = int(row[key])
        if "categories" in row:
            row["categories"] = row["categories"].split("|")
    return rows


def test_same_seed_gives_byte_identical_files(tmp_path):
    first, second = generate(SMALL), generate(SMALL)
    for fmt in ("jsonl", "csv", "parquet"):
        a = write_sample_data(first, str(tmp_path / "a" / fmt), fmt)
        b = write_sample_data(second, str(tmp_path / "b" / fmt), fmt)
        for kind in ("events", "items"):
            with open(a[kind], "rb") as fa, open(b[kind], "rb") as fb:
                assert fa.read() == fb.read(), (fmt, kind)


def test_different_seed_gives_different_data(small):
    other = generate(SampleDataConfig(n_users=200, n_items=300, seed=4))
    assert other.events != small.events
    assert [i["description"] for i in other.items] != [i["description"] for i in small.items]


def test_record_fields_and_ids(small):
    assert len(small.items) == SMALL.n_items
    assert [i["item_id"] for i in small.items] == [f"i{k:05d}" for k in range(SMALL.n_items)]
    for item in small.items:
        assert list(item) == ["item_id", "title", "description", "categories", "brand", "added_at"]
        assert item["title"].startswith(item["brand"] + " ")
        assert 1 <= len(item["categories"]) <= 2
        assert len(set(item["categories"])) == len(item["categories"])
        assert isinstance(item["added_at"], int)
    users = {e["user_id"] for e in small.events}
    assert users == {f"u{k:04d}" for k in range(SMALL.n_users)}
    for event in small.events[:100]:
        assert list(event) == ["user_id", "item_id", "timestamp", "event_type"]
        assert isinstance(event["timestamp"], int)


def test_events_are_consistent(small):
    added = {i["item_id"]: i["added_at"] for i in small.items}
    log_end = LOG_START + SMALL.days * 86_400
    for event in small.events:
        assert event["item_id"] in added
        assert event["timestamp"] >= added[event["item_id"]]
        assert LOG_START <= event["timestamp"] < log_end
        assert event["event_type"] in EVENT_TYPES
    keys = [(e["timestamp"], e["user_id"]) for e in small.events]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_categories_and_descriptions(small):
    primaries = {i["categories"][0] for i in small.items}
    assert len(primaries) == SMALL.n_categories
    assert any(len(i["categories"]) == 2 for i in small.items)
    texts = [i["description"] for i in small.items if i["description"]]
    assert len(set(texts)) > 0.9 * len(texts)
    # 1-4 sentences; one lead template asks a question first.
    assert all(1 <= len(re.split(r"(?<=[.?]) ", t)) <= 5 for t in texts)
    five = generate(SampleDataConfig(n_users=20, n_items=100, n_categories=5, seed=1))
    assert len({c for i in five.items for c in i["categories"]}) == 5


def test_text_states_the_latent_style():
    items, catalog = build_catalog(SMALL, np.random.default_rng(SMALL.seed))
    assert items == generate(SMALL).items
    for item, c, s in zip(items, catalog.category, catalog.style, strict=True):
        category = CATEGORIES[int(c)]
        assert item["categories"][0] == category.name
        if item["description"]:
            assert category.styles[int(s)][0] in item["description"]


def _top_style_share(
    data: SampleData, style_of: dict[str, int], category_of: dict[str, str]
) -> tuple[float, int]:
    """Mean share of a user's most frequent style among their events in one category."""
    styles: dict[tuple[str, str], collections.Counter] = collections.defaultdict(
        collections.Counter
    )
    for event in data.events:
        item = event["item_id"]
        styles[event["user_id"], category_of[item]][style_of[item]] += 1
    shares = [c.most_common(1)[0][1] / c.total() for c in styles.values() if c.total() >= 8]
    return float(np.mean(shares)), len(shares)


def test_users_prefer_styles_beyond_popularity(default_run):
    data, _ = default_run
    cfg = SampleDataConfig()
    items, catalog = build_catalog(cfg, np.random.default_rng(cfg.seed))
    ids = [item["item_id"] for item in items]
    category_of = {i["item_id"]: i["categories"][0] for i in items}
    style_of = dict(zip(ids, catalog.style.tolist(), strict=True))
    # Baseline: the same events with style labels shuffled among items, so only popularity and
    # category preference remain.
    shuffled = np.random.default_rng(0).permutation(catalog.style).tolist()
    actual, n = _top_style_share(data, style_of, category_of)
    baseline, _ = _top_style_share(data, dict(zip(ids, shuffled, strict=True)), category_of)
    assert n > 1000
    assert actual > baseline + 0.1


def test_next_event_follows_the_users_favourite_category(small):
    primary = {i["item_id"]: i["categories"][0] for i in small.items}
    history: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    hits = total = 0
    for event in small.events:
        seen = history[event["user_id"]]
        category = primary[event["item_id"]]
        if seen:
            total += 1
            hits += seen.most_common(1)[0][0] == category
        seen[category] += 1
    assert hits / total > 3 / SMALL.n_categories
    assert hits / total > 0.4


def test_sessions_and_funnel(small):
    per_user = collections.Counter(e["user_id"] for e in small.events)
    assert min(per_user.values()) >= 2
    types = collections.Counter(e["event_type"] for e in small.events)
    assert types["view"] > types["click"] > types["add_to_cart"] > types["purchase"] > 0


def test_progress_is_reported():
    calls = []
    generate(
        SampleDataConfig(n_users=30, n_items=50, seed=2), progress=lambda d, t: calls.append((d, t))
    )
    assert calls
    assert calls[-1] == (30, 30)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_default_size(default_run):
    data, seconds = default_run
    assert 60_000 <= len(data.events) <= 120_000
    assert len({e["user_id"] for e in data.events}) == 2000
    assert len(data.items) == 3000
    assert seconds < 30
    empty = sum(1 for i in data.items if not i["description"])
    assert 0 < empty < 0.03 * len(data.items)


def test_popularity_is_skewed(default_run):
    data, _ = default_run
    counts = _event_counts(data)
    ranked = sorted((counts.get(i["item_id"], 0) for i in data.items), reverse=True)
    top = ranked[: len(ranked) // 10]
    assert sum(top) > sum(ranked) / 3


def test_cold_items(default_run):
    data, _ = default_run
    counts = _event_counts(data)
    log_end = LOG_START + 120 * 86_400
    cold = [i for i in data.items if i["added_at"] > LOG_START]
    warm = [i for i in data.items if i["added_at"] <= LOG_START]
    assert len(cold) == round(0.08 * 3000)
    assert all(LOG_START + 0.85 * (log_end - LOG_START) <= i["added_at"] < log_end for i in cold)
    mean_cold = np.mean([counts.get(i["item_id"], 0) for i in cold])
    mean_warm = np.mean([counts.get(i["item_id"], 0) for i in warm])
    assert mean_cold < mean_warm / 3


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_formats_round_trip(small, tmp_path, fmt):
    out = str(tmp_path / "out")
    result = write_sample_data(small, out, fmt)
    assert result == {
        "events": os.path.join(out, f"events.{fmt}"),
        "items": os.path.join(out, f"items.{fmt}"),
        "n_events": len(small.events),
        "n_items": len(small.items),
        "n_users": SMALL.n_users,
    }
    assert sorted(os.listdir(out)) == [f"events.{fmt}", f"items.{fmt}"]
    assert _read(result["events"], fmt) == small.events
    assert _read(result["items"], fmt) == small.items


def test_write_replaces_existing_files(small, tmp_path):
    out = str(tmp_path)
    write_sample_data(generate(SampleDataConfig(n_users=20, n_items=40, seed=9)), out)
    result = write_sample_data(small, out)
    assert len(_read(result["events"], "jsonl")) == len(small.events)
    assert sorted(os.listdir(out)) == ["events.jsonl", "items.jsonl"]


def test_failed_write_leaves_no_temp_file(small, tmp_path, monkeypatch):
    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(writers.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_sample_data(small, str(tmp_path), "csv")
    assert os.listdir(tmp_path) == []


def test_unknown_format_is_rejected(small, tmp_path):
    with pytest.raises(ValueError, match="xml"):
        write_sample_data(small, str(tmp_path / "out"), "xml")
    assert not (tmp_path / "out").exists()
