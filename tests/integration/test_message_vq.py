"""The message virtqueue end to end: patched guest -> patched QEMU -> QMP event -> libvirt.

One host with four VMs covers the combinations: our guest with the property on (msg),
our guest with it off (noprop), Debian's guest with it on (stockguest), and our guest's
test build with its injection interface (inject).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import libvirt
import libvirt_qemu
import pytest

from rig import scenario
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
# message-vq integration: four small VMs, each a driver/property combination.
[host]
ram_mib = 2048
swap_mib = 1024

[[vm]]
name = "msg"
memory_mib = 640
guest_swap_mib = 384

[[vm]]
name = "noprop"
memory_mib = 384
guest_swap_mib = 128
message_vq = false

[[vm]]
name = "stockguest"
memory_mib = 384
guest_swap_mib = 128
guest_driver = "stock"

[[vm]]
name = "inject"
memory_mib = 384
guest_swap_mib = 128
guest_driver = "test"
"""
TRIALS = int(os.environ.get("AB_MSGVQ_TRIALS", "5"))
GUEST_INTERVAL_S = 0.250  # the driver's msg_interval_ms default
QEMU_INTERVAL_S = 0.100  # the device's message-interval-ms default


@dataclass
class Rig:
    conn: libvirt.virConnect
    recs: dict[str, vm.VmRecord]
    watcher: EventWatcher
    booted_at: float


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
            yield Rig(conn, recs, watcher, time.monotonic())
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


def test_idle_guests_send_nothing_for_60_s(rig):
    rig.watcher.drain()
    end = time.monotonic() + 60
    got = []
    while (left := end - time.monotonic()) > 0:
        ev = rig.watcher.get(left)
        if ev is not None:
            got.append(ev)
    assert got == []


def test_pressure_event_within_1_s_of_reclaim(rig):
    rec = rig.recs["msg"]
    offset = msgvq.clock_offset(rec)
    trials = []
    for _ in range(TRIALS):
        msgvq.quiesce(rig.watcher)
        trials.append(msgvq.pressure_trial(rec, rig.watcher, offset))
    stats = msgvq.summary(trials)
    print(f"latency over {TRIALS} trials: {stats}; levels {[t.level for t in trials]}")
    assert all(t.level in msgvq.LEVELS for t in trials)
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
    # QEMU emits at most one event per 100 ms per device, whatever the host's scheduling;
    # the guest sends at most one message per 250 ms, which bounds the count.
    assert min(gaps) >= QEMU_INTERVAL_S * 0.9, gaps
    assert len(events) <= duration / GUEST_INTERVAL_S + 2


@pytest.mark.parametrize("name", ["noprop", "stockguest"])
def test_without_both_halves_balloon_works_and_nothing_is_sent(rig, name):
    rec = rig.recs[name]
    rig.watcher.drain()
    before = vm.guest_memtotal_kib(rec)
    vm.set_balloon(rig.conn, rec, 384 - 128)
    end = time.monotonic() + 30
    while vm.guest_memtotal_kib(rec) > before - (120 << 10) and time.monotonic() < end:
        time.sleep(0.3)
    assert vm.guest_memtotal_kib(rec) <= before - (120 << 10)
    vm.set_balloon(rig.conn, rec, 384)
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
