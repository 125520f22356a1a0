"""Per-user timelines: order, de-duplication and histories without leakage from the future.

A user's events are ordered by time (ties broken by input position, so the result does not depend
on how a runner shuffled them). An event repeating an earlier one's item, time and event type is a
duplicate. Each kept event's history is the last H items of the user's kept events strictly before
it in time: events at the same second never see each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from pipeline.preprocess.records import Event

__all__ = ["TimelineEvent", "build_timeline"]


class TimelineEvent(NamedTuple):
    event: Event
    history_item_ids: tuple[str, ...]
    history_timestamps: tuple[int, ...]


def build_timeline(
    events: Iterable[Event], history_length: int
) -> tuple[list[TimelineEvent], list[tuple[Event, Event]]]:
    """Returns `(kept events with histories, [(duplicate, the kept event it repeats)])` for one
    user's events.

    Args:
      events: The user's events in any order.
      history_length: H, the most history items kept per event.
    """
    ordered = sorted(events, key=lambda e: (e.timestamp, e.source, e.line, e.item_id))
    kept: list[Event] = []
    duplicates: list[tuple[Event, Event]] = []
    seen: dict[tuple[str, int, str], Event] = {}
    for event in ordered:
        key = (event.item_id, event.timestamp, event.event_type)
        original = seen.get(key)
        if original is not None:
            duplicates.append((event, original))
        else:
            seen[key] = event
            kept.append(event)
    timeline: list[TimelineEvent] = []
    group_start = 0  # index of the first kept event at the current timestamp
    for i, event in enumerate(kept):
        if i and event.timestamp != kept[i - 1].timestamp:
            group_start = i
        before = kept[max(0, group_start - history_length) : group_start]
        timeline.append(
            TimelineEvent(
                event,
                tuple(e.item_id for e in before),
                tuple(e.timestamp for e in before),
            )
        )
    return timeline, duplicates
