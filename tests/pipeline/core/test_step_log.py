"""The step's log: what this process and its children write to file descriptor 2 lands in the
file while progress goes to the console; a log that cannot be written is reported once, and no
writer ever blocks on it."""

import errno
import os
import subprocess
import sys
import threading

from pipeline.core.progress import say
from pipeline.core.step_log import stderr_to_log

# Writes `n` bytes to its stderr in blocks, then says so on stdout.
_CHILD = """
import os, sys
n = int(sys.argv[1])
for _ in range(n // 4096):
    os.write(2, b"x" * 4095 + b"\\n")
print("wrote", flush=True)
"""


def test_this_process_and_its_children_write_to_the_log_and_progress_to_the_console(
    tmp_path, capfd
):
    path = tmp_path / "logs" / "step.log"
    with stderr_to_log(str(path)) as log:
        os.write(2, b"from this process\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('from a child\\n')"])
        say("progress")
    assert log.error is None
    lines = path.read_text().splitlines()
    assert sorted(lines) == ["from a child", "from this process"]
    assert capfd.readouterr().err == "progress\n"  # the console, as before the block
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"
    assert "after" not in path.read_text()


def test_a_log_on_a_full_disk_is_reported_once_and_never_blocks_a_writer(tmp_path, capfd):
    path = tmp_path / "step.log"
    path.symlink_to("/dev/full")  # every write fails with ENOSPC
    errors = []
    seen = threading.Event()
    with stderr_to_log(str(path)) as log:
        log.notify(lambda e: (errors.append(e), seen.set()))
        # Four times what the pipe holds: a writer would block if the log were not read.
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(4 << 20)], capture_output=False, timeout=60
        )
        assert child.returncode == 0
        assert seen.wait(10)
    assert [e.errno for e in errors] == [errno.ENOSPC]
    assert errors[0] is log.error and log.error.filename == str(path)
    late = []
    log.notify(late.append)  # a listener that comes after the error hears it at once
    assert late == [log.error]
    assert "wrote" in capfd.readouterr().out
