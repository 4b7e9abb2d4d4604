"""Signals a process passes on ignored, put back to their defaults.

A process started with SIGINT ignored (a background job of a shell without job control, a
process started from one) passes the ignore on to everything it starts, and Dagster maps
SIGTERM to SIGINT's handler (``setup_interrupt_handlers``), so SIGTERM ends up ignored too.
Dagster stops each step's compute-log ``tail`` processes (stdout, stderr) with SIGTERM and waits
30 s for each: with SIGTERM ignored, every step on a Dask worker took up to 60 s longer and left
its ``tail`` running (the two-worker chain test: 256 s instead of 15 s after a full test
suite), and ``dagster dev`` outlived SIGTERM. Dask workers (``dask_executor.DefaultSignals``) and the ``dagster dev``
the tests start (``t2g_cli.ui``) put both back to their defaults.
"""

from __future__ import annotations

import signal
import threading

_DEFAULTS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}


def restore_ignored_signals() -> list[signal.Signals]:
    """SIGINT and SIGTERM back to Python's defaults where they are ignored; the signals
    restored. Only the main thread may set handlers; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return []
    restored = [sig for sig in _DEFAULTS if signal.getsignal(sig) == signal.SIG_IGN]
    for sig in restored:
        signal.signal(sig, _DEFAULTS[sig])
    return restored
