"""QMP events of our domains, received through libvirt (qemuMonitorEventRegister).

libvirt hands every QMP event, known to it or not, to these listeners without tainting
the domain. Events are queued (bounded: a flooding guest cannot grow our memory) and
read with a deadline, so tests wait on events, never on sleeps.
"""

from __future__ import annotations

import json
import queue
from dataclasses import dataclass
from typing import Any

import libvirt
import libvirt_qemu
from autoballoon.libvirt_adapter import ensure_event_loop

from rig.errors import RigError

QUEUE_BOUND = 10_000


@dataclass(frozen=True)
class QmpEvent:
    domain: str
    event: str
    timestamp: float  # host wall clock, from QEMU's event timestamp
    data: dict[str, Any]


def decode_details(details: str | dict[str, Any] | None) -> dict[str, Any]:
    """libvirt passes the event's "data" member as JSON text (or nothing)."""
    if details is None or details == "":
        return {}
    if isinstance(details, dict):
        return details
    value = json.loads(details)
    return value if isinstance(value, dict) else {"value": value}


class EventWatcher:
    """Collects QMP events named `event` (None: all) from every domain, or from one."""

    def __init__(self, uri: str, event: str | None, domain: str | None = None) -> None:
        ensure_event_loop()  # must precede opening the connection
        self.dropped = 0
        self._queue: queue.Queue[QmpEvent] = queue.Queue(QUEUE_BOUND)
        self._conn = libvirt.open(uri)
        dom = None
        if domain is not None:
            try:
                dom = self._conn.lookupByName(domain)
            except libvirt.libvirtError as e:
                self._conn.close()
                raise RigError(f"no domain {domain}: {e}") from e
        self._id = libvirt_qemu.qemuMonitorEventRegister(
            self._conn, dom, event, self._callback, None, 0)

    def _callback(self, _conn: libvirt.virConnect, dom: libvirt.virDomain, event: str,
                  seconds: int, micros: int, details: str, _opaque: object) -> None:
        ev = QmpEvent(dom.name(), event, seconds + micros / 1e6, decode_details(details))
        try:
            self._queue.put_nowait(ev)
        except queue.Full:
            self.dropped += 1

    def get(self, timeout_s: float) -> QmpEvent | None:
        """The next event, or None if none arrives within the deadline."""
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def drain(self) -> list[QmpEvent]:
        out: list[QmpEvent] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        try:
            libvirt_qemu.qemuMonitorEventDeregister(self._conn, self._id)
        finally:
            self._conn.close()

    def __enter__(self) -> EventWatcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
