"""sd_notify written by us, against a real AF_UNIX datagram socket bound where
$NOTIFY_SOCKET points (a path in a tmp dir, or an abstract '@' address): what goes out,
when READY=1 is due, and that WATCHDOG=1 comes from the decision loop's passes only, at
half the interval, by an injected clock (a stalled loop stops the pings)."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from autoballoon.sd_notify import Notifier, one_line, socket_address, watchdog_interval_s
from autoballoon.service import PassHook, status_line
from autoballoon.snapshot import Snapshot

from tests.unit.autoballoon.fake_libvirt import FakeDomain, FakeHost, Harness

PID = os.getpid()


class Listener:
    """The service manager's end: a datagram socket, read without waiting."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value
        sock.setblocking(False)

    def messages(self) -> list[dict[str, str]]:
        """Every datagram received so far (a datagram sent is already queued here)."""
        out = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return out
            out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))

    def wait_message(self, timeout_s: float = 5.0) -> dict[str, str]:
        self.sock.settimeout(timeout_s)
        try:
            data = self.sock.recv(4096)
        finally:
            self.sock.setblocking(False)
        return dict(line.split("=", 1) for line in data.decode().split("\n"))

    def env(self, watchdog_usec: int | None = None, pid: int | None = PID) -> dict[str, str]:
        env = {"NOTIFY_SOCKET": self.env_value}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
            if pid is not None:
                env["WATCHDOG_PID"] = str(pid)
        return env


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield Listener(sock, str(path))
    sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"autoballoon-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    yield Listener(sock, "@" + name)
    sock.close()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the environment ---------------------------------------------------------------------

def test_notify_socket_addresses():
    assert socket_address("/run/systemd/notify") == b"/run/systemd/notify"
    assert socket_address("@foo/bar") == b"\0foo/bar"
    assert socket_address(None) is None and socket_address("") is None
    assert socket_address("vsock:2:1234") is None  # not AF_UNIX: not ours to speak


@pytest.mark.parametrize(("env", "expected"), [
    ({"WATCHDOG_USEC": "30000000"}, 30.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(PID)}, 30.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(PID + 1)}, None),  # another's
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_the_watchdog_interval_is_ours_only(env, expected):
    assert watchdog_interval_s(env, PID) == expected


def test_without_notify_socket_everything_is_a_no_op():
    n = Notifier.from_env({"WATCHDOG_USEC": "1000000"}, PID)
    assert not n.enabled and n.watchdog_s is None
    assert n.send(READY="1") is False
    n.ready("x")
    n.watchdog()
    n.stopping()
    n.close()


# -- the datagrams -----------------------------------------------------------------------

@pytest.mark.parametrize("which", ["listener", "abstract_listener"])
def test_ready_status_watchdog_stopping_reach_the_socket(which, request):
    lst: Listener = request.getfixturevalue(which)
    n = Notifier.from_env(lst.env(watchdog_usec=2_000_000), PID, Clock())
    n.status("connecting to libvirt at qemu:///system")
    n.ready("managing 2 VMs\non two lines")  # a newline would start another key
    n.ready("again")  # once only
    assert n.watchdog()
    n.stopping()
    n.close()
    assert lst.messages() == [
        {"STATUS": "connecting to libvirt at qemu:///system"},
        {"READY": "1", "STATUS": "managing 2 VMs on two lines"},
        {"WATCHDOG": "1"},
        {"STOPPING": "1", "STATUS": "stopping"},
    ]


def test_a_vanished_socket_is_logged_once_and_never_raised(tmp_path, caplog):
    n = Notifier(os.fsencode(tmp_path / "gone"))
    assert n.send(STATUS="a") is False and n.send(STATUS="b") is False
    assert len([r for r in caplog.records if "cannot notify" in r.getMessage()]) == 1
    n.ready("x")
    assert not n.ready_sent  # tried again at the next pass


def test_pings_at_half_the_interval_by_the_clock(listener):
    clock = Clock()
    n = Notifier.from_env(listener.env(watchdog_usec=30_000_000), PID, clock)
    sent = []
    for _ in range(61):  # a pass every second for a minute
        sent.append(n.watchdog())
        clock.now += 1.0
    assert [i for i, s in enumerate(sent) if s] == [0, 15, 30, 45, 60]
    assert len(listener.messages()) == 5


def test_no_pings_when_watchdog_pid_is_another_process(listener):
    n = Notifier.from_env(listener.env(watchdog_usec=30_000_000, pid=PID + 1), PID, Clock())
    assert n.watchdog_s is None and not n.watchdog()
    assert listener.messages() == []


def test_one_line():
    assert one_line(" a\nb\r\n c ") == "a b c"


# -- from the decision loop --------------------------------------------------------------

def hooked(listener: Listener, host: FakeHost, watchdog_usec: int = 30_000_000
           ) -> tuple[Harness, Notifier]:
    h = Harness(host)
    n = Notifier.from_env(listener.env(watchdog_usec=watchdog_usec), PID, h.clock)
    h.daemon.after_pass = PassHook(h.daemon, n, "qemu:///test")
    return h, n


def test_ready_only_once_libvirt_is_connected(listener):
    host = FakeHost.of(FakeDomain("a"))
    host.reachable = False
    h, n = hooked(listener, host)
    h.daemon.step(0)
    msgs = listener.messages()
    assert {"WATCHDOG": "1"} in msgs  # alive, though not ready
    assert {"STATUS": "connecting to libvirt at qemu:///test"} in msgs
    assert not any("READY" in m for m in msgs)
    host.reachable = True
    h.advance(1.0)  # past the reconnect back-off
    msgs = listener.messages()
    assert [m for m in msgs if "READY" in m] == [
        {"READY": "1", "STATUS": "managing 1 VM on qemu:///test with policy seed"}]
    h.advance(1.0)
    assert not any("READY" in m for m in listener.messages())
    host.drop_connection(reachable=False)
    h.advance(1.0)
    assert {"STATUS": "libvirt at qemu:///test lost: reconnecting"} in listener.messages()


def test_the_loop_pings_while_it_passes_and_not_while_it_hangs(listener):
    host = FakeHost.of(FakeDomain("a"))
    h, n = hooked(listener, host)
    clock = h.clock
    h.settle()
    assert {"WATCHDOG": "1"} in listener.messages()
    pings = 0
    for _ in range(40):  # 40 s of passes, one a second: a ping every 15 s
        h.advance(1.0)
        pings += sum(m == {"WATCHDOG": "1"} for m in listener.messages())
    assert pings == 2  # at 15 s and 30 s (the loop passes several times per second)

    # libvirtd goes away and the reconnect hangs in libvirt.open: the loop stalls
    adapter = host.adapter
    entered, release, done = threading.Event(), threading.Event(), threading.Event()
    real_connect = adapter.connect

    def hung_connect() -> list:
        entered.set()
        assert release.wait(10)
        return real_connect()

    adapter.connect = hung_connect  # type: ignore[method-assign]
    host.drop_connection()

    def run() -> None:
        while not done.is_set():
            h.daemon.step(0.01)

    loop = threading.Thread(target=run, daemon=True)
    loop.start()
    assert entered.wait(5)
    assert {"WATCHDOG": "1"} not in listener.messages()  # the pass before: not due yet
    clock.now += 120.0  # four watchdog intervals without a pass
    assert listener.messages() == []  # nothing pings for a stalled loop: systemd restarts it
    release.set()  # the loop gets going again: its next pass pings at once
    assert listener.wait_message() == {"WATCHDOG": "1"}
    done.set()
    loop.join(5)


def test_status_line():
    snap = Snapshot("auto", True, 0, None, {})
    assert status_line(False, False, snap, "u") == "connecting to libvirt at u"
    assert status_line(False, True, snap, "u") == "libvirt at u lost: reconnecting"
    assert status_line(True, True, snap, "u") == "managing 0 VMs on u with policy auto"
    off = Snapshot("seed", False, 0, None, {})
    assert status_line(True, True, off, "u").endswith("(automation disabled)")
