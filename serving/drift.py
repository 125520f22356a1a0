"""Data drift between the run that trained a candidate and the run behind the served model.

A scheduled retrain must not ship a model trained on broken logs: a day of lost events, a feed
whose records are suddenly rejected, a catalog export without descriptions. Like TFX's
ExampleValidator against the previous span, the gate compares the candidate's data profile with
the served version's, each carried in its export manifest:

* the schema (schema version and the TFRecord features);
* the volume: kept events and users may not drop by more than `gate.max_volume_drop` (a share);
* the rejected share of read events and the share of items without a description may not rise
  by more than `gate.max_rejected_share_increase` / `gate.max_empty_text_increase` (absolute);
* item popularity: the L-infinity distance between the two runs' item shares of kept events
  (the largest change of any one item's share, as TFDV measures drift of a categorical
  feature) may not exceed `gate.max_popularity_shift`. The profile keeps the `TOP_ITEMS` most
  popular items of each run; an item outside a run's top has a share of at most that run's
  smallest kept share, so the distance is exact whenever it exceeds both.

`data_profile` reads a preprocess folder; `drift_checks` returns the gate's checks.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from typing import Any

from pipeline.core import schema
from pipeline.core.manifest import read_json
from serving.gate import Check

__all__ = ["TOP_ITEMS", "data_profile", "drift_checks", "popularity_shift"]

TOP_ITEMS = 1000


def data_profile(preprocess_dir: str) -> dict[str, Any]:
    """The figures the drift check compares, from a published preprocess folder."""
    manifest = read_json(schema.output_pattern(preprocess_dir, "manifest"))
    stats = read_json(schema.output_pattern(preprocess_dir, "stats"))
    counts = manifest["counts"]
    catalog = stats["items"].get("catalog", 0)
    shares: dict[str, float] = {}
    with open(schema.output_pattern(preprocess_dir, "counts_items"), encoding="utf-8") as f:
        rows = [(row[0], int(row[2])) for row in csv.reader(f, delimiter="\t") if row]
    total = sum(n for _, n in rows)
    for item, n in sorted(rows, key=lambda r: -r[1])[:TOP_ITEMS]:
        if n:
            shares[item] = n / total
    return {
        "schema_version": manifest.get("schema_version"),
        "features": manifest.get("features", {}),
        "events": counts.get("kept", 0),
        "users": stats["users"].get("total", 0),
        "rejected_share": counts.get("rejected", 0) / counts["read"] if counts.get("read") else 0.0,
        "empty_text_share": stats["items"].get("empty_description", 0) / catalog
        if catalog
        else 0.0,
        "item_shares": shares,
    }


def popularity_shift(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """L-infinity distance of two item-share maps; an item a map lacks has share 0 there (see
    the module docstring for what the truncation to the top items costs)."""
    return max((abs(a.get(i, 0.0) - b.get(i, 0.0)) for i in {*a, *b}), default=0.0)


def drift_checks(
    candidate: Mapping[str, Any], served: Mapping[str, Any], limits: Mapping[str, float]
) -> list[Check]:
    """The drift checks of a candidate's data profile against the served model's.

    Args:
      candidate / served: `data_profile` outputs.
      limits: `max_volume_drop`, `max_rejected_share_increase`, `max_empty_text_increase`,
        `max_popularity_shift`.
    """
    checks = []
    same = candidate.get("schema_version") == served.get("schema_version") and candidate.get(
        "features"
    ) == served.get("features")
    checks.append(
        Check("schema", "drift", float(same), 1.0, same, "schema version and features unchanged")
    )
    drop = limits["max_volume_drop"]
    for name in ("events", "users"):
        before, now = float(served.get(name, 0)), float(candidate.get(name, 0))
        limit = before * (1.0 - drop)
        detail = f"at most {drop:.0%} fewer than the served model's run ({before:,.0f})"
        checks.append(Check(name, "drift", now, limit, now >= limit, detail))
    for name, key in (
        ("rejected_share", "max_rejected_share_increase"),
        ("empty_text_share", "max_empty_text_increase"),
    ):
        before, now = float(served.get(name, 0.0)), float(candidate.get(name, 0.0))
        limit = before + limits[key]
        detail = f"at most {limits[key]:g} above the served model's run ({before:.4g})"
        checks.append(Check(name, "drift", now, limit, now <= limit, detail))
    shift = popularity_shift(candidate.get("item_shares", {}), served.get("item_shares", {}))
    limit = limits["max_popularity_shift"]
    detail = "L-infinity distance of item shares from the served model's run"
    checks.append(Check("popularity_shift", "drift", shift, limit, shift <= limit, detail))
    return checks
