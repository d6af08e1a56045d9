"""VMs of a scenario under libvirt: start, stop, SSH (paramiko), serial console (pexpect).

A started VM is recorded in <run>/vms/<name>.json (domain, SSH port, keys) so another
command (`rig vm exec NAME`) finds it. Domains are transient and carry our metadata
element, so `destroy_all` finds every one of ours and nothing else.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
import tty
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import libvirt
import paramiko
from pexpect import fdpexpect

from rig.build.image import GuestImage
from rig.errors import RigError, UsageError
from rig.layout import Layout
from rig.proc import run
from rig.scenario import Scenario, VmSpec
from rig.vm import domain_xml

URI = "qemu:///system"

# While a guest boots, slirp accepts connections before sshd listens; paramiko logs each
# failed banner read as an ERROR traceback. wait_ssh reports the last error itself.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class Placement(Protocol):
    """Where a VM runs: the host's libvirt domain type (kvm or qemu) and its resource
    partition. `rig.host`'s HostRecord is one; this layer takes it without importing the
    host layer, which sits above it (host down destroys our domains)."""

    domain_type: str
    partition: str


@dataclass
class VmRecord:
    name: str
    domain: str
    ssh_port: int
    ssh_key: str
    host_pubkey: str
    dir: str
    started_at: float

    @classmethod
    def load(cls, layout: Layout, name: str) -> VmRecord:
        path = layout.run / "vms" / f"{name}.json"
        if not path.exists():
            raise UsageError(f"no VM {name!r} is up; start it with `rig vm up {name}`")
        return cls(**json.loads(path.read_text()))

    def save(self, layout: Layout) -> None:
        path = layout.run / "vms" / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))


@dataclass(frozen=True)
class ExecResult:
    status: int
    stdout: str
    stderr: str


def _quiet_libvirt_errors() -> None:
    # libvirt prints every error to stderr by default; we raise them as exceptions instead.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def connect(uri: str = URI) -> libvirt.virConnect:
    _quiet_libvirt_errors()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as e:
        raise RigError(f"cannot connect to libvirt at {uri}: {e}; is `rig host up` done?") from e


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_data_disk(path: Path, size_mib: int) -> None:
    """A raw data disk of random bytes: nothing on the way (the host's zero-page handling,
    a sparse file's holes, compression) can make the guest's reads of it cheaper than
    real data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))


def data_disk_device(spec: VmSpec) -> str | None:
    """The VM's data disk as the guest names it ("vdb"), None without one."""
    if not spec.data_disk_mib:
        return None
    return domain_xml.guest_data_dev(has_swap_disk=bool(spec.guest_swap_mib))


def make_swap_disk(path: Path, size_mib: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(size_mib << 20)
    run(["mkswap", "-L", "guestswap", path])


def up(
    conn: libvirt.virConnect,
    layout: Layout,
    scenario: Scenario,
    spec: VmSpec,
    host: Placement,
    image: GuestImage,
    emulator: Path,
    *,
    autodestroy: bool = False,
    extra_qemu_args: tuple[str, ...] = (),
    free_page_reporting: bool = False,
) -> VmRecord:
    """Create the VM's disk and start its transient domain inside the host partition."""
    name = domain_xml.domain_name(spec.name)
    try:
        conn.lookupByName(name)
        raise RigError(f"domain {name} already exists; run `rig vm down {spec.name}` first")
    except libvirt.libvirtError:
        pass
    vdir = layout.vm_dir(spec.name)
    if vdir.exists():
        shutil.rmtree(vdir)
    vdir.mkdir(parents=True)
    layout.state.chmod(0o755)
    vdir.parent.chmod(0o755)
    vdir.chmod(0o755)
    swap_disk = None
    cmdline = f"{image.cmdline_base} ab.name={spec.name}"
    if spec.guest_swap_mib:
        swap_disk = vdir / "swap.img"
        make_swap_disk(swap_disk, spec.guest_swap_mib)
        cmdline += " ab.swap=/dev/vda"
    data_disk = None
    if spec.data_disk_mib:
        data_disk = vdir / "data.img"
        make_data_disk(data_disk, spec.data_disk_mib)
    port = free_loopback_port()
    cfg = domain_xml.DomainConfig(
        vm=spec.name,
        scenario=scenario.name,
        memory_mib=spec.memory_mib,
        current_mib=spec.memory_mib,
        vcpus=spec.vcpus,
        domain_type=host.domain_type,
        emulator=emulator,
        kernel=image.kernel,
        initrd=image.initrd,
        cmdline=cmdline,
        swap_disk=swap_disk,
        data_disk=data_disk,
        ssh_port=port,
        partition=host.partition,
        message_vq=spec.message_vq,
        extra_qemu_args=extra_qemu_args,
        free_page_reporting=free_page_reporting,
    )
    xml = domain_xml.render(cfg)
    (vdir / "domain.xml").write_text(xml)
    rec = VmRecord(
        name=spec.name,
        domain=name,
        ssh_port=port,
        ssh_key=str(image.ssh_key),
        host_pubkey=image.host_pubkey,
        dir=str(vdir),
        started_at=time.time(),
    )
    rec.save(layout)
    flags = libvirt.VIR_DOMAIN_START_AUTODESTROY if autodestroy else 0
    try:
        conn.createXML(xml, flags)
    except libvirt.libvirtError as e:
        raise RigError(f"libvirt could not start {name}: {e}") from e
    return rec


def down(conn: libvirt.virConnect, layout: Layout, name: str) -> None:
    """Destroy the VM's domain (if running) and remove its files and record."""
    try:
        conn.lookupByName(domain_xml.domain_name(name)).destroy()
    except libvirt.libvirtError as e:
        if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            raise RigError(f"cannot destroy {name}: {e}") from e
    shutil.rmtree(layout.vm_dir(name), ignore_errors=True)
    (layout.run / "vms" / f"{name}.json").unlink(missing_ok=True)


def ours(conn: libvirt.virConnect) -> list[libvirt.virDomain]:
    """Every domain carrying our metadata element."""
    found = []
    for dom in conn.listAllDomains():
        try:
            dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, domain_xml.RIG_NS)
        except libvirt.libvirtError:
            continue
        found.append(dom)
    return found


def destroy_all(layout: Layout) -> None:
    conn = connect()
    try:
        for dom in ours(conn):
            vm_name = dom.name().removeprefix(domain_xml.DOMAIN_PREFIX)
            down(conn, layout, vm_name)
        for stale in (layout.run / "vms").glob("*.json"):
            down(conn, layout, stale.stem)
    finally:
        conn.close()


def forget_all(layout: Layout) -> None:
    """Remove every VM's record and files without libvirt (which is not running, so none
    of its domains can be)."""
    for stale in (layout.run / "vms").glob("*.json"):
        shutil.rmtree(layout.vm_dir(stale.stem), ignore_errors=True)
        stale.unlink(missing_ok=True)


def qemu_pid(rec: VmRecord) -> int:
    return int(Path(f"/run/libvirt/qemu/{rec.domain}.pid").read_text().strip())


# ---- SSH ------------------------------------------------------------------------------

def _client(rec: VmRecord, timeout_s: float) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    keytype, b64 = rec.host_pubkey.split()[:2]
    if keytype != "ssh-ed25519":
        raise RigError(f"unexpected guest host key type {keytype}")
    client.get_host_keys().add(
        f"[127.0.0.1]:{rec.ssh_port}", keytype, paramiko.Ed25519Key(data=base64.b64decode(b64))
    )
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1", port=rec.ssh_port, username="root",
        pkey=paramiko.Ed25519Key.from_private_key_file(rec.ssh_key),
        timeout=timeout_s, banner_timeout=timeout_s, auth_timeout=timeout_s,
        allow_agent=False, look_for_keys=False,
    )
    return client


def ssh_exec(rec: VmRecord, command: str, timeout_s: float = 60.0) -> ExecResult:
    client = _client(rec, min(timeout_s, 15.0))
    try:
        _stdin, stdout, stderr = client.exec_command(command, timeout=timeout_s)
        out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
        return ExecResult(stdout.channel.recv_exit_status(), out, err)
    finally:
        client.close()


def ssh_stream(rec: VmRecord, command: str, on_line: Callable[[str], None],
               timeout_s: float, stdin: str | bytes = b"") -> int:
    """Run `command` over SSH, handing each stdout line to `on_line` as it arrives
    (stderr is merged); its exit status. `timeout_s` bounds the silence between lines.
    `stdin` is sent first (bytes as they are, text as UTF-8), then closed."""
    client = _client(rec, min(timeout_s, 15.0))
    try:
        chan_in, stdout, _stderr = client.exec_command(command, timeout=timeout_s)
        stdout.channel.set_combine_stderr(True)
        if stdin:
            chan_in.write(stdin)
        chan_in.channel.shutdown_write()
        for line in stdout:
            on_line(line)
        return stdout.channel.recv_exit_status()
    finally:
        client.close()


def wait_ssh(rec: VmRecord, timeout_s: float = 60.0) -> float:
    """Poll until SSH runs a command; return seconds since the domain was started."""
    end = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            if ssh_exec(rec, "true", timeout_s=5).status == 0:
                return time.time() - rec.started_at
        except (OSError, paramiko.SSHException, EOFError) as e:
            last = e
        time.sleep(0.5)
    raise RigError(f"{rec.name}: no SSH on 127.0.0.1:{rec.ssh_port} after {timeout_s:.0f} s "
                   f"(last error: {last}); see the console with `rig vm console {rec.name}`")


# ---- serial console -------------------------------------------------------------------

def console_path(conn: libvirt.virConnect, rec: VmRecord) -> str:
    xml = conn.lookupByName(rec.domain).XMLDesc(0)
    src = ET.fromstring(xml).find("./devices/serial/source")
    if src is None or not src.get("path"):
        raise RigError(f"{rec.name} has no serial pty in its live XML")
    return str(src.get("path"))


class Console:
    """Commands on the guest's serial shell, delimited by sentinels we echo.

    busybox's shell emits a cursor query with its prompt, so prompts are never matched.
    """

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)  # no echo of guest output back into the guest
        self.child = fdpexpect.fdspawn(self.fd, encoding="utf-8", codec_errors="replace")

    def run(self, command: str, timeout_s: float = 30.0) -> ExecResult:
        tag = secrets.token_hex(4)
        # The split quotes make the echoed command line differ from the markers' output.
        self.child.send(f"echo ab''{tag}-begin; {command}; echo ab''{tag}-end-$?\r")
        self.child.expect(f"ab{tag}-begin\r?\n", timeout=timeout_s)
        self.child.expect(rf"ab{tag}-end-(\d+)", timeout=timeout_s)
        status = int(self.child.match.group(1))
        out = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", self.child.before or "")
        return ExecResult(status, out.replace("\r\n", "\n"), "")

    def close(self) -> None:
        os.close(self.fd)


@contextmanager
def console(conn: libvirt.virConnect, rec: VmRecord) -> Iterator[Console]:
    c = Console(console_path(conn, rec))
    try:
        yield c
    finally:
        c.close()


# ---- balloon and memory ---------------------------------------------------------------

def set_balloon(conn: libvirt.virConnect, rec: VmRecord, target_mib: int) -> None:
    """Set the balloon so the guest has `target_mib` (libvirt's current memory)."""
    conn.lookupByName(rec.domain).setMemoryFlags(target_mib << 10, libvirt.VIR_DOMAIN_AFFECT_LIVE)


def guest_memtotal_kib(rec: VmRecord) -> int:
    r = ssh_exec(rec, "cat /proc/meminfo")
    m = re.search(r"^MemTotal:\s+(\d+) kB", r.stdout, re.MULTILINE)
    if r.status != 0 or not m:
        raise RigError(f"{rec.name}: cannot read MemTotal: {r.stderr.strip()}")
    return int(m.group(1))
