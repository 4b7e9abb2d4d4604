"""Shared fixtures: the Lahman dataset is built once per test session (about 20 s)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def lahman_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly built Lahman dataset folder (with its two tasks), shared by all tests."""
    from t2g_lib.data.lahman import build_lahman

    return build_lahman(tmp_path_factory.mktemp("lahman"))


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread: on a 2-core machine small graphs train many times faster that way."""
    import os

    import torch

    os.environ.setdefault("T2G_NUM_THREADS", "1")
    torch.set_num_threads(1)


@pytest.fixture()
def signals_ignored():
    """SIGINT and SIGTERM ignored in this process for the test, as in a process started in
    the background by a shell without job control: what it starts inherits the ignore."""
    import signal

    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
