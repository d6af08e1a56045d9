"""The rig's autoballoond child (rig/bench/daemon_proc.py): stopping it leaves none of its
files behind, and never removes another daemon's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rig.bench import daemon_proc

# Takes the lock and binds the socket as autoballoond does, then waits to be killed: the
# default SIGTERM action leaves both files behind, as a killed daemon does.
CHILD = """
import sys, time
from pathlib import Path
from autoballoon.control import ControlServer
ControlServer(Path(sys.argv[1]), lambda request: {"ok": True}).start()
print("ready", flush=True)
time.sleep(60)
"""


def daemon(tmp_path: Path) -> daemon_proc.DaemonProcess:
    return daemon_proc.DaemonProcess(tmp_path / "work", "auto", None, socket=tmp_path / "d.sock")


def test_a_killed_daemons_socket_and_lock_file_are_both_removed(tmp_path: Path):
    d = daemon(tmp_path)
    d.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(d.socket)],
                              stdout=subprocess.PIPE)
    assert d.proc.stdout is not None and d.proc.stdout.readline() == b"ready\n"
    d.proc.stdout.close()
    assert d.socket.exists() and d.lock == tmp_path / "d.sock.lock"
    assert d.lock.read_text().strip() == str(d.proc.pid)
    assert d.stop(timeout_s=10) == -15
    assert not d.socket.exists() and not d.lock.exists()


def test_files_another_daemon_holds_are_left_alone(tmp_path: Path):
    d = daemon(tmp_path)
    d.proc = subprocess.Popen(["/bin/true"])  # ours exited (say, the lock was taken)
    d.proc.wait()
    d.socket.write_text("")
    d.lock.write_text(f"{d.proc.pid + 1}\n")
    d.stop()
    assert d.socket.exists() and d.lock.exists()


def test_nothing_is_removed_for_a_daemon_never_started(tmp_path: Path):
    d = daemon(tmp_path)
    d.socket.write_text("")
    d.lock.write_text("1\n")
    assert d.stop() is None
    assert d.socket.exists() and d.lock.exists()
