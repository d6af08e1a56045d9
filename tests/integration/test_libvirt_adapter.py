"""The daemon's libvirt adapter against a real VM: discovery, targets, guest messages."""

from __future__ import annotations

import queue
import time

import pytest
from autoballoon.events import BalloonActual, GuestPressure, VmRemoved
from autoballoon.libvirt_adapter import DomainUp, LibvirtAdapter, Selector

from rig import scenario
from rig.host import lifecycle as host
from rig.progress import Progress
from rig.vm import domains as vm
from rig.vm import msgvq
from rig.vm.domain_xml import RIG_NS, domain_name

pytestmark = pytest.mark.vm

SCENARIO = """\
# adapter: one VM with the message queue, managed through libvirt.
[host]
ram_mib = 2048
swap_mib = 512

[[vm]]
name = "managed"
memory_mib = 512
guest_swap_mib = 384
"""


def _wait(events: queue.Queue, kind: type, vm_name: str, timeout_s: float,
          pred=lambda _e: True):
    end = time.monotonic() + timeout_s
    while (left := end - time.monotonic()) > 0:
        try:
            e = events.get(timeout=left)
        except queue.Empty:
            break
        if isinstance(e, kind) and e.vm == vm_name and pred(e):
            return e
    pytest.fail(f"no {kind.__name__} for {vm_name} within {timeout_s} s")


def test_adapter_discovers_sets_targets_and_relays_guest_messages(layout, stack):
    sc = scenario.parse(SCENARIO, "adapter")
    name = domain_name("managed")
    with host.session(layout, sc.host, Progress()) as host_rec:
        conn = vm.connect()
        try:
            rec = vm.up(conn, layout, sc, sc.vms[0], host_rec, stack.image,
                        stack.qemu.binary, autodestroy=True)
            vm.wait_ssh(rec, timeout_s=90)
            events: queue.Queue = queue.Queue()
            adapter = LibvirtAdapter(vm.URI, Selector(metadata_ns=RIG_NS), events.put)
            try:
                ups = adapter.connect()
                assert [(u.vm, u.max_mib, u.current_mib) for u in ups] == [(name, 512, 512)]
                assert isinstance(events.get_nowait(), DomainUp)
                ref = ups[0].ref  # this boot of the domain
                stats = adapter.memory_stats(ref)
                assert 0 < stats["actual"] <= 512 and "available" in stats
                # the daemon's one bulk call: memoryStats' names and units, no target
                polled = adapter.domain_stats([ref])[ref]
                assert set(polled.stats) == set(stats) and polled.target_mib is None
                assert polled.stats["actual"] == stats["actual"]

                adapter.set_target(ref, 384)
                _wait(events, BalloonActual, name, 30, lambda e: e.actual_mib == 384)
                assert adapter.current_mib(ref) == 384
                adapter.set_target(ref, 512)

                hog = msgvq.mem_available_mib(rec) + 96
                vm.ssh_exec(rec, f"{msgvq.hog_command(hog)} >/dev/null; rm -f {msgvq.HOG}",
                            timeout_s=120)
                msg = _wait(events, GuestPressure, name, 15)
                assert msg.level in ("low", "medium", "critical") and msg.messages >= 1

                vm.down(conn, layout, "managed")
                _wait(events, VmRemoved, name, 15)
            finally:
                adapter.close()
        finally:
            vm.down(conn, layout, "managed")
            conn.close()
