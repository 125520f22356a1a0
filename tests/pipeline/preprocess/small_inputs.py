"""A small hand-made input set for end-to-end runs of the preprocess job: three items and ten
events that are good, and one record of each way an item or an event can be bad."""

import json

from pipeline.core.config import load_config
from pipeline.preprocess import reasons

FAST_BEAM = ["beam.direct_num_workers=1", "beam.direct_running_mode=in_memory"]

GOOD_ITEMS = [
    {
        "item_id": "i1",
        "title": "Trail tent",
        "description": "Sleeps two.",
        "categories": ["outdoor"],
    },
    {"item_id": "i2", "title": "Camp stove", "description": "", "categories": "outdoor|kitchen"},
    {"item_id": "i3", "title": "Chef knife", "description": "Sharp.", "categories": ["kitchen"]},
]
BAD_ITEMS = [
    (b'{"item_id": "i1", "title": "Second i1"}', reasons.DUPLICATE_ITEM),
    (b'{"item_id": "i4"}', reasons.MISSING_FIELD),
]
GOOD_EVENTS = [
    ("u1", "i1", 100),
    ("u1", "i2", 200),
    ("u1", "i3", 300),
    ("u1", "i1", 900),
    ("u2", "i3", 150),
    ("u2", "i3", 150 + 60),
    ("u2", "i2", 950),
    ("u3", "i2", 400),
    ("u3", "i1", 400),
    ("u3", "i3", 1000),
]
BAD_EVENTS = [
    (b'{"user_id": "u1", "item_id": ', reasons.MALFORMED),
    (b'{"item_id": "i1", "timestamp": 100}', reasons.MISSING_FIELD),
    (b'{"user_id": "", "item_id": "i1", "timestamp": 100}', reasons.EMPTY_FIELD),
    (b'{"user_id": "u1", "item_id": "i1", "timestamp": "yesterday"}', reasons.BAD_TIMESTAMP),
    (b'{"user_id": "u1", "item_id": "zzz", "timestamp": 100}', reasons.UNKNOWN_ITEM),
    (b'{"user_id": "u\xff\xfe", "item_id": "i1", "timestamp": 100}', reasons.INVALID_UTF8),
    (b'{"user_id": "' + b"u" * 300 + b'", "item_id": "i1", "timestamp": 100}', reasons.OVERSIZED),
    (b'{"user_id": "u1", "item_id": "i2", "timestamp": 200}', reasons.DUPLICATE_EVENT),
]


def _event_line(user, item, ts):
    return json.dumps({"user_id": user, "item_id": item, "timestamp": ts}).encode()


def write_inputs(folder):
    """`items.jsonl` and `events.jsonl` in `folder`: the good records with the bad ones (and a
    blank line) among them."""
    folder.mkdir(parents=True, exist_ok=True)
    items = [json.dumps(item).encode() for item in GOOD_ITEMS] + [raw for raw, _ in BAD_ITEMS]
    (folder / "items.jsonl").write_bytes(b"\n".join(items) + b"\n")
    lines = [_event_line(*e) for e in GOOD_EVENTS]
    lines[3:3] = [raw for raw, _ in BAD_EVENTS]
    lines.insert(5, b"")  # a blank line is skipped and counted, not a record
    (folder / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def job_config(tmp_path, *overrides):
    """The config of a run on `tmp_path / "raw"` into `tmp_path / "work"`, Beam in memory."""
    return load_config(
        None,
        [f"work_dir={tmp_path / 'work'}", f"data.path={tmp_path / 'raw'}", *FAST_BEAM, *overrides],
    )
