"""The libvirt side of the daemon: which VMs to manage, what they say, and setMemory.

A thin adapter (a collector and a controller, in MOM's terms) satisfying
``autoballoon.adapter.Adapter`` (its threading contract is there): it turns libvirt
callbacks into the model's input events, handed to a sink (the daemon queues them),
applies balloon targets and polls every domain's balloon figures in one call
(``domain_stats``: libvirt's getAllDomainStats, not one memoryStats per domain). It knows
nothing of policy. Works with any libvirt URI
(qemu:///system, qemu+ssh://host/system): one daemon per host, each with its own connection.

Events come from libvirt's default event loop, run by one thread; they are delivered to
the sink from that thread, so the sink must only enqueue. Callbacks of any connection but
the current one are ignored, and the close callback only reports: the decision loop drops
the connection (``close``) when it handles the report.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import libvirt
import libvirt_qemu

from autoballoon.adapter import (
    AdapterError,
    AdapterEvent,
    Disconnected,
    DomainRef,
    DomainStats,
    DomainUp,
)
from autoballoon.events import BalloonActual, GuestPressure, VmRemoved
from autoballoon.qemu_rss import parse_pid, pid_file
from autoballoon.saved_state import (
    STATE_NS,
    STATE_PREFIX,
    SavedState,
    StateError,
    parse_state,
    to_xml,
)

PRESSURE_EVENT = "BALLOON_GUEST_PRESSURE"
GUEST_LEVELS = ("low", "medium", "critical")
KIB_STATS = frozenset({"actual", "available", "unused", "usable", "rss", "disk_caches",
                       "swap_in", "swap_out"})
#: getAllDomainStats' balloon group under memoryStats' names: "balloon.<name>", but for
#: these two; balloon.maximum (the domain's maximum, known from DomainUp) is not a stat.
BULK_NAMES = {"current": "actual", "last-update": "last_update"}
BULK_PREFIX = "balloon."
_BULK_KEYS = {f"{BULK_PREFIX}{name}": BULK_NAMES.get(name, name) for name in (
    "current", "swap_in", "swap_out", "major_fault", "minor_fault", "unused", "available",
    "rss", "usable", "last-update", "disk_caches", "hugetlb_pgalloc", "hugetlb_pgfail")}
#: What getAllDomainStats reports of a domain without asking its guest (all it gives
#: with NOWAIT while another call holds the domain's job, e.g. a hung setMemory).
BULK_WITHOUT_GUEST = frozenset({"balloon.current", "balloon.maximum"})
#: Don't wait for a domain's job (libvirt >= 4.5): a busy monitor is left out.
STATS_NOWAIT = getattr(libvirt, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT", 0)

log = logging.getLogger("autoballoond")
T = TypeVar("T")


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


def memory_stats_mib(raw: Mapping[str, Any]) -> dict[str, int]:
    """memoryStats (KiB) in MiB; counters (major_fault, minor_fault, last_update...)
    stay as given."""
    return {k: (int(v) >> 10 if k in KIB_STATS else int(v)) for k, v in raw.items()}


def bulk_memory_stats(record: Mapping[str, Any]) -> dict[str, int]:
    """One domain's record of getAllDomainStats(VIR_DOMAIN_STATS_BALLOON) as memoryStats
    would have given it: the same names (``balloon.current`` is memoryStats' ``actual``,
    ``balloon.last-update`` its ``last_update``) and the same units (MiB). Empty when
    libvirt did not ask the guest (only ``balloon.current`` and ``balloon.maximum``: its
    monitor was busy), as memoryStats, stuck behind that monitor, gave none."""
    if record.keys() <= BULK_WITHOUT_GUEST:
        return {}
    out: dict[str, int] = {}
    for key, value in record.items():
        name = _BULK_KEYS.get(key)
        if name is None:  # a field this adapter does not know (a newer libvirt's)
            name = key.removeprefix(BULK_PREFIX)
            if name == key or name == "maximum":
                continue
        out[name] = int(value) >> 10 if name in KIB_STATS else int(value)
    return out


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
                 clock: Callable[[], float] = time.monotonic, state_ns: str = STATE_NS) -> None:
        self.uri = uri
        self.selector = selector
        self.sink = sink
        self.clock = clock
        self.state_ns = state_ns
        # Set and dropped by the decision loop only (connect, close); workers read it.
        self.conn: libvirt.virConnect | None = None
        self._events_from: libvirt.virConnect | None = None  # whose callbacks count
        self._callbacks: list[int] = []
        self._qemu_callback: int | None = None
        self._close_callback = False
        self._lock = threading.Lock()  # _managed: libvirt's event thread and the loop
        self._managed: set[str] = set()

    # -- connection (the decision loop) ---------------------------------------------------

    def connect(self) -> list[DomainUp]:
        """Open the connection, register callbacks, and report the managed domains.

        Callbacks come first and the listing second, so no domain starting in between is
        missed (one reported twice is one VM to the daemon). On any failure everything
        registered so far is released and the connection closed: nothing keeps sending.
        """
        self.close()
        ensure_event_loop()
        libvirt.registerErrorHandler(lambda _c, _e: None, None)
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as e:
            raise AdapterError(f"cannot connect to {self.uri}: {e}") from None
        self.conn = self._events_from = conn
        try:
            conn.registerCloseCallback(self._on_close, None)
            self._close_callback = True
            for event_id, cb in ((libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle),
                                 (libvirt.VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE, self._on_balloon)):
                self._callbacks.append(conn.domainEventRegisterAny(None, event_id, cb, None))
            self._qemu_callback = libvirt_qemu.qemuMonitorEventRegister(
                conn, None, PRESSURE_EVENT, self._on_qmp, None, 0)
            domains = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        except libvirt.libvirtError as e:
            self.close()
            raise AdapterError(f"cannot connect to {self.uri}: {e}") from None
        ups = [u for d in domains if (u := self._domain_up(d)) is not None]
        for u in ups:
            self.sink(u)
        return ups

    def close(self) -> None:
        conn, self.conn, self._events_from = self.conn, None, None
        callbacks, self._callbacks = self._callbacks, []
        qemu_callback, self._qemu_callback = self._qemu_callback, None
        close_callback, self._close_callback = self._close_callback, False
        with self._lock:
            self._managed.clear()
        if conn is None:
            return
        # Each release on its own: libvirtd may be gone already, and one failure must not
        # leave the others registered.
        releases: list[Callable[[], object]] = [
            (lambda cb=cb: conn.domainEventDeregisterAny(cb)) for cb in callbacks]
        if qemu_callback is not None:
            releases.append(lambda: libvirt_qemu.qemuMonitorEventDeregister(conn, qemu_callback))
        if close_callback:
            releases.append(conn.unregisterCloseCallback)
        releases.append(conn.close)
        for release in releases:
            with contextlib.suppress(libvirt.libvirtError):  # libvirtd's side is gone
                release()

    def alive(self) -> bool:
        conn = self.conn
        try:
            return conn is not None and conn.isAlive() == 1
        except libvirt.libvirtError:
            return False

    # -- actions (a VM's worker) ----------------------------------------------------------

    def _call(self, ref: DomainRef, what: str, action: Callable[[libvirt.virDomain], T]) -> T:
        """``action`` on that boot of the domain; every failure is an AdapterError."""
        conn = self.conn
        if conn is None:
            raise AdapterError(f"{what} of {ref.name}: not connected to libvirt")
        try:
            dom = conn.lookupByUUIDString(ref.uuid)
            domid = dom.ID()
            if domid != ref.domid:
                raise AdapterError(f"{what} of {ref.name}: the domain has restarted "
                                   f"(id {domid}, not {ref.domid})")
            return action(dom)
        except libvirt.libvirtError as e:
            raise AdapterError(f"{what} of {ref.name}: {e}") from None

    def set_target(self, ref: DomainRef, target_mib: int) -> None:
        """Apply a balloon target (the guest's memory size) to a running domain."""
        self._call(ref, "setMemory", lambda d: d.setMemoryFlags(
            target_mib << 10, libvirt.VIR_DOMAIN_AFFECT_LIVE))

    def set_stats_period(self, ref: DomainRef, period_s: int) -> None:
        """The period the guest refreshes its balloon stats at, on the running domain only
        (its persistent definition is the operator's)."""
        self._call(ref, "setMemoryStatsPeriod", lambda d: d.setMemoryStatsPeriod(
            period_s, libvirt.VIR_DOMAIN_AFFECT_LIVE))

    def current_mib(self, ref: DomainRef) -> int:
        """libvirt's current memory of the domain: the balloon's size as libvirt last saw it
        (updated by BALLOON_CHANGE; libvirt 9.0 keeps no separate requested target)."""
        return self._call(ref, "info", lambda d: int(d.info()[2]) >> 10)

    def memory_stats(self, ref: DomainRef) -> dict[str, int]:
        """One domain's memoryStats in MiB (``memory_stats_mib``); the daemon polls
        ``domain_stats`` instead, which gives the same names and units for all at once."""
        raw: dict[str, Any] = self._call(ref, "memoryStats", lambda d: d.memoryStats())
        return memory_stats_mib(raw)

    def domain_stats(self, refs: Sequence[DomainRef]) -> dict[DomainRef, DomainStats]:
        """Every running domain's balloon figures in one call (getAllDomainStats, NOWAIT:
        a domain whose monitor is busy gets no stats instead of stalling the others),
        kept for those boots of the domains ``refs`` names. No target: libvirt's QEMU
        driver keeps no balloon target. Its current memory (info, the XML's
        currentMemory, balloon.current) is overwritten by every BALLOON_CHANGE, i.e. it is
        the balloon's size, which the guest writes: taking it for a target would let a
        guest make its VM manual (host/README.md, "Trust model")."""
        conn = self.conn
        if conn is None:
            raise AdapterError("domain stats: not connected to libvirt")
        wanted = {(r.uuid, r.domid): r for r in refs}
        try:
            records = conn.getAllDomainStats(
                libvirt.VIR_DOMAIN_STATS_BALLOON,
                libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE | STATS_NOWAIT)
            # UUIDString and ID read the domain object: no round trip per domain
            found = [(ref, record) for dom, record in records
                     if (ref := wanted.get((dom.UUIDString(), dom.ID()))) is not None]
        except libvirt.libvirtError as e:
            raise AdapterError(f"domain stats: {e}") from None
        return {ref: DomainStats(bulk_memory_stats(record)) for ref, record in found}

    def save_state(self, ref: DomainRef, state: SavedState) -> None:
        """Keep the VM's automation state in the live domain's metadata (for restarts)."""
        self._call(ref, "setMetadata", lambda d: d.setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT, to_xml(state), STATE_PREFIX, self.state_ns,
            libvirt.VIR_DOMAIN_AFFECT_LIVE))

    def qemu_pid(self, ref: DomainRef) -> int | None:
        """The QEMU pid from the pid file libvirt writes for a local URI (qemu_rss.py)."""
        path = pid_file(self.uri, ref.name, os.environ)
        if path is None:
            return None
        try:
            return parse_pid(path.read_text(errors="replace"))
        except OSError as e:
            log.debug("%s: no QEMU pid: %s", ref.name, e)
            return None

    # -- domains (the loop at connect, libvirt's event thread after) ----------------------

    @staticmethod
    def _metadata(dom: libvirt.virDomain, ns: str) -> str | None:
        try:
            return str(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, ns))
        except libvirt.libvirtError:
            return None  # no element in that namespace

    def _domain_up(self, dom: libvirt.virDomain) -> DomainUp | None:
        try:
            name = dom.name()
            if not self.selector.matches(name, lambda ns: self._metadata(dom, ns) is not None):
                return None
            _state, max_kib, cur_kib, _vcpus, _cpu = dom.info()
            uuid, domid = dom.UUIDString(), dom.ID()
            xml = self._metadata(dom, self.state_ns)
        except libvirt.libvirtError as e:
            log.info("a domain could not be inspected (it may have stopped): %s", e)
            return None
        saved = None
        if xml is not None:
            try:
                saved = parse_state(xml)
            except StateError as e:
                log.warning("%s: ignoring the autoballoon state in its metadata: %s", name, e)
        with self._lock:
            self._managed.add(name)
        return DomainUp(self.clock(), name, int(max_kib) >> 10, int(cur_kib) >> 10, uuid,
                        domid, saved)

    def _is_managed(self, conn: libvirt.virConnect, name: str) -> bool:
        with self._lock:
            return conn is self._events_from and name in self._managed

    # -- callbacks (libvirt's event thread: report only) ---------------------------------

    def _on_lifecycle(self, conn: libvirt.virConnect, dom: libvirt.virDomain, event: int,
                      _detail: int, _opaque: object) -> None:
        if conn is not self._events_from:
            return  # a connection being dropped
        if event == libvirt.VIR_DOMAIN_EVENT_STARTED:
            up = self._domain_up(dom)
            if up is not None:
                self.sink(up)
        elif event in (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_UNDEFINED):
            name = dom.name()
            with self._lock:
                managed = name in self._managed
                self._managed.discard(name)
            if managed:
                self.sink(VmRemoved(self.clock(), name))

    def _on_balloon(self, conn: libvirt.virConnect, dom: libvirt.virDomain, actual_kib: int,
                    _opaque: object) -> None:
        if self._is_managed(conn, dom.name()):
            self.sink(BalloonActual(self.clock(), dom.name(), int(actual_kib) >> 10))

    def _on_qmp(self, conn: libvirt.virConnect, dom: libvirt.virDomain, _event: str,
                _seconds: int, _micros: int, details: str, _opaque: object) -> None:
        if not self._is_managed(conn, dom.name()):
            return
        msg = parse_guest_message(dom.name(), self.clock(), details)
        if msg is not None:
            self.sink(msg)

    def _on_close(self, conn: libvirt.virConnect, reason: int, _opaque: object) -> None:
        if conn is self._events_from:
            self.sink(Disconnected(self.clock(),
                                   f"libvirt closed the connection (reason {reason})"))


__all__ = ["STATE_NS", "AdapterError", "Disconnected", "DomainRef", "DomainUp",
           "LibvirtAdapter", "Selector", "bulk_memory_stats", "ensure_event_loop",
           "memory_stats_mib", "parse_guest_message"]
