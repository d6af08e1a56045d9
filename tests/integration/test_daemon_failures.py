"""autoballoond against real failures (issue 12's acceptance): a QEMU that stops answering,
a daemon killed in the middle of an inflation, libvirtd restarted while commands are on
their way. Real libvirtd, real QEMU, real guests; the host squeezed through its memory
cgroup's limit (as test_daemon.py does)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig import scenario
from rig.bench.daemon_proc import DaemonProcess, read_timeline, wait_for
from rig.errors import RigError
from rig.host import lifecycle as host
from rig.progress import Progress
from rig.vm import domains as vm
from rig.vm.domain_xml import domain_name

pytestmark = pytest.mark.vm

TWO = """\
# daemon failures: two VMs managed by autoballoond in a host we squeeze by hand.
[host]
ram_mib = 2048
swap_mib = 1024

[[vm]]
name = "auto"
memory_mib = 768
guest_swap_mib = 384

[[vm]]
name = "other"
memory_mib = 512
guest_swap_mib = 128
"""
AUTO, OTHER = domain_name("auto"), domain_name("other")
STOPPED_S = 30.0


def _wait_for(what: str, check: Callable[[], object], timeout_s: float) -> object:
    try:
        return wait_for(what, check, timeout_s, poll_s=0.2)
    except RigError as e:
        pytest.fail(str(e))


class Squeeze:
    """The host's memory cgroup limit lowered to ``below_mib`` under its usage, and put
    back (also on failure)."""

    def __init__(self, memcg: Path, below_mib: int) -> None:
        self.limit = memcg / "memory.limit_in_bytes"
        self.old = int(self.limit.read_text())
        usage = int((memcg / "memory.usage_in_bytes").read_text())
        self.limit.write_text(str(usage - (below_mib << 20)))

    def release(self) -> None:
        if self.old is not None:
            self.limit.write_text(str(self.old))
            self.old = None


@pytest.fixture
def two_vms(layout, stack, tmp_path: Path) -> Iterator[tuple[dict, Path, Path]]:
    """Both VMs up (their guests booted: the balloon driver answers), the host's memory
    cgroup, a work directory; everything torn down afterwards."""
    sc = scenario.parse(TWO, "daemon-failures")
    with host.session(layout, sc.host, Progress()) as host_rec:
        recs: dict[str, vm.VmRecord] = {}
        try:
            conn = vm.connect()
            try:
                for spec in sc.vms:
                    recs[spec.name] = vm.up(conn, layout, sc, spec, host_rec, stack.image,
                                            stack.qemu.binary)
            finally:
                conn.close()
            for rec in recs.values():
                vm.wait_ssh(rec, timeout_s=120)
            yield recs, Path(host_rec.memory_cgroup), tmp_path
        finally:
            conn = vm.connect()  # a new one: a test may have restarted libvirtd
            try:
                for spec in sc.vms:
                    vm.down(conn, layout, spec.name)
            finally:
                conn.close()


def _commands(d: DaemonProcess, name: str, cause: str = "") -> list[dict]:
    return [r for r in read_timeline(d.timeline)
            if r["kind"] == "command" and r["vm"] == name and cause in r["cause"]]


def _stats_inputs(d: DaemonProcess, name: str) -> list[dict]:
    return [r for r in read_timeline(d.timeline) if r.get("event") == "GuestStats"
            and r.get("vm") == name]


def _start_daemon(tmp: Path, memcg: Path) -> DaemonProcess:
    """The real daemon (policy auto) managing both VMs, once both guests' stats come in."""
    d = DaemonProcess(tmp, "auto", str(memcg)).start(expect_vms=2)
    try:
        _wait_for("stats from both guests", lambda: _stats_inputs(d, AUTO)
                  and _stats_inputs(d, OTHER), 30)
    except BaseException:
        d.stop()
        raise
    return d


def _all_given_back_none_manual(d: DaemonProcess, timeout_s: float = 300) -> None:
    """Everything taken comes back on a calm host, no VM manual, the daemon alive."""
    vms = _all_given_back(d, timeout_s)
    assert not any(v["manual"] for v in vms.values())
    assert d.proc is not None and d.proc.poll() is None


def _all_given_back(d: DaemonProcess, timeout_s: float) -> dict:
    def back() -> dict | None:
        vms = d.show()["vms"]
        return vms if all(v["auto_inflated_mib"] == 0 and v["target_mib"] == v["max_mib"]
                          for v in vms.values()) else None
    return _wait_for("everything automation took to be given back", back, timeout_s)


def test_a_stopped_qemu_stalls_only_its_own_vm(layout, two_vms):
    """kill -STOP one VM's QEMU for 30 s: the daemon keeps deciding for the other VM
    (host pressure inflates it), answers its control socket, handles a lifecycle event
    (the other VM destroyed), and after SIGCONT manages the stopped VM again."""
    recs, memcg, tmp = two_vms
    d = _start_daemon(tmp, memcg)
    pid = vm.qemu_pid(recs["auto"])
    squeeze = None
    try:
        os.kill(pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            squeeze = Squeeze(memcg, 64)
            _wait_for("a host-pressure command for the VM still running",
                      lambda: _commands(d, OTHER, "host pressure"), 20)
            squeeze.release()
            assert d.show()["vms"][AUTO]  # the control socket answers meanwhile
            conn = vm.connect()
            try:
                vm.down(conn, layout, "other")  # a lifecycle event while a monitor hangs
            finally:
                conn.close()
            _wait_for("the destroyed VM to be dropped",
                      lambda: set(d.show()["vms"]) == {AUTO}, 15)
            assert time.monotonic() - stopped_at < STOPPED_S, "the checks took too long"
            time.sleep(max(0.0, STOPPED_S - (time.monotonic() - stopped_at)))  # the stop
        finally:
            os.kill(pid, signal.SIGCONT)
        n = len(_stats_inputs(d, AUTO))
        _wait_for("stats from the resumed guest", lambda: len(_stats_inputs(d, AUTO)) > n, 30)
        squeeze = Squeeze(memcg, 64)
        _wait_for("a host-pressure command for the resumed VM",
                  lambda: _commands(d, AUTO, "host pressure"), 30)
        squeeze.release()
        assert d.proc is not None and d.proc.poll() is None
        assert not d.show()["vms"][AUTO]["manual"]
        assert any(r.get("event") == "VmRemoved" and r.get("vm") == OTHER
                   for r in read_timeline(d.timeline))
        assert d.show()["dropped_inputs"] == 0
    finally:
        if squeeze is not None:
            squeeze.release()
        d.stop()
    assert d.proc.returncode == 0


def test_a_daemon_killed_mid_inflation_resumes_and_gives_everything_back(two_vms):
    """SIGKILL the daemon while the balloons move (no clean shutdown: what the metadata
    holds is all a new daemon has): no VM is handed to manual control, and once the host
    is calm everything automation took comes back."""
    _recs, memcg, tmp = two_vms
    d = _start_daemon(tmp, memcg)
    squeeze = None
    try:
        squeeze = Squeeze(memcg, 192)
        _wait_for("inflation under way", lambda: any(
            v["target_mib"] < v["max_mib"] for v in d.show()["vms"].values()), 30)
        moving = {n: (v["target_mib"], v["actual_mib"]) for n, v in d.show()["vms"].items()}
        assert d.proc is not None
        d.proc.kill()
        d.stop()  # reaps it; removes the socket and lock a killed daemon leaves
        d = _start_daemon(tmp, memcg)
        deadline = time.monotonic() + 10  # still squeezed: it goes on deciding
        while time.monotonic() < deadline:
            vms = d.show()["vms"]
            assert not any(v["manual"] for v in vms.values()), (moving, vms)
            time.sleep(0.5)
        squeeze.release()
        _all_given_back_none_manual(d)
    finally:
        if squeeze is not None:
            squeeze.release()
        d.stop()
    assert d.proc.returncode == 0


def test_libvirtd_restarted_while_commands_are_in_flight(layout, two_vms):
    """Host pressure keeps the daemon commanding both VMs while libvirtd restarts: no
    crash, it reconnects, nothing is handed to manual, and all is given back after."""
    _recs, memcg, tmp = two_vms
    d = _start_daemon(tmp, memcg)
    squeeze = None
    try:
        squeeze = Squeeze(memcg, 192)
        _wait_for("host-pressure commands", lambda: _commands(d, AUTO, "host pressure")
                  or _commands(d, OTHER, "host pressure"), 30)
        host.restart_libvirtd(layout)

        def states() -> list[str]:
            return [r["state"] for r in read_timeline(d.timeline) if r["kind"] == "libvirt"]

        _wait_for("the daemon to reconnect", lambda: states().count("connected") >= 2, 60)
        assert d.proc is not None and d.proc.poll() is None
        assert set(d.show()["vms"]) == {AUTO, OTHER}
        squeeze.release()
        _all_given_back_none_manual(d)
    finally:
        if squeeze is not None:
            squeeze.release()
        d.stop()
    assert d.proc.returncode == 0
