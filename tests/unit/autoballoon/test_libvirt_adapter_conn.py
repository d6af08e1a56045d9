"""LibvirtAdapter against a fake libvirt connection: the close callback only reports,
every failure is an AdapterError, a failed connect leaks nothing, our metadata is read
defensively."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import libvirt
import pytest
from autoballoon import libvirt_adapter as la
from autoballoon.adapter import AdapterError, Disconnected, DomainUp
from autoballoon.events import VmRemoved
from autoballoon.saved_state import STATE_NS, SavedState


def error(msg: str) -> libvirt.libvirtError:
    return libvirt.libvirtError(msg)


@dataclass
class FakeDom:
    conn: FakeConn
    _name: str
    _uuid: str
    _id: int
    max_kib: int = 1024 << 10
    cur_kib: int = 1024 << 10
    meta: dict[str, str] = field(default_factory=dict)
    busy: bool = False  # another call holds the domain's job (NOWAIT: no guest figures)
    periods: list[tuple[int, int]] = field(default_factory=list)  # setMemoryStatsPeriod

    def name(self) -> str:
        return self._name

    def UUIDString(self) -> str:
        return self._uuid

    def ID(self) -> int:
        return self._id

    def info(self) -> list[int]:
        return [1, self.max_kib, self.cur_kib, 1, 0]

    def metadata(self, _type: int, uri: str) -> str:
        if uri not in self.meta:
            raise error("metadata not found")
        return self.meta[uri]

    def setMetadata(self, _type: int, xml: str, key: str, uri: str, _flags: int) -> None:
        self.conn.check()
        self.meta[uri] = xml.replace("<state ", f'<{key}:state xmlns:{key}="{uri}" ', 1)

    def setMemoryFlags(self, kib: int, _flags: int) -> None:
        self.conn.check()
        self.cur_kib = kib

    def setMemoryStatsPeriod(self, period: int, flags: int) -> int:
        self.conn.check()
        self.periods.append((period, flags))
        return 0

    def memoryStats(self) -> dict[str, int]:
        self.conn.check()
        return {"actual": self.cur_kib, "usable": 512 << 10, "swap_in": 3}


class FakeConn:
    def __init__(self) -> None:
        self.doms: list[FakeDom] = []
        self.callbacks: dict[int, tuple[int, Any]] = {}
        self.qemu_callbacks: dict[int, Any] = {}
        self.close_cb: Any = None
        self.closed = False
        self.fail_list = False
        self._ids = iter(range(1, 1000))
        self.stats_calls: list[tuple[int, int]] = []

    def add(self, name: str, uuid: str, domid: int, **kw: Any) -> FakeDom:
        d = FakeDom(self, name, uuid, domid, **kw)
        self.doms.append(d)
        return d

    def check(self) -> None:
        if self.closed:
            raise error("internal error: client socket is closed")

    def registerCloseCallback(self, cb: Any, _opaque: object) -> None:
        self.close_cb = cb

    def unregisterCloseCallback(self) -> None:
        self.close_cb = None

    def domainEventRegisterAny(self, _dom: object, event: int, cb: Any, _o: object) -> int:
        n = next(self._ids)
        self.callbacks[n] = (event, cb)
        return n

    def domainEventDeregisterAny(self, n: int) -> None:
        del self.callbacks[n]

    def listAllDomains(self, _flags: int) -> list[FakeDom]:
        if self.fail_list:
            raise error("internal error: listing failed")
        return list(self.doms)

    def getAllDomainStats(self, stats: int, flags: int) -> list[tuple[FakeDom, dict]]:
        self.check()
        self.stats_calls.append((stats, flags))
        out = []
        for d in self.doms:
            record = {"balloon.current": d.cur_kib, "balloon.maximum": d.max_kib}
            if not d.busy:
                record |= {f"balloon.{k}": v for k, v in d.memoryStats().items()
                           if k != "actual"}
            out.append((d, record))
        return out

    def lookupByUUIDString(self, uuid: str) -> FakeDom:
        self.check()
        for d in self.doms:
            if d.UUIDString() == uuid:
                return d
        raise error(f"Domain not found: no domain with matching uuid '{uuid}'")

    def isAlive(self) -> int:
        return 0 if self.closed else 1

    def close(self) -> int:
        self.closed = True
        return 0

    # -- libvirt's event thread ---------------------------------------------------------

    def fire(self, event: int, dom: FakeDom, *args: object) -> None:
        for ev, cb in list(self.callbacks.values()):
            if ev == event:
                cb(self, dom, *args, None)

    def fire_close(self, reason: int = 0) -> None:
        if self.close_cb is not None:
            self.close_cb(self, reason, None)


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> FakeConn:
    c = FakeConn()

    def qemu_register(conn: FakeConn, _dom: object, _ev: str, cb: Any, _o: object,
                      _flags: int) -> int:
        n = next(conn._ids)
        conn.qemu_callbacks[n] = cb
        return n

    def qemu_deregister(conn: FakeConn, n: int) -> None:
        del conn.qemu_callbacks[n]

    monkeypatch.setattr(la, "ensure_event_loop", lambda: None)
    monkeypatch.setattr(la.libvirt, "open", lambda _uri: c)
    monkeypatch.setattr(la.libvirt, "registerErrorHandler", lambda _f, _c: None)
    monkeypatch.setattr(la.libvirt_qemu, "qemuMonitorEventRegister", qemu_register)
    monkeypatch.setattr(la.libvirt_qemu, "qemuMonitorEventDeregister", qemu_deregister)
    return c


def adapter(events: list[object]) -> la.LibvirtAdapter:
    return la.LibvirtAdapter("qemu:///test", la.Selector(), events.append, lambda: 5.0)


def test_the_close_callback_only_reports_the_loop_closes(conn):
    conn.add("a", "u-a", 7)
    events: list[object] = []
    a = adapter(events)
    (up,) = a.connect()
    conn.fire_close()
    assert isinstance(events[-1], Disconnected)
    a.set_target(up.ref, 512)  # the connection is the loop's to drop, not the callback's
    assert conn.doms[0].cur_kib == 512 << 10
    assert not conn.closed
    a.close()
    assert conn.closed and conn.callbacks == {} and conn.qemu_callbacks == {}
    with pytest.raises(AdapterError, match="not connected"):
        a.set_target(up.ref, 512)


def test_every_libvirt_failure_is_an_adapter_error(conn):
    d = conn.add("a", "u-a", 7)
    a = adapter([])
    (up,) = a.connect()
    conn.closed = True  # libvirtd went away under a worker's call
    for call in (lambda: a.set_target(up.ref, 512), lambda: a.memory_stats(up.ref),
                 lambda: a.save_state(up.ref, SavedState(512, 512))):
        with pytest.raises(AdapterError, match="client socket is closed"):
            call()
    conn.closed = False
    d._id = 8  # rebooted: the target was decided for the old boot
    with pytest.raises(AdapterError, match="restarted"):
        a.set_target(up.ref, 512)
    assert d.cur_kib == 1024 << 10


def test_the_stats_period_is_set_on_the_live_domain_and_failures_are_adapter_errors(conn):
    d = conn.add("a", "u-a", 7)
    a = adapter([])
    (up,) = a.connect()
    a.set_stats_period(up.ref, 2)
    assert d.periods == [(2, libvirt.VIR_DOMAIN_AFFECT_LIVE)]  # not the persistent config
    conn.closed = True
    with pytest.raises(AdapterError, match="setMemoryStatsPeriod of a: .*closed"):
        a.set_stats_period(up.ref, 2)
    conn.closed = False
    d._id = 8  # rebooted since: the period is the new boot's worker's to set
    with pytest.raises(AdapterError, match="restarted"):
        a.set_stats_period(up.ref, 2)
    assert d.periods == [(2, libvirt.VIR_DOMAIN_AFFECT_LIVE)]


def test_a_failed_connect_releases_everything(conn):
    d = conn.add("a", "u-a", 7)
    conn.fail_list = True
    events: list[object] = []
    a = adapter(events)
    with pytest.raises(AdapterError, match="listing failed"):
        a.connect()
    assert conn.closed
    assert (conn.callbacks, conn.qemu_callbacks, conn.close_cb) == ({}, {}, None)
    conn.fire(libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, d, libvirt.VIR_DOMAIN_EVENT_STARTED, 0)
    assert events == []


def test_lifecycle_events_carry_the_boot(conn):
    d = conn.add("a", "u-a", 7, cur_kib=900 << 10)
    events: list[object] = []
    a = adapter(events)
    a.connect()
    conn.fire(libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, d, libvirt.VIR_DOMAIN_EVENT_STOPPED, 0)
    d._id = 9
    conn.fire(libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, d, libvirt.VIR_DOMAIN_EVENT_STARTED, 0)
    assert events[1:] == [VmRemoved(5.0, "a"), DomainUp(5.0, "a", 1024, 900, "u-a", 9)]


def test_state_round_trips_through_the_metadata(conn):
    conn.add("a", "u-a", 7)
    a = adapter([])
    (up,) = a.connect()
    assert up.saved is None
    a.save_state(up.ref, SavedState(800, 224, enabled=False, manual=True))
    a.close()
    conn.closed = False
    (up,) = adapter([]).connect()
    assert up.saved == SavedState(800, 224, enabled=False, manual=True)


@pytest.mark.parametrize("xml", [
    "<state",  # not XML
    '<abd:state xmlns:abd="urn:autoballoon:daemon:1" version="2" target-mib="1"/>',
    '<abd:state xmlns:abd="urn:autoballoon:daemon:1" version="1" target-mib="-5" '
    'auto-inflated-mib="0" enabled="yes" manual="no"/>',
    "<x>" + "a" * 10_000 + "</x>",
])
def test_garbage_in_our_metadata_is_ignored_with_a_warning(conn, caplog, xml):
    conn.add("a", "u-a", 7, meta={STATE_NS: xml})
    (up,) = adapter([]).connect()
    assert up.saved is None
    assert any(r.levelno == logging.WARNING and "a" in r.getMessage() for r in caplog.records)


# -- one bulk stats call per poll ----------------------------------------------------------

def test_one_bulk_call_polls_every_managed_boot_and_leaves_the_others_out(conn):
    a = conn.add("a", "u-a", 7, cur_kib=900 << 10)
    b = conn.add("b", "u-b", 8)
    conn.add("other", "u-o", 9)  # not asked for
    ad = adapter([])
    (up_a, up_b, _) = ad.connect()
    b._id = 10  # b rebooted since: its new boot is not the one asked for
    got = ad.domain_stats([up_a.ref, up_b.ref])
    assert list(got) == [up_a.ref]
    assert got[up_a.ref].stats == ad.memory_stats(up_a.ref) == {
        "actual": 900, "usable": 512, "swap_in": 0}
    assert got[up_a.ref].target_mib is None  # libvirt keeps no target, only the size
    assert conn.stats_calls == [(libvirt.VIR_DOMAIN_STATS_BALLOON,
                                 libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
                                 | libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT)]
    assert a.cur_kib == 900 << 10


def test_a_busy_monitor_gives_no_stats_rather_than_a_size_alone(conn):
    d = conn.add("a", "u-a", 7)
    a = adapter([])
    (up,) = a.connect()
    d.busy = True
    assert a.domain_stats([up.ref])[up.ref].stats == {}


def test_a_failed_bulk_call_is_an_adapter_error(conn):
    conn.add("a", "u-a", 7)
    a = adapter([])
    (up,) = a.connect()
    conn.closed = True
    with pytest.raises(AdapterError, match="client socket is closed"):
        a.domain_stats([up.ref])
    a.close()
    with pytest.raises(AdapterError, match="not connected"):
        a.domain_stats([up.ref])


#: memoryStats of test:///default's domain (KiB), as libvirt-python gives it.
MEMORY_STATS = {"actual": 2097152, "swap_in": 0, "swap_out": 0, "major_fault": 0,
                "minor_fault": 0, "unused": 1048576, "available": 2097152,
                "usable": 1048576, "last_update": 627319920, "disk_caches": 262144,
                "hugetlb_pgalloc": 0, "hugetlb_pgfail": 0, "rss": 1048576}


def test_bulk_balloon_stats_keep_memory_stats_names_and_units():
    bulk = {f"balloon.{k}": v for k, v in MEMORY_STATS.items()
            if k not in ("actual", "last_update")}
    bulk |= {"balloon.current": 2097152, "balloon.maximum": 4194304,
             "balloon.last-update": 627319920}
    assert la.bulk_memory_stats(bulk) == la.memory_stats_mib(MEMORY_STATS)
    assert la.memory_stats_mib(MEMORY_STATS)["usable"] == 1024  # MiB
    assert la.bulk_memory_stats({"balloon.current": 2097152, "balloon.maximum": 1}) == {}
    newer = {"balloon.current": 2048, "balloon.usable": 1024, "balloon.newfield": 5}
    assert la.bulk_memory_stats(newer) == {"actual": 2, "usable": 1, "newfield": 5}
