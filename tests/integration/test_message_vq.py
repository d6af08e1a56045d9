"""The message virtqueue end to end: patched guest -> patched QEMU -> QMP event -> libvirt.

One host with four VMs covers the combinations: our guest with the property on (msg),
our guest with it off (noprop), Debian's guest with it on (stockguest), and our guest's
test build with its injection interface (inject, guest-driver/test-patches/). Pressure is
real: a userspace program in the guest (a tmpfs hog, abload stream), never injected.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import libvirt
import libvirt_qemu
import pytest

from rig import scenario
from rig.bench.hostcheck import parse_kv
from rig.build.bootstrap import image_for
from rig.host import lifecycle as host
from rig.progress import Progress
from rig.vm import domains as vm
from rig.vm import msgvq
from rig.vm.domain_xml import domain_name
from rig.vm.qmp_events import EventWatcher

from .conftest import leftovers

pytestmark = pytest.mark.vm

SCENARIO = """\
# message-vq integration: four small VMs, each a driver/property combination. msg and
# stockguest have the same shape, so that their balloons' inflation speeds compare.
[host]
ram_mib = 3072
swap_mib = 1024

[[vm]]
name = "msg"
memory_mib = 640
guest_swap_mib = 384
data_disk_mib = 768

[[vm]]
name = "noprop"
memory_mib = 384
guest_swap_mib = 128
message_vq = false

[[vm]]
name = "stockguest"
memory_mib = 640
guest_swap_mib = 384
guest_driver = "stock"
data_disk_mib = 768

[[vm]]
name = "inject"
memory_mib = 384
guest_swap_mib = 128
guest_driver = "test"
"""
TRIALS = int(os.environ.get("AB_MSGVQ_TRIALS", "5"))
# The device's message-interval-ms default: it throttles the device's events, and the guest
# reads it from the configuration space (msg_interval_ms) and samples at it: one sample,
# at most one message.
QEMU_INTERVAL_S = 0.250
GUEST_INTERVAL_S = QEMU_INTERVAL_S


@dataclass
class Rig:
    conn: libvirt.virConnect
    recs: dict[str, vm.VmRecord]
    watcher: EventWatcher
    booted_at: float
    data_devs: dict[str, str]  # VM -> its data disk's guest device


@pytest.fixture(scope="module")
def rig(layout, stack) -> Iterator[Rig]:
    from rig.host import daemons

    before = {n: daemons.find_running(n) for n in ("virtlogd", "libvirtd")}
    sc = scenario.parse(SCENARIO, "message-vq")
    progress = Progress()
    with host.session(layout, sc.host, progress) as host_rec:
        conn = vm.connect()
        watcher = EventWatcher(vm.URI, msgvq.PRESSURE_EVENT)
        recs = {}
        try:
            for spec in sc.vms:
                image = image_for(layout, progress, stack, spec.guest_driver)
                recs[spec.name] = vm.up(conn, layout, sc, spec, host_rec, image,
                                        stack.qemu.binary, autodestroy=True)
            for rec in recs.values():
                vm.wait_ssh(rec, timeout_s=120)
            devs = {s.name: f"/dev/{d}" for s in sc.vms
                    if (d := vm.data_disk_device(s)) is not None}
            yield Rig(conn, recs, watcher, time.monotonic(), devs)
        finally:
            watcher.close()
            for name in recs:
                vm.down(conn, layout, name)
            conn.close()
    assert leftovers(layout, before) == []


def _events_of(events: list, vm_name: str) -> list:
    return [e for e in events if e.domain == domain_name(vm_name)]


def qmp(r: Rig, name: str, command: str, **arguments: object) -> dict:
    dom = r.conn.lookupByName(r.recs[name].domain)
    cmd = json.dumps({"execute": command, "arguments": arguments})
    return json.loads(libvirt_qemu.qemuMonitorCommand(dom, cmd, 0))["return"]


def test_feature_negotiated_only_where_both_sides_have_it(rig):
    # x-query-virtio-status names the bit; the guest side shows it in its features file.
    for name, expect in (("msg", True), ("noprop", False), ("stockguest", False)):
        feats = vm.ssh_exec(rig.recs[name],
                            "cat /sys/bus/virtio/drivers/virtio_balloon/*/features")
        bit10 = feats.stdout.strip()[10] == "1"
        assert bit10 is expect, (name, feats.stdout)


def test_the_guest_samples_at_the_interval_the_device_sets(rig):
    # msg_interval_ms travels in the configuration space; with the feature, the message
    # queue is virtqueue 5 whatever else is offered (the "msg" guest has no free page
    # reporting, so queues 3 and 4 are placeholders: a driver and a device numbering
    # differently would have failed the probe, and the feature test above).
    device_ms = qmp(rig, "msg", "qom-get", path="/machine/peripheral/balloon0",
                    property="message-interval-ms")
    assert device_ms == QEMU_INTERVAL_S * 1000
    assert parse_kv(msgvq.msg_stats(rig.recs["msg"]))["interval_ms"] == device_ms


def test_idle_guests_send_nothing_for_60_s(rig):
    rig.watcher.drain()
    end = time.monotonic() + 60
    got = []
    while (left := end - time.monotonic()) > 0:
        ev = rig.watcher.get(left)
        if ev is not None:
            got.append(ev)
    assert got == []


def test_medium_or_critical_within_1_s_of_the_first_stall(rig):
    # A guest whose anonymous (swap-backed) demand outgrows its memory.
    rec = rig.recs["msg"]
    offset = msgvq.clock_offset(rec)
    trials = []
    for _ in range(TRIALS):
        msgvq.quiesce(rig.watcher)
        trials.append(msgvq.pressure_trial(rec, rig.watcher, offset))
    stats = msgvq.summary(trials)
    print(f"latency over {TRIALS} trials: {stats}; levels {[t.level for t in trials]}")
    assert all(t.level in msgvq.SERIOUS for t in trials)
    assert all(t.event.domain == rec.domain for t in trials)
    assert all(t.event.data["qom-path"].startswith("/machine/peripheral/balloon0")
               for t in trials)
    assert stats["max_s"] < 1.0, stats
    assert stats["min_s"] > -stats["uncertainty_s"] - 0.05, stats  # causality, within error


def test_sustained_pressure_respects_the_rate_limit(rig):
    rec = rig.recs["msg"]
    msgvq.quiesce(rig.watcher)
    hog = msgvq.mem_available_mib(rec) + 300
    start = time.monotonic()
    r = vm.ssh_exec(rec, f"{msgvq.hog_command(hog)}; rm -f {msgvq.HOG}", timeout_s=300)
    duration = time.monotonic() - start
    events = _events_of(rig.watcher.drain(), "msg")
    assert r.status == 0, r.stdout
    print(f"{len(events)} events in {duration:.1f} s of pressure "
          f"({len(events) / duration:.1f}/s); levels {[e.data['level'] for e in events]}")
    assert len(events) >= 2, "sustained pressure should be reported more than once"
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(events)]
    # QEMU emits at most one event per interval per device, whatever the host's
    # scheduling; the guest sends at most one message per interval, which bounds the count.
    assert min(gaps) >= QEMU_INTERVAL_S * 0.9, gaps
    assert len(events) <= duration / GUEST_INTERVAL_S + 2


def _balloon_mib(r: Rig, name: str) -> float:
    return qmp(r, name, "query-balloon")["actual"] / (1 << 20)


def _fill_cache(r: Rig, name: str, mib: int, hold_s: int) -> None:
    """Read `mib` MiB of the data disk into the page cache and keep the disk open for
    `hold_s` s (Linux drops a block device's cache when its last opener closes it)."""
    dev = r.data_devs[name]
    vm.ssh_exec(r.recs[name], f"(exec 3<{dev}; sleep {hold_s}) >/dev/null 2>&1 &")
    out = vm.ssh_exec(r.recs[name], f"dd if={dev} of=/dev/null bs=1M count={mib} 2>&1; "
                                    "grep -E '^(MemFree|Cached):' /proc/meminfo", timeout_s=120)
    assert out.status == 0, out.stdout


def _inflate(r: Rig, name: str, target_mib: int, timeout_s: float = 60.0) -> float:
    """Set the balloon to `target_mib` and return the time until it is there (s)."""
    rec = r.recs[name]
    start = time.monotonic()
    vm.set_balloon(r.conn, rec, target_mib)
    while _balloon_mib(r, name) > target_mib + 1:
        assert time.monotonic() - start < timeout_s, f"{name}: balloon stuck"
        time.sleep(0.02)
    return time.monotonic() - start


def test_a_streaming_guest_whose_cache_the_balloon_takes_sends_nothing_serious(rig):
    # The false positive that matters: a guest streaming its disk through the page cache
    # while the balloon inflates against that cache (the balloon's own reclaim and the
    # stream's) must not look like a guest in trouble.
    rec = rig.recs["msg"]
    msgvq.quiesce(rig.watcher)
    before = parse_kv(msgvq.msg_stats(rec))
    stream = vm.ssh_exec(rec, f"(abload stream -d {rig.data_devs['msg']} -S 45 "
                              ">/tmp/stream.out 2>&1 &)")
    assert stream.status == 0, stream.stderr
    try:
        time.sleep(8)  # the stream fills the cache first
        # So that what the balloon takes is page cache (kswapd reclaims it for the
        # balloon's allocations; under TCG kswapd usually keeps up and they do not stall).
        # A block device's page cache is counted as Buffers.
        cached = vm.ssh_exec(rec, "awk '/^(Buffers|Cached):/ {n += $2} END "
                                  "{print int(n/1024)}' /proc/meminfo").stdout
        assert int(cached) > 300, f"the stream should have filled the cache: {cached} MiB"
        took = {t: _inflate(rig, "msg", t) for t in (448, 320, 256)}
        time.sleep(15)  # the stream goes on inside the smaller guest
    finally:
        vm.set_balloon(rig.conn, rec, 640)
        vm.ssh_exec(rec, "pkill -TERM abload; while pidof abload >/dev/null; do usleep "
                         "200000; done", timeout_s=90)
    after = parse_kv(msgvq.msg_stats(rec))
    events = _events_of(rig.watcher.drain(), "msg")
    delta = {k: after[k] - before.get(k, 0) for k in after}
    print(f"inflation 640->448->320->256 MiB took {took}; guest counters {delta}; "
          f"events {[e.data['level'] for e in events]}; "
          f"{vm.ssh_exec(rec, 'cat /tmp/stream.out').stdout.strip()}")
    assert delta["sent_medium"] == delta["sent_critical"] == 0, delta
    assert [e for e in events if e.data["level"] in msgvq.SERIOUS] == []


def test_inflation_against_page_cache_is_not_held_back_by_the_feature(rig):
    # The balloon's own reclaim is counted apart (migration disabled around each page
    # allocation): that must not slow inflation against page cache.
    # Same shape (640 MiB, 384 MiB swap), same cache (576 MiB of the data disk read), same
    # inflation (640 -> 448 MiB), alternating, three times each.
    rates: dict[str, list[float]] = {"msg": [], "stockguest": []}
    for _ in range(3):
        for name in rates:
            _fill_cache(rig, name, 576, hold_s=60)
            rates[name].append((640 - 448) / _inflate(rig, name, 448))
            vm.set_balloon(rig.conn, rig.recs[name], 640)
            _inflate(rig, name, 640)  # deflated again before the next trial
    med = {n: statistics.median(v) for n, v in rates.items()}
    print(f"inflation against page cache, MiB/s: {rates}; medians {med}")
    # A functional bound, not a benchmark: three timed trials on a shared TCG host spread
    # too far for a 10 % claim (medians 227 against 339, 255 against 237 and 288 against
    # 298 in three runs of this test on the same code). v1's patch 4, which this guards
    # against, nearly stopped inflation against page cache.
    assert med["msg"] >= 0.5 * med["stockguest"], med


@pytest.mark.parametrize("name", ["noprop", "stockguest"])
def test_without_both_halves_balloon_works_and_nothing_is_sent(rig, name):
    rec = rig.recs[name]
    full = {"noprop": 384, "stockguest": 640}[name]
    rig.watcher.drain()
    before = vm.guest_memtotal_kib(rec)
    vm.set_balloon(rig.conn, rec, full - 128)
    end = time.monotonic() + 30
    while vm.guest_memtotal_kib(rec) > before - (120 << 10) and time.monotonic() < end:
        time.sleep(0.3)
    assert vm.guest_memtotal_kib(rec) <= before - (120 << 10)
    vm.set_balloon(rig.conn, rec, full)
    hog = msgvq.mem_available_mib(rec) + 64
    r = vm.ssh_exec(rec, f"{msgvq.hog_command(hog)}; rm -f {msgvq.HOG}; "
                         "grep -E '^(pgscan_kswapd|pgscan_direct) ' /proc/vmstat",
                    timeout_s=300)
    assert r.status == 0, r.stdout
    assert any(int(line.split()[1]) > 0 for line in r.stdout.splitlines()
               if line.startswith("pgscan")), "the hog should have caused reclaim"
    assert _events_of(rig.watcher.drain(), name) == []


def test_malformed_and_flooding_messages_are_dropped_and_bounded(rig):
    rec = rig.recs["inject"]
    dbg = ("$(ls -d /sys/kernel/debug/virtio*/ | while read d; do "
           "[ -e $d/msg_inject ] && echo $d; done)")
    dropped0 = qmp(rig, "inject", "qom-get", path="/machine/peripheral/balloon0",
                   property="guest-messages-dropped")
    rig.watcher.drain()
    # 1 byte; a header claiming 65535 payload bytes; an unknown type (7); a bad level (9).
    bad = [r"\001", r"\001\000\377\377\000\000\000\000",
           r"\007\000\010\000\001\000\000\000\001\000\000\000\001\000\000\000",
           r"\001\000\010\000\002\000\000\000\011\000\000\000\001\000\000\000"]
    script = "; ".join(f"printf '{b}' > {dbg}msg_inject" for b in bad)
    r = vm.ssh_exec(rec, script)
    assert r.status == 0, r.stderr
    start = time.monotonic()
    r = vm.ssh_exec(rec, f"echo 2000 > {dbg}msg_flood")
    assert r.status == 0, r.stderr
    # The monitor answers during and after the flood, and the domain is still running.
    status = qmp(rig, "inject", "query-status")
    assert status["running"] is True
    end = time.monotonic() + 10
    dropped = dropped0
    while dropped < dropped0 + len(bad) and time.monotonic() < end:
        dropped = qmp(rig, "inject", "qom-get", path="/machine/peripheral/balloon0",
                      property="guest-messages-dropped")
    assert dropped >= dropped0 + len(bad)
    events = _events_of(msgvq.quiesce(rig.watcher, quiet_s=1.0), "inject")
    elapsed = time.monotonic() - start
    assert events, "valid flood messages are relayed (coalesced)"
    assert len(events) <= elapsed / QEMU_INTERVAL_S + 2, (len(events), elapsed)
    assert rig.conn.lookupByName(rec.domain).isActive()
