"""Helper processes never outlive the process that started them, even when it is killed outright."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from pipeline.devkit.embedded_services import ServiceError, free_port, wait_for_port

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


def test_waiting_for_a_port_returns_once_it_listens() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        wait_for_port(server.getsockname()[1], 5.0)


def test_waiting_for_a_port_nothing_listens_on_gives_up_at_the_deadline() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(ServiceError, match=rf"^nothing listens on 127\.0\.0\.1:{port} after 0s$"):
        wait_for_port(port, 0.3)
    assert 0.3 <= time.monotonic() - started < 3


def test_waiting_for_a_port_stops_when_the_process_exits() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(ServiceError, match=r"process exited with code 3 before listening on"):
        wait_for_port(free_port(), 30.0, process)
