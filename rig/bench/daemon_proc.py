"""autoballoond as a child process of the rig: started, asked, stopped by its own PID.

The rig and the tests run the real daemon (the `autoballoon.daemon` module of this
environment) against the rig's libvirt, manage only domains carrying the rig's metadata,
and read its JSONL timeline afterwards.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from autoballoon.control import lock_path, request

from rig.bench.results import read_jsonl
from rig.errors import RigError
from rig.vm.domain_xml import RIG_NS

_SOCKETS = itertools.count(1)


def read_timeline(path: Path) -> list[dict[str, Any]]:
    """The timeline's records so far (a partial last line is not a record yet)."""
    return read_jsonl(path)


def toml_value(value: object) -> str:
    """A policy parameter as the daemon's --policy-param reads it (a TOML value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(list(value) if isinstance(value, tuple) else value)


@dataclass
class DaemonProcess:
    workdir: Path
    policy: str
    memcg: str | None
    pressure: str = "vmpressure"
    params: Mapping[str, object] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    # cgroup directories the daemon is born in (its PID is written to their cgroup.procs
    # before it execs): the first must take it, the others are best effort.
    cgroups: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[str] | None = None
    # A unix socket path must fit in 108 bytes and results directories can be deep, so
    # the control socket lives in the temporary directory under a unique short name.
    socket: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / (
        f"autoballoond-{os.getpid()}-{next(_SOCKETS)}.sock"))

    @property
    def timeline(self) -> Path:
        return self.workdir / "timeline.jsonl"

    @property
    def log_path(self) -> Path:
        return self.workdir / "autoballoond.log"

    def argv(self) -> list[str]:
        """Everything the rig's daemon runs with is on its command line: the host's
        /etc/autoballoon/autoballoond.toml is not read (--no-config), and its pressure
        source is the rig's partition (the daemon's default is libvirt's machine.slice)."""
        argv = [sys.executable, "-m", "autoballoon.daemon", "--no-config", "--metadata-ns", RIG_NS,
                "--policy", self.policy, "--timeline", str(self.timeline),
                "--control-socket", str(self.socket)]
        if self.pressure == "none" or self.memcg is None:
            argv += ["--pressure", "none"]
        else:
            argv += ["--pressure", self.pressure, "--pressure-path", self.memcg]
        for k, v in self.params.items():
            argv += ["--policy-param", f"{k}={toml_value(v)}"]
        return born_in(self.cgroups, argv + list(self.extra_args))

    def start(self, expect_vms: int = 0, timeout_s: float = 30.0) -> DaemonProcess:
        """Start and wait until it answers (and manages `expect_vms` domains)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("a")
        self.proc = subprocess.Popen(self.argv(), stdout=self._log, stderr=subprocess.STDOUT)
        wait_for("autoballoond to manage the VMs", lambda: self._ready(expect_vms), timeout_s,
                 alive=self.proc)
        return self

    def _ready(self, expect_vms: int) -> bool:
        try:
            return len(self.show()["vms"]) >= expect_vms
        except (OSError, ValueError, KeyError):
            return False

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        return request(self.socket, req)

    def show(self) -> dict[str, Any]:
        return self.request({"cmd": "show"})

    def records(self) -> list[dict[str, Any]]:
        return read_timeline(self.timeline)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM our child (then SIGKILL); its exit status."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.remove_files()
        return None if self.proc is None else self.proc.returncode

    @property
    def lock(self) -> Path:
        """The lock file the daemon takes next to its control socket (control.py)."""
        return lock_path(self.socket)

    def remove_files(self) -> None:
        """The control socket and its lock file, once our child is gone: a daemon removes
        both when it stops cleanly, a killed one cannot. Only if the lock names our child
        (the daemon writes its pid there before it touches the socket): files another
        daemon holds are left alone."""
        if self.proc is None or self.proc.poll() is None:
            return
        try:
            holder = self.lock.read_text().strip()
        except OSError:
            return  # no lock: our daemon never took it, or removed both itself
        if holder == str(self.proc.pid):
            self.socket.unlink(missing_ok=True)
            self.lock.unlink(missing_ok=True)

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def born_in(cgroups: tuple[str, ...], argv: list[str]) -> list[str]:
    """`argv` run by a shell that first moves itself into `cgroups` (the first one
    mandatory, the rest best effort), then execs it: the process is born there, so all
    its memory is charged to those cgroups from its first page."""
    if not cgroups:
        return argv
    lines = ["set -e"]
    for i, d in enumerate(cgroups):
        procs = shlex.quote(str(Path(d) / "cgroup.procs"))
        lines.append(f"echo $$ > {procs}" + ("" if i == 0 else " 2>/dev/null || true"))
    lines.append('exec "$@"')
    return ["/bin/sh", "-c", "\n".join(lines), "autoballoond", *argv]


def wait_for(what: str, check: Callable[[], object], timeout_s: float,
             alive: subprocess.Popen[bytes] | None = None, poll_s: float = 0.05) -> Any:
    """Poll `check` until it returns something true; RigError after the deadline."""
    end = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            raise RigError(f"autoballoond exited ({alive.returncode}) while waiting for {what}")
        if time.monotonic() > end:
            raise RigError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)
