"""The daemon's control socket: one JSON request per line, one JSON answer per line.

Requests: {"cmd": "show"}, {"cmd": "enable"|"disable", "vm": NAME or null (global)},
{"cmd": "policy", "name": NAME, "params": {NAME: VALUE} (optional)}. Every request gets
an answer; a bad one (not UTF-8, not JSON, nested too deeply, not an object, an unknown
command or key, a value of the wrong type, too long, too slow) gets
{"ok": false, "error": "..."}, and so does a request the daemon's handler fails on.

- Only root talks to it: the socket is 0600 from the moment it exists (bound inside a
  private 0700 directory next to it, then renamed into place).
- One daemon per socket: ``<socket>.lock`` next to it is flock'ed (and holds the pid)
  before the socket is touched; a second daemon fails with one line and leaves the first
  one's socket alone. A killed daemon's lock dies with it.
- Clients are served concurrently, a thread each, at most ``max_clients`` at a time (more
  are told the daemon is busy); each must send its whole request within ``timeout_s``
  and in at most MAX_REQUEST bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("autoballoond.control")

MAX_REQUEST = 16 * 1024
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with the terminating NUL
# The socket is bound as DIR/.XXXXXXXX/s (mkdtemp's 8 random characters) first.
PRIVATE_BIND_EXTRA = len("/.XXXXXXXX/s")
TIMEOUT_S = 5.0
MAX_CLIENTS = 4

Handler = Callable[[dict[str, Any]], dict[str, Any]]

#: The keys each command may carry.
COMMANDS: dict[str, frozenset[str]] = {
    "show": frozenset({"cmd"}),
    "enable": frozenset({"cmd", "vm"}),
    "disable": frozenset({"cmd", "vm"}),
    "policy": frozenset({"cmd", "name", "params"}),
}


class AlreadyRunning(OSError):
    """Another daemon holds the control socket's lock."""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_param_value(value: object) -> bool:
    scalar = (bool, int, float, str)
    return isinstance(value, scalar) or (
        isinstance(value, list) and all(isinstance(v, scalar) for v in value))


def check_request(request: object) -> str | None:
    """What is wrong with a decoded request (one line), or None if its shape is right."""
    if not isinstance(request, dict):
        return "request must be a JSON object"
    cmd = request.get("cmd")
    if not isinstance(cmd, str) or cmd not in COMMANDS:
        return f"unknown command {_short(cmd)}; known: {', '.join(COMMANDS)}"
    extra = sorted(set(request) - COMMANDS[cmd])
    if extra:
        return (f"{cmd}: unknown key {_short(extra[0])} "
                f"(allowed: {', '.join(sorted(COMMANDS[cmd]))})")
    if cmd in ("enable", "disable") and not isinstance(request.get("vm"), str | None):
        return f"{cmd}: vm must be a VM name or null (all VMs), got {_short(request['vm'])}"
    if cmd == "policy":
        if not isinstance(request.get("name"), str):
            return f"policy: name must be a policy name, got {_short(request.get('name'))}"
        params = request.get("params")
        if params is not None and not isinstance(params, dict):
            return f"policy: params must be an object of name: value, got {_short(params)}"
        for key, value in (params or {}).items():
            if not _is_param_value(value):
                return (f"policy: parameter {_short(key)} must be a number, string, boolean "
                        f"or a list of them, got {_short(value)}")
    return None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def answer(handler: Handler, line: bytes) -> dict[str, Any]:
    """Decode one request line and hand it to the daemon; never raises."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return {"ok": False, "error": "request is not UTF-8"}
    try:
        request = json.loads(text, parse_constant=_no_constant)
    except ValueError:
        return {"ok": False, "error": "request is not JSON"}
    except RecursionError:
        return {"ok": False, "error": "request is nested too deeply"}
    problem = check_request(request)
    if problem is not None:
        return {"ok": False, "error": problem}
    try:
        reply = handler(request)
    except Exception as e:
        log.exception("control request %s failed", _short(request))
        first = (str(e).splitlines() or [""])[0][:200]
        return {"ok": False, "error": f"internal error: {type(e).__name__}: {first}"}
    if not isinstance(reply, dict):  # pragma: no cover - a handler bug
        return {"ok": False, "error": "internal error: the handler gave no answer"}
    return reply


def encode(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, default=str).encode() + b"\n"


@dataclass
class InstanceLock:
    """An flock'ed file holding the pid of the one daemon that owns a control socket."""

    path: Path
    fd: int

    @classmethod
    def acquire(cls, path: Path) -> InstanceLock:
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                pid = holder if holder.isdigit() else "unknown"
                raise AlreadyRunning(f"another autoballoond (pid {pid}) holds {path}: stop it "
                                     "first, or give this one another control_socket") from None
            except BaseException:
                os.close(fd)
                raise
            # A daemon that was stopping may have removed the file we opened: hold the one
            # at the path, or a third daemon would lock a new file next to ours.
            try:
                st, fst = os.stat(path), os.fstat(fd)
                same = (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self.fd < 0:
            return
        self.path.unlink(missing_ok=True)  # while still held: see acquire()
        os.close(self.fd)
        self.fd = -1


def lock_path(socket_path: Path) -> Path:
    return socket_path.with_name(socket_path.name + ".lock")


def _check_length(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise OSError(f"control socket path {path} is longer than {MAX_SOCKET_PATH} bytes (a "
                      "unix socket limit): choose a shorter control_socket")
    limit = MAX_SOCKET_PATH - PRIVATE_BIND_EXTRA
    if len(os.fsencode(path.parent)) > limit:
        raise OSError(f"control socket directory {path.parent} is longer than {limit} bytes "
                      "(the socket is first bound in a private directory there, and a unix "
                      "socket path has at most 107): choose a shorter control_socket")


def bind_private(path: Path) -> socket.socket:
    """A listening-ready unix socket at ``path``, mode 0600 from the moment it exists:
    bound in a fresh 0700 directory next to it, then renamed over ``path``."""
    private = Path(tempfile.mkdtemp(prefix=".", dir=path.parent))
    tmp = private / "s"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(tmp))
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except BaseException:
        sock.close()
        raise
    finally:
        tmp.unlink(missing_ok=True)
        private.rmdir()
    return sock


class ControlServer:
    def __init__(self, path: Path, handler: Handler, timeout_s: float = TIMEOUT_S,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.path = path
        self.handler = handler
        self.timeout_s = timeout_s
        self.max_clients = max_clients
        self.sock: socket.socket | None = None
        self._lock: InstanceLock | None = None
        self._slots = threading.BoundedSemaphore(max_clients)
        self._acceptor: threading.Thread | None = None

    def start(self) -> None:
        """Take the lock, bind, serve; OSError (one line) if any of it fails."""
        _check_length(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = InstanceLock.acquire(lock_path(self.path))
        try:
            sock = bind_private(self.path)
            sock.listen(16)
        except BaseException:
            self._lock.release()
            self._lock = None
            raise
        self.sock = sock
        self._acceptor = threading.Thread(target=self._accept_loop, args=(sock,),
                                          name="control", daemon=True)
        self._acceptor.start()

    def _accept_loop(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError as e:
                if self.sock is not sock:
                    return  # closed by stop()
                log.warning("control socket accept failed: %s", e)  # e.g. out of fds
                time.sleep(0.1)
                continue
            if not self._slots.acquire(blocking=False):
                self._refuse(conn, f"busy: {self.max_clients} requests in progress, try again")
                continue
            try:
                threading.Thread(target=self._serve, args=(conn,), name="control-client",
                                 daemon=True).start()
            except RuntimeError:  # cannot start a thread
                self._slots.release()
                self._refuse(conn, "busy: cannot serve another request now, try again")

    @staticmethod
    def _refuse(conn: socket.socket, error: str) -> None:
        with conn:
            try:
                conn.settimeout(1.0)
                conn.sendall(encode({"ok": False, "error": error}))
            except OSError:
                pass

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                line, error = self._read_request(conn)
                reply = answer(self.handler, line) if error is None else {
                    "ok": False, "error": error}
                conn.settimeout(self.timeout_s)
                conn.sendall(encode(reply))
        except OSError:
            pass  # the client went away
        except Exception:  # pragma: no cover - answer() never raises; keep serving anyway
            log.exception("control client failed")
        finally:
            self._slots.release()

    def _read_request(self, conn: socket.socket) -> tuple[bytes, str | None]:
        """The first line (or everything up to EOF), or an error if it is too long or
        does not arrive within the timeout."""
        deadline = time.monotonic() + self.timeout_s
        buf = bytearray()
        while True:
            end = buf.find(b"\n")
            if end >= 0:
                line = bytes(buf[:end])
                break
            if len(buf) > MAX_REQUEST:
                return b"", f"request is longer than {MAX_REQUEST} bytes"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b"", f"no complete request within {self.timeout_s} s"
            conn.settimeout(remaining)
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                return b"", f"no complete request within {self.timeout_s} s"
            if not chunk:
                line = bytes(buf)
                break
            buf += chunk
        if len(line) > MAX_REQUEST:
            return b"", f"request is longer than {MAX_REQUEST} bytes"
        return line, None

    def stop(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the control thread
            sock.close()
            self.path.unlink(missing_ok=True)
        if self._acceptor is not None:
            self._acceptor.join(timeout=2.0)
            self._acceptor = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def request(path: Path, req: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
    """Send one request, return the answer (OSError if unreachable, ValueError if the
    answer is not JSON)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(str(path))
        refused: OSError | None = None
        try:
            s.sendall(json.dumps(req).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError) as e:
            refused = e  # a busy daemon answers and closes without reading: read that
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    if not buf and refused is not None:
        raise refused
    return json.loads(buf)
