"""Staging folders: their names, and the ones a killed run left behind, removed by the next run.

Every step builds its output in a staging folder and renames it into place; on an error or an
interrupt it deletes the folder itself. Only a process killed outright (`kill -9`, the OOM
killer, a scheduler's hard timeout) leaves one behind, and an export's is as large as the model.
The next writer removes them as soon as it holds the work directory's lock (`pipeline/lock.py`):
one writer at a time, so a staging folder that exists then belongs to no live run.

The steps name their staging folders with `staging_dir` and `version_staging`, and only folders
so named are removed, only where the steps make them:

* `<work_dir>/<step>.tmp-<8 hex>` and `<work_dir>/model/trained.tmp-<8 hex>` (Beam steps,
  training);
* `<export_base>/<model_name>/.tmp-<version>-<8 hex>` (export);
* `<model_base>/<model_name>/.tmp-push-…` and `.tmp-remove-…` (push and pruning).

Folders on object stores (`gs://…`) are left alone: there the steps write in place.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid

from pipeline.config import Config
from pipeline.progress import say

__all__ = ["staging_dir", "sweep_staging", "version_staging"]

_STEP_STAGING = re.compile(r"^[^.].*\.tmp-[0-9a-f]{8}$")
_EXPORT_STAGING = re.compile(r"^\.tmp-[0-9]+-[0-9a-f]{8}$")
_SERVING_STAGING = re.compile(r"^\.tmp-(push|remove)-[0-9]+-[0-9a-f]{8}$")


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def staging_dir(final: str) -> str:
    """A fresh staging folder beside `final`: `<final>.tmp-<8 hex>`."""
    return f"{final}.tmp-{_tag()}"


def version_staging(model_dir: str, version: int, purpose: str | None = None) -> str:
    """A fresh hidden folder in a model base for `version`, which a server ignores:
    `.tmp-<version>-<8 hex>`, or `.tmp-<purpose>-<version>-<8 hex>` (`push`, `remove`)."""
    prefix = f"{purpose}-" if purpose else ""
    return os.path.join(model_dir, f".tmp-{prefix}{version}-{_tag()}")


def _stale(folder: str, pattern: re.Pattern) -> list[str]:
    if "://" in folder or not os.path.isdir(folder):
        return []
    return [
        os.path.join(folder, name)
        for name in sorted(os.listdir(folder))
        if pattern.match(name) and os.path.isdir(os.path.join(folder, name))
    ]


def sweep_staging(config: Config) -> list[str]:
    """Deletes the staging folders of killed runs; returns their paths.

    Call it only while holding the work directory's lock.
    """
    s = config.serving
    stale = (
        _stale(config.work_dir, _STEP_STAGING)
        + _stale(config.step_dir("model"), _STEP_STAGING)
        + _stale(os.path.join(s.export_path(config.work_dir), s.model_name), _EXPORT_STAGING)
        + _stale(os.path.join(s.base_path(config.work_dir), s.model_name), _SERVING_STAGING)
    )
    for path in stale:
        say(f"removing {path}: the staging folder of a run that was killed")
        shutil.rmtree(path, ignore_errors=True)
    return stale
