"""The eval queries' exclusions: every item the user had an event on strictly before."""

import numpy as np

from models.eval_data import EventColumns, seen_before


def _events(users, items, times):
    n = len(items)
    empty = np.zeros(0, np.int64)
    return EventColumns(
        np.array(users, object), np.array(items), np.array(times), np.ones(n), empty, empty
    )


def test_seen_before_is_strictly_earlier_in_any_split_and_per_user():
    train = _events([b"u", b"u", b"v", b"u"], [0, 1, 2, 1], [10, 20, 5, 25])
    evals = _events([b"u", b"u", b"v", b"w"], [3, 4, 0, 0], [30, 30, 4, 1])
    seen = seen_before(evals, [train, evals])
    assert [s.tolist() for s in seen] == [
        [0, 1],  # u at 30: items 0, 1 (1 twice); item 3 and 4 at the same second are not before
        [0, 1],
        [],  # v's only train event is later
        [],  # w has no other event
    ]


def test_items_outside_the_catalog_are_never_excluded():
    train = _events([b"u", b"u"], [-1, 2], [1, 2])
    evals = _events([b"u"], [0], [3])
    assert seen_before(evals, [train, evals])[0].tolist() == [2]
