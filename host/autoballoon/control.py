"""The daemon's control socket: one JSON request per line, one JSON answer per line.

Requests: {"cmd": "show"}, {"cmd": "enable"|"disable", "vm": NAME or null (global)},
{"cmd": "policy", "name": NAME}. The socket is root-only (0600).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_REQUEST = 4096
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with the terminating NUL

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def answer(handler: Handler, line: bytes) -> dict[str, Any]:
    """Decode one request line and hand it to the daemon; never raises on bad input."""
    try:
        request = json.loads(line)
    except ValueError:
        return {"ok": False, "error": "request is not JSON"}
    if not isinstance(request, dict):
        return {"ok": False, "error": "request must be a JSON object"}
    return handler(request)


class ControlServer:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.sock: socket.socket | None = None

    def start(self) -> None:
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise OSError(f"control socket path {self.path} is longer than "
                          f"{MAX_SOCKET_PATH} bytes (a unix socket limit): choose a shorter "
                          "control_socket")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        sock.listen(8)
        self.sock = sock
        threading.Thread(target=self._serve, name="control", daemon=True).start()

    def _serve(self) -> None:
        assert self.sock is not None
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed by stop()
            with conn:
                conn.settimeout(5)
                try:
                    data = conn.recv(MAX_REQUEST)
                    reply = answer(self.handler, data.split(b"\n")[0])
                    conn.sendall(json.dumps(reply).encode() + b"\n")
                except OSError:
                    continue

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.path.unlink(missing_ok=True)


def request(path: Path, req: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(str(path))
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)
