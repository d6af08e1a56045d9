"""The control socket: every request gets a JSON answer, clients are served concurrently,
the socket is never reachable by others, and one daemon at a time owns it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from autoballoon import control
from autoballoon.control import ControlServer, answer, request


def show_only(req: dict) -> dict:
    """A handler as strict as the daemon's: it indexes and hashes what it is given."""
    if req["cmd"] == "show":
        return {"ok": True, "vms": {}}
    if req["cmd"] in ("enable", "disable"):
        return {"ok": req.get("vm") in {"vm1": 1}}
    raise RuntimeError("boom")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlServer]:
    srv = ControlServer(tmp_path / "c.sock", show_only, timeout_s=1.0)
    srv.start()
    yield srv
    srv.stop()


def raw(path: Path, data: bytes, timeout_s: float = 5.0) -> dict:
    """Send raw bytes, read one answer line (a server closing early is fine)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(str(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


MALFORMED = {
    "deep-array": b"[" * 100_000 + b"\n",
    "deep-object": b'{"cmd": ' * 50_000 + b"\n",
    "vm-list": b'{"cmd": "enable", "vm": ["x"]}\n',  # unhashable where a name belongs
    "name-object": b'{"cmd": "policy", "name": {"a": 1}}\n',
    "cmd-list": b'{"cmd": ["show"]}\n',
    "params-list": b'{"cmd": "policy", "name": "auto", "params": [1]}\n',
    "unknown-key": b'{"cmd": "show", "extra": 1}\n',
    "unknown-cmd": b'{"cmd": "frobnicate"}\n',
    "array": b"[1, 2]\n", "null": b"null\n", "string": b'"show"\n', "number": b"3\n",
    "bad-utf8": b"\xff\xfe\xfd{}\n", "bad-utf8-in-string": b'{"cmd": "\xc3\x28"}\n',
    "empty": b"\n", "garbage": b"garbage\n",
}


@pytest.mark.parametrize("line", MALFORMED.values(), ids=MALFORMED.keys())
def test_every_malformed_request_gets_an_error_answer(line):
    reply = answer(show_only, line.rstrip(b"\n"))
    assert reply["ok"] is False and isinstance(reply["error"], str)
    assert "\n" not in reply["error"] and len(reply["error"]) < 300


def test_a_failing_handler_is_an_error_answer_not_a_dead_thread(server):
    for line in MALFORMED.values():
        assert raw(server.path, line)["ok"] is False
    assert raw(server.path, b'{"cmd": "policy", "name": "auto"}\n') == {
        "ok": False, "error": "internal error: RuntimeError: boom"}
    assert request(server.path, {"cmd": "show"}, timeout_s=2) == {"ok": True, "vms": {}}


def test_a_huge_request_is_refused_with_an_answer(server):
    reply = raw(server.path, b'{"cmd": "show", "pad": "' + b"x" * (1 << 20) + b'"}\n')
    assert reply["ok"] is False
    assert f"longer than {control.MAX_REQUEST} bytes" in reply["error"]
    assert request(server.path, {"cmd": "show"}, timeout_s=2)["ok"] is True


def test_a_request_split_over_several_writes_is_read_whole(server):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect(str(server.path))
        s.sendall(b'{"cmd": ')
        time.sleep(0.1)
        s.sendall(b'"show"}\n')
        assert json.loads(s.recv(65536)) == {"ok": True, "vms": {}}


def test_a_silent_client_does_not_block_others_and_gets_a_timeout_answer(server):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.settimeout(5)
        silent.connect(str(server.path))
        t0 = time.monotonic()
        assert request(server.path, {"cmd": "show"}, timeout_s=0.5)["ok"] is True
        assert time.monotonic() - t0 < 0.5
        reply = json.loads(silent.recv(65536))
    assert reply == {"ok": False, "error": "no complete request within 1.0 s"}


def test_clients_beyond_the_limit_are_told_the_daemon_is_busy(tmp_path):
    srv = ControlServer(tmp_path / "c.sock", show_only, timeout_s=2.0, max_clients=2)
    srv.start()
    held = []
    try:
        for _ in range(2):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(srv.path))
            held.append(s)
        time.sleep(0.2)  # both accepted and being served
        reply = request(srv.path, {"cmd": "show"}, timeout_s=1)
        assert reply["ok"] is False and "busy" in reply["error"]
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 3
    while request(srv.path, {"cmd": "show"}, timeout_s=1)["ok"] is not True:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    srv.stop()


def test_the_socket_is_never_reachable_by_others(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o755)  # like /run/autoballoon: others may traverse it
    seen: list[tuple[int, int]] = []
    real = socket.socket

    class Spy(real):
        def bind(self, address: str) -> None:
            super().bind(address)
            p = Path(address)
            seen.append((stat.S_IMODE(p.stat().st_mode), stat.S_IMODE(p.parent.stat().st_mode)))

    monkeypatch.setattr(control.socket, "socket", Spy)
    old = os.umask(0o022)
    try:
        srv = ControlServer(run / "c.sock", show_only)
        srv.start()
    finally:
        os.umask(old)
    try:
        assert len(seen) == 1
        sock_mode, dir_mode = seen[0]
        # at bind time either the socket or the directory it is in shuts others out
        assert not sock_mode & 0o077 or not dir_mode & 0o077, oct(sock_mode)
        assert stat.S_IMODE((run / "c.sock").stat().st_mode) == 0o600
        assert sorted(p.name for p in run.iterdir()) == ["c.sock", "c.sock.lock"]
        assert stat.S_IMODE((run / "c.sock.lock").stat().st_mode) & 0o077 == 0
    finally:
        srv.stop()
    assert list(run.iterdir()) == []


def test_a_second_server_leaves_the_first_ones_socket_alone(server):
    second = ControlServer(server.path, show_only)
    with pytest.raises(OSError, match=r"another autoballoond \(pid \d+\) holds .*c\.sock\.lock"):
        second.start()
    assert request(server.path, {"cmd": "show"}, timeout_s=2)["ok"] is True


def test_a_stale_socket_of_a_dead_daemon_is_replaced(tmp_path):
    path = tmp_path / "c.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    (tmp_path / "c.sock.lock").write_text("99999999\n")  # a killed daemon's lock file
    srv = ControlServer(path, show_only)
    srv.start()
    try:
        assert request(path, {"cmd": "show"}, timeout_s=2)["ok"] is True
    finally:
        srv.stop()


def test_a_second_daemon_exits_2_with_one_line(server, capsys):
    from autoballoon import daemon

    # If the daemon got past the lock it would connect to libvirt: make that fail loudly.
    def must_not_run(_self: object) -> None:
        raise AssertionError("the second daemon started")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(daemon.Daemon, "run", must_not_run)
        mp.setattr(daemon.signal, "signal", lambda *_: None)  # keep pytest's handlers
        rc = daemon.main(["--no-config", "--control-socket", str(server.path),
                          "--pressure", "none", "--uri", "test:///default"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "another autoballoond" in err, err
    assert request(server.path, {"cmd": "show"}, timeout_s=2)["ok"] is True


def test_concurrent_clients_all_get_answers(server):
    replies: list[dict] = []

    def ask() -> None:
        replies.append(request(server.path, {"cmd": "show"}, timeout_s=3))

    threads = [threading.Thread(target=ask) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(replies) == 12
    assert all(r["ok"] is True or "busy" in r["error"] for r in replies)


def test_ctl_show_names_a_balloon_no_target_explains(tmp_path, capsys):
    from autoballoon import ctl

    snapshot = {"ok": True, "policy": "auto", "enabled": True, "dropped_inputs": 0,
                "last_host_level": None, "vms": {
                    "a": {"max_mib": 1024, "floor_mib": 128, "target_mib": 992,
                          "actual_mib": 400, "auto_inflated_mib": 32,
                          "last_guest_level": None, "enabled": True, "manual": False,
                          "deviation": "below"},
                    "b": {"max_mib": 1024, "floor_mib": 128, "target_mib": 650,
                          "actual_mib": 650, "auto_inflated_mib": 0,
                          "last_guest_level": None, "enabled": True, "manual": True,
                          "deviation": None}}}
    srv = ControlServer(tmp_path / "c.sock", lambda _req: snapshot, timeout_s=1.0)
    srv.start()
    try:
        assert ctl.main(["--socket", str(srv.path), "show"]) == 0
    finally:
        srv.stop()
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[0] == "a" and lines[2].endswith("on, balloon below its targets")
    assert lines[3].split()[0] == "b" and lines[3].endswith("manual")
