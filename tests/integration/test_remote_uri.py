"""autoballoond over a remote libvirt URI (qemu+ssh://): events and setMemory go through
libvirt's SSH transport (virt-ssh-helper on the far side). The far side is this machine's
libvirtd behind a private dropbear, so the transport is real and nothing else differs."""

from __future__ import annotations

from pathlib import Path

import libvirt
import pytest

from rig import scenario
from rig.bench.daemon_proc import DaemonProcess, wait_for
from rig.bench.reaction import INJECT, SCENARIO, squeezed
from rig.build.bootstrap import image_for
from rig.host import lifecycle as host
from rig.progress import Progress
from rig.vm import domains as vm
from rig.vm.domain_xml import domain_name

from .ssh_endpoint import ssh_endpoint

pytestmark = pytest.mark.vm


def _commands(d: DaemonProcess, prefix: str) -> list[dict]:
    return [r for r in d.records() if r.get("kind") == "command"
            and r["cause"].startswith(prefix)]


def test_daemon_manages_a_vm_through_qemu_ssh(layout, stack, tmp_path: Path):
    sc = scenario.parse(SCENARIO, "remote")
    spec = sc.vms[0]
    image = image_for(layout, Progress(), stack, spec.guest_driver)
    with host.session(layout, sc.host, Progress()) as host_rec, \
            ssh_endpoint(tmp_path / "ssh") as uri:
        conn = vm.connect()
        try:
            rec = vm.up(conn, layout, sc, spec, host_rec, image, stack.qemu.binary,
                        autodestroy=True)
            vm.wait_ssh(rec, timeout_s=90)
            remote = libvirt.open(uri)
            try:
                assert domain_name(spec.name) in [d.name() for d in remote.listAllDomains()]
            finally:
                remote.close()
            memcg = Path(host_rec.memory_cgroup)
            with DaemonProcess(tmp_path / "d", "seed", str(memcg), params={"hysteresis_s": 0.0},
                               extra_args=("--uri", uri)) as d:
                d.start(expect_vms=1)
                with squeezed(memcg):
                    wait_for("a host-pressure command", lambda: _commands(
                        d, "host pressure"), 30, alive=d.proc)
                dom = conn.lookupByName(domain_name(spec.name))
                # setMemory went through the remote connection: the local view agrees
                # with the last target the daemon set (one squeeze may bring several).
                cmd = wait_for("the balloon to take the daemon's target", lambda: next((
                    c for c in _commands(d, "")[-1:]
                    if abs(dom.info()[2] // 1024 - c["target_mib"]) <= 4), None), 30)
                assert cmd["cause"].startswith("host pressure")
                # A guest message travels QEMU -> libvirtd -> SSH -> daemon.
                assert vm.ssh_exec(rec, INJECT).status == 0
                back = wait_for("a guest-pressure command", lambda: _commands(
                    d, "guest pressure"), 30, alive=d.proc)[0]
                assert back["target_mib"] > cmd["target_mib"]
                assert d.stop() == 0
            links = [r["state"] for r in d.records() if r.get("kind") == "libvirt"]
            assert links[0] == "connected"
        finally:
            vm.down(conn, layout, spec.name)
            conn.close()
