"""The host pressure collector thread: a PressureSource's events into the daemon's queue.

If the source's cgroup goes away (the pressure source raises), the loss is written to the
timeline and logged, and the source is reopened every 2 s until it is back or the daemon
stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from autoballoon.events import HostPressure
from autoballoon.pressure import PressureSource, PressureSourceError
from autoballoon.pressure_config import PressureConfig
from autoballoon.timeline import Timeline

log = logging.getLogger("autoballoond")
REOPEN_S = 2.0


def start(config: PressureConfig, clock: Callable[[], float], put: Callable[[object], None],
          timeline: Timeline, stopping: threading.Event) -> PressureSource:
    """Open the source and feed it from a thread; close the returned source to stop."""
    source = PressureSource(config, clock).open()
    threading.Thread(target=_feed, args=(source, put, timeline, stopping),
                     name="host-pressure", daemon=True).start()
    log.info("host pressure from %s", source.source)
    return source


def _feed(source: PressureSource, put: Callable[[object], None], timeline: Timeline,
          stopping: threading.Event) -> None:
    while not stopping.is_set():
        try:
            source.run(lambda e: put(HostPressure(e.t, e.level)))  # type: ignore[arg-type]
            return  # stopped
        except PressureSourceError as e:
            timeline.write("pressure", state="lost", error=str(e))
            log.warning("host pressure source lost, reopening: %s", e)
            while not stopping.wait(REOPEN_S):
                try:
                    source.open()
                    timeline.write("pressure", state="reopened")
                    log.info("host pressure source reopened")
                    break
                except (PressureSourceError, OSError):
                    continue


__all__ = ["start"]
