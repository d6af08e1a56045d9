"""The libvirt side of the daemon: which VMs to manage, what they say, and setMemory.

A thin adapter (a collector and a controller, in MOM's terms): it turns libvirt callbacks
into the model's input events, handed to a sink (the daemon queues them), and applies
balloon targets. It knows nothing of
policy. Works with any libvirt URI (qemu:///system, qemu+ssh://host/system): one daemon
per host, each with its own connection.

Events come from libvirt's default event loop, run by one thread; they are delivered to
the sink from that thread, so the sink must only enqueue.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import libvirt
import libvirt_qemu

from autoballoon.events import BalloonActual, GuestPressure, VmRemoved

PRESSURE_EVENT = "BALLOON_GUEST_PRESSURE"
GUEST_LEVELS = ("low", "medium", "critical")


# ---- records handed to the sink ---------------------------------------------------------

@dataclass(frozen=True)
class DomainUp:
    t: float
    vm: str
    max_mib: int
    current_mib: int  # libvirt's current memory: the balloon size it last saw


@dataclass(frozen=True)
class Disconnected:
    t: float
    reason: str


# Balloon changes, guest messages and domains going away are model inputs as they are.
AdapterEvent = DomainUp | Disconnected | VmRemoved | BalloonActual | GuestPressure


@dataclass(frozen=True)
class Selector:
    """Which domains to manage: all, or those with a metadata namespace / matching a name."""

    metadata_ns: str | None = None
    name_pattern: str | None = None

    def matches(self, name: str, has_metadata: Callable[[str], bool]) -> bool:
        if self.name_pattern is not None and not re.fullmatch(self.name_pattern, name):
            return False
        return self.metadata_ns is None or has_metadata(self.metadata_ns)


def parse_guest_message(vm: str, t: float, details: str | None) -> GuestPressure | None:
    """Validate a relayed guest message; None if malformed (the guest is untrusted)."""
    try:
        data = json.loads(details or "{}")
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    level = data.get("level")
    messages = data.get("messages", 1)
    if level not in GUEST_LEVELS or not isinstance(messages, int) or messages < 1:
        return None
    return GuestPressure(t, vm, level, min(messages, 1 << 20))


class _EventLoop:
    """libvirt's default event implementation, one runner thread per process."""

    lock = threading.Lock()
    started = False

    @staticmethod
    def run() -> None:
        while True:
            libvirt.virEventRunDefaultImpl()


def ensure_event_loop() -> None:
    """Register libvirt's default event loop and run it (once per process).

    Must happen before a connection that wants events is opened.
    """
    with _EventLoop.lock:
        if not _EventLoop.started:
            libvirt.virEventRegisterDefaultImpl()
            threading.Thread(target=_EventLoop.run, name="libvirt-events", daemon=True).start()
            _EventLoop.started = True


class LibvirtAdapter:
    def __init__(self, uri: str, selector: Selector, sink: Callable[[AdapterEvent], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.uri = uri
        self.selector = selector
        self.sink = sink
        self.clock = clock
        self.conn: libvirt.virConnect | None = None
        self._callbacks: list[int] = []
        self._qemu_callback: int | None = None
        self._managed: set[str] = set()

    # -- connection -----------------------------------------------------------------------

    def connect(self) -> list[DomainUp]:
        """Open the connection, register callbacks, and report the managed domains."""
        ensure_event_loop()
        libvirt.registerErrorHandler(lambda _c, _e: None, None)
        conn = libvirt.open(self.uri)
        self.conn = conn
        conn.registerCloseCallback(self._on_close, None)
        self._callbacks = [
            conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                        self._on_lifecycle, None),
            conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
                                        self._on_balloon, None),
        ]
        self._qemu_callback = libvirt_qemu.qemuMonitorEventRegister(
            conn, None, PRESSURE_EVENT, self._on_qmp, None, 0)
        ups = [u for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
               if (u := self._domain_up(d)) is not None]
        for u in ups:
            self.sink(u)
        return ups

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            for cb in self._callbacks:
                conn.domainEventDeregisterAny(cb)
            if self._qemu_callback is not None:
                libvirt_qemu.qemuMonitorEventDeregister(conn, self._qemu_callback)
            conn.unregisterCloseCallback()
            conn.close()
        except libvirt.libvirtError:
            pass  # the daemon went away first: nothing left to release on its side
        self._callbacks, self._qemu_callback = [], None

    @property
    def connected(self) -> bool:
        return self.conn is not None and self.conn.isAlive() == 1

    # -- actions --------------------------------------------------------------------------

    def set_target(self, vm: str, target_mib: int) -> None:
        """Apply a balloon target (the guest's memory size) to a running domain."""
        assert self.conn is not None
        self.conn.lookupByName(vm).setMemoryFlags(target_mib << 10,
                                                   libvirt.VIR_DOMAIN_AFFECT_LIVE)

    def current_mib(self, vm: str) -> int:
        """libvirt's current memory of the domain: the balloon's size as libvirt last saw it
        (updated by BALLOON_CHANGE; libvirt 9.0 keeps no separate requested target)."""
        assert self.conn is not None
        return int(self.conn.lookupByName(vm).info()[2]) >> 10

    def memory_stats(self, vm: str) -> dict[str, int]:
        """memoryStats in MiB (libvirt reports KiB; counters like swap_in stay as given)."""
        assert self.conn is not None
        raw = self.conn.lookupByName(vm).memoryStats()
        kib = {"actual", "available", "unused", "usable", "rss", "disk_caches",
               "swap_in", "swap_out"}
        return {k: (int(v) >> 10 if k in kib else int(v)) for k, v in raw.items()}

    def save_auto_inflated(self, vm: str, ns: str, mib: int) -> None:
        """Keep how much automation took in the live domain's metadata (for restarts)."""
        assert self.conn is not None
        self.conn.lookupByName(vm).setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT, f'<state auto-inflated-mib="{int(mib)}"/>',
            "abd", ns, libvirt.VIR_DOMAIN_AFFECT_LIVE)

    def load_auto_inflated(self, vm: str, ns: str) -> int:
        """What save_auto_inflated stored, 0 if nothing (or anything unreadable)."""
        assert self.conn is not None
        try:
            xml = self.conn.lookupByName(vm).metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, ns)
        except libvirt.libvirtError:
            return 0
        m = re.search(r'auto-inflated-mib="(\d{1,9})"', xml)
        return int(m.group(1)) if m else 0

    # -- callbacks (libvirt's event thread) ----------------------------------------------

    def _domain_up(self, dom: libvirt.virDomain) -> DomainUp | None:
        name = dom.name()

        def has_metadata(ns: str) -> bool:
            try:
                dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, ns)
                return True
            except libvirt.libvirtError:
                return False

        if not self.selector.matches(name, has_metadata):
            return None
        _state, max_kib, cur_kib, _vcpus, _cpu = dom.info()
        self._managed.add(name)
        return DomainUp(self.clock(), name, int(max_kib) >> 10, int(cur_kib) >> 10)

    def _on_lifecycle(self, _conn: libvirt.virConnect, dom: libvirt.virDomain, event: int,
                      _detail: int, _opaque: object) -> None:
        if event == libvirt.VIR_DOMAIN_EVENT_STARTED:
            up = self._domain_up(dom)
            if up is not None:
                self.sink(up)
        elif event in (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_UNDEFINED):
            name = dom.name()
            if name in self._managed:
                self._managed.discard(name)
                self.sink(VmRemoved(self.clock(), name))

    def _on_balloon(self, _conn: libvirt.virConnect, dom: libvirt.virDomain, actual_kib: int,
                    _opaque: object) -> None:
        if dom.name() in self._managed:
            self.sink(BalloonActual(self.clock(), dom.name(), int(actual_kib) >> 10))

    def _on_qmp(self, _conn: libvirt.virConnect, dom: libvirt.virDomain, _event: str,
                _seconds: int, _micros: int, details: str, _opaque: object) -> None:
        if dom.name() not in self._managed:
            return
        msg = parse_guest_message(dom.name(), self.clock(), details)
        if msg is not None:
            self.sink(msg)

    def _on_close(self, _conn: libvirt.virConnect, reason: int, _opaque: object) -> None:
        self.conn = None
        self._callbacks, self._qemu_callback = [], None
        self._managed.clear()
        self.sink(Disconnected(self.clock(), f"libvirt closed the connection (reason {reason})"))
