"""Writing the synthetic marketplace: `items.<ext>` and `events.<ext>`, as JSONL, CSV or Parquet,
each file written beside its final name and renamed into place."""

from __future__ import annotations

import csv
import json
import os
import uuid
from collections.abc import Callable, Sequence

from pipeline.sample_data.sessions import SampleData

__all__ = ["FORMATS", "write_sample_data"]

FORMATS = ("jsonl", "csv", "parquet")
"""File formats `write_sample_data` writes."""

_CATEGORY_DELIMITER = "|"
_ITEM_FIELDS = ("item_id", "title", "description", "categories", "brand", "added_at")
_EVENT_FIELDS = ("user_id", "item_id", "timestamp", "event_type")


def _atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Calls `write(tmp)` on a temporary file beside `path`, then renames it over `path`."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_jsonl(records: list[dict], fields: Sequence[str], path: str) -> None:
    """One JSON object per line, UTF-8, non-ASCII kept as is."""
    with open(path, "x", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(json.dumps({k: record[k] for k in fields}, ensure_ascii=False))
            f.write("\n")


def _write_csv(records: list[dict], fields: Sequence[str], path: str) -> None:
    """A header row, then one row per record; list values joined with `|`."""
    with open(path, "x", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for record in records:
            writer.writerow(
                _CATEGORY_DELIMITER.join(v) if isinstance(v, list) else v
                for v in (record[k] for k in fields)
            )


def _write_parquet(records: list[dict], fields: Sequence[str], path: str) -> None:
    """A Parquet file with an explicit schema (categories as `list<string>`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "categories": pa.list_(pa.string()),
        "added_at": pa.int64(),
        "timestamp": pa.int64(),
    }
    schema = pa.schema([(k, types.get(k, pa.string())) for k in fields])
    columns = {k: [record[k] for record in records] for k in fields}
    pq.write_table(pa.Table.from_pydict(columns, schema=schema), path)


_WRITERS = {"jsonl": _write_jsonl, "csv": _write_csv, "parquet": _write_parquet}


def write_sample_data(data: SampleData, out_dir: str, fmt: str = "jsonl") -> dict:
    """Writes `events.<fmt>` and `items.<fmt>` into `out_dir`, each atomically.

    Args:
      data: What `generate` returned.
      out_dir: Destination folder; created when missing. Existing files are replaced.
      fmt: `jsonl`, `csv` or `parquet`.

    Returns:
      `{"events": path, "items": path, "n_events": int, "n_items": int, "n_users": int}`.

    Raises:
      ValueError: `fmt` is not a supported format.
    """
    if fmt not in _WRITERS:
        raise ValueError(f"unknown sample data format {fmt!r}; expected one of {FORMATS}")
    os.makedirs(out_dir, exist_ok=True)
    writer = _WRITERS[fmt]
    paths = {}
    for kind, records, fields in (
        ("events", data.events, _EVENT_FIELDS),
        ("items", data.items, _ITEM_FIELDS),
    ):
        paths[kind] = os.path.join(out_dir, f"{kind}.{fmt}")
        _atomic_write(paths[kind], lambda tmp, r=records, f=fields: writer(r, f, tmp))
    return {
        "events": paths["events"],
        "items": paths["items"],
        "n_events": len(data.events),
        "n_items": len(data.items),
        "n_users": len({e["user_id"] for e in data.events}),
    }
