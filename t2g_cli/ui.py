"""``dagster dev`` on loopback for a while: for the UI test and the screenshot script."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from t2g_assets.signals import restore_ignored_signals


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dagster_dev(root: Path, env: dict[str, str], timeout: int = 300) -> Iterator[tuple[int, subprocess.Popen]]:
    """The project's workspace served by ``dagster dev`` on a free loopback port, yielded
    (port, process) once it answers; afterwards its whole process group is stopped.

    The group holds the webserver, daemon, code server and any run the sensors launched; it
    starts with SIGINT and SIGTERM at their defaults even where this process ignores them
    (``t2g_assets.signals``), so SIGTERM stops it. Should it not, the group is killed after
    60 s and no process is left behind.
    """
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=restore_ignored_signals,
    )
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("dagster dev exited before it served the UI") from None
                if time.time() > deadline:
                    raise RuntimeError(f"dagster dev did not come up in {timeout} s") from None
                time.sleep(2)
        yield port, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
