"""Shared by the serving tests: a known umask (the exported tiny recommender they test is
`exported`, in tests/conftest.py)."""

import os
import stat

import pytest

UMASK = 0o027  # not the usual 022, so a mode that merely happens to be 644 does not pass


@pytest.fixture
def umask():
    """Runs the test under `UMASK` (restored after): new files are 0o640, folders 0o750."""
    old = os.umask(UMASK)
    yield UMASK
    os.umask(old)


def modes_under(folder) -> dict[str, int]:
    """Relative path → permission bits of `folder` ("."), everything below it."""
    modes = {".": stat.S_IMODE(os.stat(folder).st_mode)}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            modes[os.path.relpath(path, folder)] = stat.S_IMODE(os.stat(path).st_mode)
    return modes
