"""Versions in a TF Serving model base: push a SavedModel as the next version, keep the newest N,
roll back to the previous one.

TF Serving serves the integer-named folders of `<model_base>/<name>/` (the newest
`serving.keep_versions` of them, by `models.config`) and ignores every other name, so:

* **push** copies the SavedModel into a hidden sibling (`.tmp-push-…`) and renames it to the
  next integer: a watching server sees the whole version or nothing. Versions beyond the newest
  `keep` are then removed, oldest first (**prune**: each is renamed to a hidden name before it
  is deleted, so a server never sees a version with part of its files gone).
* **rollback** renames the newest version into `.rolled-back/`, so the previous one is the
  newest again; the server unloads the bad one. Numbers are never reused: the next push gets a
  number above every version ever pushed, rolled back ones included, so a server never sees a
  version number change content.

A pushed version is a fresh copy: its files and folders get the modes the umask gives new ones
(normally 644 and 755), not the source's, so a server running as another user can read it.
Before anything is moved or deleted, the model folder must resolve to a folder inside the base
it names (`<base>/<name>`: not `<base>/..`, not a link to elsewhere) and each version folder to
one inside the model folder (`pipeline.core.staging.check_inside`).

Listing the versions (`versions`, `latest_version`) is `pipeline.core.version_dirs`'s, which
evaluation reads too; they are re-exported here with the rest of the version folders' API.
"""

from __future__ import annotations

import os
import shutil
import time

from pipeline.core.errors import DataError
from pipeline.core.staging import check_inside, version_staging
from pipeline.core.version_dirs import latest_version, versions

__all__ = [
    "ROLLED_BACK",
    "latest_version",
    "next_version",
    "prune_versions",
    "push_version",
    "rollback",
    "versions",
]

ROLLED_BACK = ".rolled-back"


def _used_numbers(model_dir: str) -> list[int]:
    retired = os.path.join(model_dir, ROLLED_BACK)
    rolled = []
    if os.path.isdir(retired):
        rolled = [int(n.split("-")[0]) for n in os.listdir(retired) if n.split("-")[0].isdigit()]
    return versions(model_dir) + rolled


def next_version(model_dir: str) -> int:
    """A number above every version ever placed in `model_dir`, rolled back ones included."""
    return max(_used_numbers(model_dir), default=0) + 1


def _owned(model_dir: str) -> str:
    """`model_dir` if it resolves to a folder inside the base it names (`<base>/<name>`)."""
    return check_inside(model_dir, os.path.dirname(model_dir.rstrip(os.sep)) or os.curdir)


def _copy_fresh(source: str, target: str) -> None:
    """Copies a folder as if its files were written anew: modes come from the umask, not from
    the source (whose files an older release wrote readable by their owner only)."""
    os.mkdir(target)
    for entry in os.scandir(source):
        path = os.path.join(target, entry.name)
        if entry.is_dir():
            _copy_fresh(entry.path, path)
        else:
            shutil.copyfile(entry.path, path)


def push_version(saved_model_dir: str, model_dir: str, keep: int) -> int:
    """Copies a SavedModel into `model_dir` as the next version; keeps the newest `keep`.

    Returns:
      The new version number.

    Raises:
      DataError: `saved_model_dir` holds no SavedModel, `keep` < 1, or `model_dir` resolves to
        somewhere outside its parent folder.
    """
    if not os.path.exists(os.path.join(saved_model_dir, "saved_model.pb")):
        raise DataError(f"{saved_model_dir!r} holds no saved_model.pb: nothing to push")
    if keep < 1:
        raise DataError(f"keep must be at least 1 (got {keep})")
    _owned(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    version = next_version(model_dir)
    staging = version_staging(model_dir, version, "push")
    try:
        _copy_fresh(saved_model_dir, staging)
        os.rename(staging, os.path.join(model_dir, str(version)))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    prune_versions(model_dir, keep)
    return version


def prune_versions(model_dir: str, keep: int) -> list[int]:
    """Removes every version but the newest `keep`, oldest first, and returns their numbers.

    Each is renamed to a hidden name, which a server ignores, and then deleted. The numbers of
    the kept versions stay above the removed ones, so `next_version` never reuses one.

    Raises:
      DataError: `keep` < 1, or `model_dir` or a version to remove resolves to somewhere
        outside the folder that holds it (nothing is removed then).
    """
    if keep < 1:
        raise DataError(f"keep must be at least 1 (got {keep})")
    _owned(model_dir)
    removed = versions(model_dir)[:-keep]
    folders = [check_inside(os.path.join(model_dir, str(old)), model_dir) for old in removed]
    for old, folder in zip(removed, folders, strict=True):
        hidden = version_staging(model_dir, old, "remove")
        os.rename(folder, hidden)
        shutil.rmtree(hidden, ignore_errors=True)
    return removed


def rollback(model_dir: str) -> tuple[int, int]:
    """Makes the previous version the newest again.

    Returns:
      (the version rolled back, the version now served).

    Raises:
      DataError: fewer than two versions are present, or `model_dir` or its newest version
        resolves to somewhere outside the folder that holds it.
    """
    _owned(model_dir)
    present = versions(model_dir)
    if len(present) < 2:
        raise DataError(
            f"{model_dir!r} has {len(present)} version(s): rollback needs a previous version "
            "to return to"
        )
    current = present[-1]
    folder = check_inside(os.path.join(model_dir, str(current)), model_dir)
    retired = check_inside(os.path.join(model_dir, ROLLED_BACK), model_dir)
    os.makedirs(retired, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    os.rename(folder, os.path.join(retired, f"{current}-{stamp}"))
    return current, present[-2]
