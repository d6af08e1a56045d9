"""virtlogd and libvirtd: started when none runs, and then only ours are stopped.

A started daemon is recorded as (name, pid, start time) so a recycled PID is never
signalled by mistake.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rig.errors import RigError
from rig.proc import run

LIBVIRT_SOCK = Path("/run/libvirt/libvirt-sock")
PIDFILES = {"virtlogd": Path("/run/virtlogd.pid"), "libvirtd": Path("/run/libvirtd.pid")}


@dataclass(frozen=True)
class Daemon:
    name: str
    pid: int
    start_ticks: int


def start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def find_running(name: str) -> int | None:
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if (p / "comm").read_text().strip() == name:
                return int(p.name)
        except OSError:
            continue
    return None


def is_alive(d: Daemon) -> bool:
    return start_ticks(d.pid) == d.start_ticks


def _poll(what: str, check: Callable[[], object], timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > end:
            raise RigError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def _socket_accepts() -> bool:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(str(LIBVIRT_SOCK))
        return True
    except OSError:
        return False
    finally:
        s.close()


def start(name: str) -> Daemon:
    """Start `name -d` and return its record once it serves."""
    pidfile = PIDFILES[name]
    run([name, "-d"])
    _poll(f"{name} to write {pidfile}", lambda: pidfile.exists() and pidfile.read_text().strip(),
          15)
    pid = int(pidfile.read_text().strip())
    ticks = start_ticks(pid)
    if ticks is None:
        raise RigError(f"{name} exited right after start; see its log in /var/log/libvirt")
    if name == "libvirtd":
        _poll("libvirtd's socket", _socket_accepts, 30)
    return Daemon(name, pid, ticks)


def stop(d: Daemon, timeout_s: float = 20.0) -> None:
    if not is_alive(d):
        return
    os.kill(d.pid, signal.SIGTERM)
    try:
        _poll(f"{d.name} (pid {d.pid}) to exit", lambda: not is_alive(d), timeout_s)
    except RigError:
        if is_alive(d):
            os.kill(d.pid, signal.SIGKILL)
            _poll(f"{d.name} (pid {d.pid}) to die", lambda: not is_alive(d), 5)
