"""Helper processes never outlive the process that started them, even when it is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

SPAWNER = textwrap.dedent(
    """
    import os, sys, time
    from pipeline.devkit.embedded_services import spawn_child
    child = spawn_child([sys.executable, "-c", "import time; time.sleep(120)"], env=dict(os.environ), log=None)
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:  # a zombie awaiting its reaper is gone too
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="parent-death signals are Linux's")
def test_a_spawned_child_dies_when_its_parent_is_killed() -> None:
    spawner = subprocess.Popen([sys.executable, "-c", SPAWNER], stdout=subprocess.PIPE, text=True)
    assert spawner.stdout is not None
    child = int(spawner.stdout.readline())
    assert _alive(child)
    spawner.send_signal(signal.SIGKILL)
    spawner.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
