"""Staging folders: their names, and the ones a killed run left behind, removed by the next run.

Every step builds its output in a staging folder and renames it into place; on an error or an
interrupt it deletes the folder itself. Only a process killed outright (`kill -9`, the OOM
killer, a scheduler's hard timeout) leaves one behind, and an export's is as large as the model.
The next writer removes them as soon as it holds the work directory's lock
(`pipeline/core/lock.py`): one writer at a time, so a staging folder that exists then belongs to no
live run.

The steps name their staging folders with `staging_dir` and `version_staging`, and only folders
so named are removed, only where the steps make them:

* `<work_dir>/<step>.tmp-<8 hex>` and `<work_dir>/model/trained.tmp-<8 hex>` (Beam steps,
  training);
* `<export_base>/<model_name>/.tmp-<version>-<8 hex>` (export);
* `<model_base>/<model_name>/.tmp-push-…` and `.tmp-remove-…` (push and pruning).

`publish_dir` (`pipeline/core/manifest.py`) moves a step's previous result aside as
`<step>.old-<8 hex>` (`old_result_dir`) before it renames the staging folder into place. A kill
between the two renames leaves that folder and no `<step>`: it is then the only copy of the
published result, so the sweep renames it back; beside an existing `<step>` it is deleted.

Folders on object stores (`gs://…`) are left alone: there the steps write in place.

What the steps move or delete must be theirs: `check_inside` refuses a target that resolves
(symbolic links and `..` followed) to anywhere but inside the folder that owns it, e.g. a model
folder `<model_base>/..`.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid

from pipeline.core.beam_worker import kill_leftover_workers
from pipeline.core.config import Config
from pipeline.core.errors import DataError
from pipeline.core.progress import say

__all__ = [
    "check_inside",
    "model_folder",
    "old_result_dir",
    "staging_dir",
    "sweep_staging",
    "version_staging",
]

_STEP_STAGING = re.compile(r"^[^.].*\.tmp-[0-9a-f]{8}$")
_EXPORT_STAGING = re.compile(r"^\.tmp-[0-9]+-[0-9a-f]{8}$")
_SERVING_STAGING = re.compile(r"^\.tmp-(push|remove)-[0-9]+-[0-9a-f]{8}$")
_OLD_RESULT = re.compile(r"^([^.].*)\.old-[0-9a-f]{8}$")  # group 1: the published folder's name


def check_inside(path: str, folder: str) -> str:
    """Returns `path` if it resolves to somewhere strictly inside `folder` (both resolved:
    symbolic links and `..` followed); raises DataError otherwise.

    Called before a step moves or deletes `path`, with the folder it owns as `folder`.
    """
    real, root = os.path.realpath(path), os.path.realpath(folder)
    if real == root or os.path.commonpath([real, root]) != root:
        raise DataError(
            f"refusing to move or delete {path!r}: it resolves to {real!r}, which is not "
            f"inside {folder!r}"
        )
    return path


def model_folder(base: str, name: str) -> str:
    """`<base>/<name>`, the folder of one model's versions, checked to be inside `base`."""
    return check_inside(os.path.join(base, name), base)


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def staging_dir(final: str) -> str:
    """A fresh staging folder beside `final`: `<final>.tmp-<8 hex>`."""
    return f"{final}.tmp-{_tag()}"


def old_result_dir(final: str) -> str:
    """A fresh name beside `final` for its previous content while the new one is renamed into
    place: `<final>.old-<8 hex>`."""
    return f"{final}.old-{_tag()}"


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


def _settle_old_results(folder: str) -> list[str]:
    """Renames each `<name>.old-<8 hex>` in `folder` back to `<name>` where `<name>` is missing
    (a kill between `publish_dir`'s two renames); returns the others, whose `<name>` exists."""
    stale = []
    for path in _stale(folder, _OLD_RESULT):
        final = os.path.join(folder, _OLD_RESULT.match(os.path.basename(path)).group(1))
        if os.path.lexists(final):
            stale.append(path)
        else:
            say(f"restoring {final} from {path}: a run was killed while it replaced it")
            os.rename(path, final)
    return stale


def sweep_staging(config: Config) -> list[str]:
    """Deletes the staging folders of killed runs, and the previous results they had moved
    aside; returns their paths. A previous result whose folder is missing is renamed back.

    Call it only while holding the work directory's lock. It first kills the Beam workers that
    outlived a killed run of the work directory (`beam_worker.kill_leftover_workers`).

    Raises:
      DataError: a model folder resolves to somewhere outside its base (`check_inside`).
    """
    kill_leftover_workers(config.work_dir)
    s = config.serving
    exports, served = s.export_path(config.work_dir), s.base_path(config.work_dir)
    stale = (
        _stale(config.work_dir, _STEP_STAGING)
        + _stale(config.step_dir("model"), _STEP_STAGING)
        + _stale(model_folder(exports, s.model_name), _EXPORT_STAGING)
        + _stale(model_folder(served, s.model_name), _SERVING_STAGING)
    )
    for path in stale:
        say(f"removing {path}: the staging folder of a run that was killed")
        shutil.rmtree(path, ignore_errors=True)
    # publish_dir runs only in these two folders (Beam steps, training)
    old = _settle_old_results(config.work_dir) + _settle_old_results(config.step_dir("model"))
    for path in old:
        say(f"removing {path}: the previous result that a killed run had moved aside")
        shutil.rmtree(path, ignore_errors=True)
    return stale + old
