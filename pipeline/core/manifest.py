"""Step manifests: atomic JSON writes and input fingerprints.

Files written here are created like any new file, with the umask's mode (normally 644): a TF
Serving process running as another user reads the deployment files and the versions' manifests.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from typing import Any

from apache_beam.io.filesystems import FileSystems

from pipeline.core.staging import old_result_dir

__all__ = [
    "code_version",
    "file_sha256",
    "fingerprint_files",
    "publish_dir",
    "read_json",
    "temp_path_beside",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

_HASH_LIMIT = 4 << 30  # local files up to 4 GiB get a content hash; larger ones size + mtime


def code_version() -> str:
    """The installed distribution's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("recsys-pipeline")
    except PackageNotFoundError:
        return "unknown"


def temp_path_beside(path: str) -> str:
    """A fresh hidden name in the folder of `path`, for a file to be renamed over it."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Writes a file so a reader sees the old content or the new, never a partial file.

    Local paths are written to a temporary file in the same folder and renamed; object stores
    (gs://, s3://) write whole objects, which is atomic there. The file gets the mode of a new
    file (0o666 less the umask), whatever the old one had.
    """
    if "://" in path:
        with FileSystems.create(path) as f:
            f.write(data)
        return
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = temp_path_beside(path)
    # Not tempfile.mkstemp: its files are 0o600, which a server running as another user
    # cannot read.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    """`write_bytes_atomic` for UTF-8 text."""
    write_bytes_atomic(path, text.encode("utf-8"))


def publish_dir(staging: str, final: str) -> None:
    """Replaces the local folder `final` by `staging`: each rename is atomic, so a reader finds
    the old complete folder or the new complete one, never a mix."""
    old = None
    if os.path.exists(final):
        old = old_result_dir(final)
        os.rename(final, old)
    os.rename(staging, final)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def write_json_atomic(path: str, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: str) -> Any:
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))


def file_sha256(path: str) -> str:
    """The SHA-256 of a local file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_files(paths: list[str]) -> list[dict[str, Any]]:
    """Path, size, modification time and (local files) SHA-256 of each input file."""
    out = []
    for path in paths:
        meta = FileSystems.match([path])[0].metadata_list[0]
        entry: dict[str, Any] = {
            "path": meta.path,
            "size": meta.size_in_bytes,
            "mtime": meta.last_updated_in_seconds,
        }
        if "://" not in path and meta.size_in_bytes <= _HASH_LIMIT:
            entry["sha256"] = file_sha256(path)
        out.append(entry)
    return out
