"""The version folders of a model: `<model_dir>/<integer>/`, as TF Serving sees them.

TF Serving serves the integer-named folders of `<base>/<name>/` and ignores every other name
(staging folders, `.rolled-back/`). Exports (`<export_base>/<name>/<N>/`) use the same layout, so
whoever reads a model, the newest export or the served version, lists it the same way: the
push and rollback of `serving.versions`, the evaluation's diversity sweep of the newest export
(`models.diversity`), `recsys status` and `recsys run`.
"""

from __future__ import annotations

import os
import re

__all__ = ["latest_version", "versions"]

_INTEGER = re.compile(r"^[0-9]+$")


def versions(model_dir: str) -> list[int]:
    """The versions a server would see, oldest first."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(
        int(n)
        for n in os.listdir(model_dir)
        if _INTEGER.match(n) and os.path.isdir(os.path.join(model_dir, n))
    )


def latest_version(model_dir: str) -> str | None:
    """The folder of the newest version, or None."""
    present = versions(model_dir)
    return os.path.join(model_dir, str(present[-1])) if present else None
