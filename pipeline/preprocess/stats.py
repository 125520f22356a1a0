"""Summary statistics, merged from partial dicts computed on each worker.

Partial statistics are nested dicts of numbers. Merging adds numbers, except keys ending in `_min`
or `_max`, which keep the extreme; nested dicts merge key by key. `summarize` turns the merged
totals into the readable `stats.json`, and `plot_stats` draws it as `stats.png`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pipeline.core.timestamps import format_timestamp

__all__ = ["log2_bucket", "merge_stats", "plot_stats", "summarize"]

# The temporal split's cutoffs drawn on the events-per-day plot: rule key, legend, colour.
_CUTOFF_MARKS = (
    ("validation_cutoff", "validation from here", "#7f7f7f"),
    ("cutoff", "eval from here", "#c00000"),
)


def merge_stats(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Merges two partial statistics dicts (see the module docstring)."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, Mapping):
            out[key] = merge_stats(out[key], value)
        elif key.endswith("_min"):
            out[key] = min(out[key], value)
        elif key.endswith("_max"):
            out[key] = max(out[key], value)
        else:
            out[key] = out[key] + value
    return out


def log2_bucket(n: int) -> str:
    """Histogram bucket label for a positive count: `1`, `2-3`, `4-7`, ..."""
    low = 1 << (n.bit_length() - 1)
    high = 2 * low - 1
    return str(low) if low == high else f"{low}-{high}"


def summarize(
    events: Mapping[str, Any], items: Mapping[str, Any], item_counts: Mapping[str, tuple[int, int]]
) -> dict[str, Any]:
    """The readable statistics of a preprocess run.

    Args:
      events: Merged event partials: `train`, `validation`, `eval`, `users`, `users_with_train`
        (users with a train or validation event),
        `eval_users_without_train`, `eval_events_cold_users`, `label_sum`, `label_sq_sum`,
        `label_min`, `label_max`, `history_len_sum`, `time_min`, `time_max`, `event_types`,
        `events_per_user`, `events_per_day`.
      items: Merged item partials: `items`, `empty_description`, `text_chars_sum`,
        `text_chars_max`, `categories_per_item`.
      item_counts: item id -> (train_count, total_count) over kept events; train counts
        include validation (every event before eval).
    """
    n = events.get("train", 0) + events.get("validation", 0) + events.get("eval", 0)
    n_items = items.get("items", 0)
    cold_items = [k for k, (train, total) in item_counts.items() if train == 0 and total > 0]
    interacted = sum(1 for _, total in item_counts.values() if total > 0)
    label_mean = events.get("label_sum", 0.0) / n if n else None
    label_var = events.get("label_sq_sum", 0.0) / n - label_mean**2 if n else None
    popularity = sorted((train for train, _ in item_counts.values()), reverse=True)
    top_decile = popularity[: max(1, len(popularity) // 10)] if popularity else []
    train_total = sum(popularity)
    return {
        "events": {
            "total": n,
            "train": events.get("train", 0),
            "validation": events.get("validation", 0),
            "eval": events.get("eval", 0),
            "first": format_timestamp(events["time_min"]) if n else None,
            "last": format_timestamp(events["time_max"]) if n else None,
            "by_event_type": dict(sorted(events.get("event_types", {}).items())),
            "label_mean": label_mean,
            "label_std": math.sqrt(max(label_var, 0.0)) if label_var is not None else None,
            "label_min": events.get("label_min"),
            "label_max": events.get("label_max"),
            "mean_history_length": events.get("history_len_sum", 0) / n if n else None,
            "per_day": dict(sorted(events.get("events_per_day", {}).items())),
        },
        "users": {
            "total": events.get("users", 0),
            "with_train_events": events.get("users_with_train", 0),
            "eval_users_without_train_events": events.get("eval_users_without_train", 0),
            "eval_events_of_those_users": events.get("eval_events_cold_users", 0),
            "events_per_user_histogram": _sorted_buckets(events.get("events_per_user", {})),
        },
        "items": {
            "catalog": n_items,
            "with_events": interacted,
            "without_events": n_items - interacted,
            "only_in_eval": len(cold_items),
            "eval_events_on_items_unseen_in_train": sum(item_counts[k][1] for k in cold_items),
            "train_share_of_top_10pct_items": sum(top_decile) / train_total
            if train_total
            else None,
            "empty_description": items.get("empty_description", 0),
            "mean_text_chars": items.get("text_chars_sum", 0) / n_items if n_items else None,
            "max_text_chars": items.get("text_chars_max", 0),
            "categories_per_item": _sorted_buckets(items.get("categories_per_item", {})),
        },
    }


def _sorted_buckets(histogram: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(histogram.items(), key=lambda kv: int(kv[0].split("-")[0])))


def plot_stats(
    stats: dict[str, Any], item_counts: dict[str, tuple], path: str, rule: dict[str, Any]
) -> None:
    """Events per day (with the temporal split's cutoffs) and the item popularity curve, for a
    person skimming the run."""
    if "://" in path:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_days, ax_pop) = plt.subplots(1, 2, figsize=(11, 3.8))
    per_day = stats["events"]["per_day"]
    if per_day:
        ax_days.bar(range(len(per_day)), list(per_day.values()), width=1.0, color="#4472c4")
        ticks = list(range(0, len(per_day), max(1, len(per_day) // 6)))
        ax_days.set_xticks(ticks, [list(per_day)[i] for i in ticks], rotation=30, fontsize=7)
        marks = [(key, label, color) for key, label, color in _CUTOFF_MARKS if rule.get(key)]
        for key, label, color in marks:
            day = format_timestamp(rule[key])[:10]
            index = sum(1 for d in per_day if d < day)
            ax_days.axvline(index - 0.5, color=color, linestyle="--", label=label)
        if marks:
            ax_days.legend(loc="lower left", fontsize=8)
    ax_days.set_title("Kept events per day")
    ax_days.set_ylabel("events")
    popularity = sorted((c[1] for c in item_counts.values() if c[1] > 0), reverse=True)
    if popularity:
        ax_pop.loglog(range(1, len(popularity) + 1), popularity, color="#c55a11")
    ax_pop.set_title("Item popularity (all kept events)")
    ax_pop.set_xlabel("item rank")
    ax_pop.set_ylabel("events")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
