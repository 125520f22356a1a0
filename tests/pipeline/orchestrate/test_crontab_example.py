"""pipeline/orchestrate/crontab.example is a crontab that cron would accept and that runs
`recsys run`.

Nothing runs it here; the checks are those cron and the shell apply: one job line of five valid
schedule fields and a command that `sh` parses, with no bare `%` (cron turns it into a newline).
"""

import re
import shlex
import subprocess

import pytest

from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "pipeline" / "orchestrate" / "crontab.example"
MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec"
DAYS = "sun mon tue wed thu fri sat"
# Field name, smallest and largest value, and the names cron accepts.
FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, tuple(MONTHS.split())),
    ("day of week", 0, 7, tuple(DAYS.split())),
)
_ITEM = re.compile(r"^(\*|(\w+)(?:-(\w+))?)(?:/(\d+))?$")


def check_schedule(fields: list[str]) -> None:
    """Raises ValueError naming the first field cron would reject."""
    if len(fields) != 5:
        raise ValueError(f"a schedule has 5 fields, not {len(fields)}")
    for text, (name, low, high, names) in zip(fields, FIELDS, strict=True):
        for item in text.split(","):
            match = _ITEM.match(item.lower())
            if not match or (match.group(4) is not None and int(match.group(4)) < 1):
                raise ValueError(f"{name}: {item!r} is not *, N, N-M or one of them /step")
            for value in filter(None, match.group(2, 3)):
                number = str(names.index(value) + low) if value in names else value
                if not number.isdigit() or not low <= int(number) <= high:
                    raise ValueError(f"{name}: {value!r} is outside {low}-{high}")


def job_lines() -> list[str]:
    """The lines that are neither comments, blank, nor environment settings."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    return [
        line
        for line in lines
        if line.strip()
        and not line.lstrip().startswith("#")
        and not re.match(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*=", line)
    ]


def test_the_example_is_one_valid_job_that_runs_recsys_run():
    (line,) = job_lines()
    *schedule, command = line.split(None, 5)
    check_schedule(schedule)
    assert re.search(r"(?<!\\)%", command) is None, "cron turns a bare % into a newline"
    syntax = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    argv = shlex.split(command)
    start = next(i for i, word in enumerate(argv) if word.endswith("/recsys"))
    assert argv[start + 1 : start + 3] == ["run", "--config"]
    assert (REPO_ROOT / argv[start + 3]).is_file(), "the example's config is in the repository"


@pytest.mark.parametrize(
    "schedule",
    [
        "60 2 * * *",
        "30 24 * * *",
        "30 2 0 * *",
        "30 2 * 13 *",
        "30 2 * * 8",
        "30 2 * *",
        "*/0 2 * * *",
        "30 2 * foo *",
    ],
)
def test_the_schedule_check_rejects_what_cron_rejects(schedule):
    with pytest.raises(ValueError):
        check_schedule(schedule.split())


def test_the_schedule_check_accepts_cron_forms():
    for schedule in ("*/15 1-5,22 * jan-mar mon-fri", "0 0 1 12 sun", "5 4 * * 7"):
        check_schedule(schedule.split())
