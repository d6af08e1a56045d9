"""What a VM's QEMU process holds, as the host measures it (the model's ``VmRss``).

Every page the process holds counts: resident (``VmRSS``), swapped out by the host
(``VmSwap``) and hugetlbfs-backed (``HugetlbPages``: guest RAM on huge pages is not in
VmRSS), all from /proc/PID/status (host/README.md, "Trust model"). The parsing is pure
(``parse_status``, ``rss_mib``); ``read_rss_mib`` is the thin reader.

The pid comes from the file libvirt's QEMU driver writes for each running domain
(``pid_file``): ``/run/libvirt/qemu/NAME.pid`` for qemu:///system,
``$XDG_RUNTIME_DIR/libvirt/qemu/run/NAME.pid`` for qemu:///session. A remote URI has no
such file here: its VMs get no ``VmRss``.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

#: The /proc/PID/status figures (kB) that make up what the process holds.
RSS_FIELDS: tuple[str, ...] = ("VmRSS", "VmSwap", "HugetlbPages")
SYSTEM_PID_DIR = Path("/run/libvirt/qemu")
#: One read of /proc/PID/status (Linux 6.x: ~1.5 KiB).
READ_SIZE = 16384
_RSS_KEYS: tuple[tuple[str, bytes], ...] = tuple(
    (name, f"\n{name}:".encode()) for name in RSS_FIELDS)


def parse_status(text: str, names: tuple[str, ...] | None = None) -> dict[str, int]:
    """The ``NAME: N kB`` lines of /proc/PID/status, as {NAME: N} (other lines skipped;
    with ``names``, only their lines are looked for)."""
    lines = text.splitlines() if names is None else [
        line for name in names if (line := _line(text, name)) is not None]
    figures: dict[str, int] = {}
    for line in lines:
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            figures[key.strip()] = int(parts[0])
    return figures


def _line(text: str, name: str) -> str | None:
    """The first line of ``text`` that starts with ``name:``, or None."""
    key = f"{name}:"
    if text.startswith(key):
        start = 0
    elif (start := text.find(f"\n{key}") + 1) == 0:
        return None
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def rss_mib(figures: Mapping[str, int]) -> int | None:
    """VmRSS + VmSwap + HugetlbPages in MiB; None without VmRSS (no memory to speak of:
    a process that is exiting)."""
    if "VmRSS" not in figures:
        return None
    return sum(figures.get(k, 0) for k in RSS_FIELDS) // 1024


def read_rss_mib(pid: int, proc: Path = Path("/proc")) -> int | None:
    """What process ``pid`` holds (MiB); OSError if its status cannot be read."""
    fd = open_status(pid, proc)
    try:
        return read_status_rss_mib(fd)
    finally:
        os.close(fd)


def open_status(pid: int, proc: Path = Path("/proc")) -> int:
    """A descriptor of process ``pid``'s status (OSError if it cannot be opened). Kept
    open, it reads the same process at every ``read_status_rss_mib`` (procfs writes the
    file anew at each read from its start), and never another one that took the pid."""
    return os.open(f"{proc}/{pid}/status", os.O_RDONLY | os.O_CLOEXEC)


def read_status_rss_mib(fd: int) -> int | None:
    """What the process of status descriptor ``fd`` holds (MiB); OSError if it cannot be
    read (the process is gone). (The stats poller reads one per VM each second: plain os
    calls, no pathlib or text layer; one read from the start gets it all: procfs hands
    the whole file to a read that has room; its figures are found in the bytes.)"""
    data = os.pread(fd, READ_SIZE, 0)
    if len(data) == READ_SIZE:  # more than it ever holds: read to its end
        chunks, offset = [data], READ_SIZE
        while chunk := os.pread(fd, READ_SIZE, offset):
            chunks.append(chunk)
            offset += len(chunk)
        data = b"".join(chunks)
    return status_rss_mib(data)


def status_files_limit() -> int:
    """How many status descriptors the stats poller keeps open: half of the process's
    open files limit (the rest for libvirt, sockets, the timeline); beyond them, a VM's
    status is opened and closed at each poll."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 2048 if soft == resource.RLIM_INFINITY else max(soft // 2, 0)


def status_rss_mib(data: bytes) -> int | None:
    """``rss_mib`` of a /proc/PID/status read as bytes (its lines of ``RSS_FIELDS``, as
    ``parse_status`` finds them)."""
    figures: dict[str, int] = {}
    for name, key in _RSS_KEYS:
        if data.startswith(key[1:]):
            start = len(key) - 1
        elif (start := data.find(key)) < 0:
            continue
        else:
            start += len(key)
        end = data.find(b"\n", start)
        parts = (data[start:] if end < 0 else data[start:end]).split()
        if len(parts) == 2 and parts[1] == b"kB" and parts[0].isdigit():
            figures[name] = int(parts[0])
    return rss_mib(figures)


def pid_file(uri: str, name: str, env: Mapping[str, str]) -> Path | None:
    """Where libvirt's QEMU driver keeps the pid of domain ``name`` for ``uri``; None for
    a remote URI, another driver, or a session without XDG_RUNTIME_DIR."""
    parts = urlsplit(uri)
    driver, _, transport = parts.scheme.partition("+")
    if driver != "qemu" or parts.netloc or transport not in ("", "unix"):
        return None
    if not name or "/" in name or name.startswith("."):
        return None
    if parts.path == "/system":
        return SYSTEM_PID_DIR / f"{name}.pid"
    runtime = env.get("XDG_RUNTIME_DIR")
    if parts.path == "/session" and runtime:
        return Path(runtime) / "libvirt" / "qemu" / "run" / f"{name}.pid"
    return None


def parse_pid(text: str) -> int | None:
    """The pid in a pid file's text, or None if it holds none."""
    text = text.strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


__all__ = ["RSS_FIELDS", "open_status", "parse_pid", "parse_status", "pid_file",
           "read_rss_mib", "read_status_rss_mib", "rss_mib", "status_files_limit",
           "status_rss_mib"]
