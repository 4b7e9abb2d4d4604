"""What a run shows on the terminal: a progress bar per stage and the stages' INFO lines.

Dagster's default console logger prints every framework event at DEBUG, and a stack trace
for an expected gate refusal. The CLI installs ``quiet_console`` instead (``--verbose``
keeps Dagster's): it turns step events into progress and prints only what the assets
log at INFO and above. Everything still reaches the instance's event log, so the UI shows
the full run.
"""

from __future__ import annotations

import logging
from typing import Optional

from dagster import DagsterEventType, logger
from dagster._core.log_manager import LOG_RECORD_METADATA_ATTR
from tqdm import tqdm


class StageProgress:
    """A tqdm bar over a chain's stages, advanced by the quiet console's step events."""

    def __init__(self, total: int) -> None:
        self.bar = tqdm(total=total, desc="t2g", unit="stage")

    def started(self, stage: str) -> None:
        self.bar.set_postfix_str(f"{stage} running")

    def finished(self, stage: str, ok: bool) -> None:
        self.bar.set_postfix_str(f"{stage} {'ok' if ok else 'FAILED'}")
        self.bar.update(1)

    def write(self, line: str) -> None:
        self.bar.write(line)

    def close(self) -> None:
        self.bar.close()


#: The progress of the chain being run (set by the CLI around its runs).
current: Optional[StageProgress] = None


def _write(line: str) -> None:
    if current is not None:
        current.write(line)
    else:
        tqdm.write(line)


class _QuietHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, LOG_RECORD_METADATA_ATTR, None)
        if meta is None:
            return
        event = meta.get("dagster_event")
        stage = meta.get("step_key") or "run"
        if event is None:
            if meta["orig_message"].startswith("Dependencies for step"):
                return  # a skipped step: the CLI names the stage that stopped the run
            if record.levelno >= logging.INFO:
                level = "" if record.levelno == logging.INFO else f"{record.levelname}: "
                _write(f"[{stage}] {level}{meta['orig_message']}")
            return
        if current is None:
            return
        if event.event_type == DagsterEventType.STEP_START:
            current.started(stage)
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            current.finished(stage, True)
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            current.finished(stage, False)


@logger(description="Progress per stage and the stages' INFO lines; no framework DEBUG events.")
def quiet_console(_init_context) -> logging.Logger:
    log = logging.Logger("t2g", level=logging.DEBUG)
    log.addHandler(_QuietHandler())
    return log
