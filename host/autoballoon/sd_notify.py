"""sd_notify(3), written out: the datagrams autoballoond sends to its service manager.

systemd (Type=notify) passes ``$NOTIFY_SOCKET``: an AF_UNIX datagram socket, a path
(``/run/systemd/notify``) or an abstract address (``@name``: a NUL first). Each message
is one datagram of ``KEY=VALUE`` lines: ``READY=1`` (started: libvirt connected and the
control socket listening), ``STATUS=...`` (one line for ``systemctl status``),
``WATCHDOG=1`` (alive) and ``STOPPING=1``. Without ``$NOTIFY_SOCKET`` (run by hand, or
by the rig) every call is a no-op.

The watchdog: with ``WatchdogSec=`` systemd sets ``$WATCHDOG_USEC`` (and
``$WATCHDOG_PID``, which must be ours: the variables were meant for another process
otherwise) and restarts the service when no ``WATCHDOG=1`` came for that long. The
daemon pings from its decision loop's own pass (``Notifier.watchdog``, called after each
pass), at most every half interval: a loop that hangs stops the pings, and systemd
restarts the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger("autoballoond")


def socket_address(value: str | None) -> bytes | None:
    """``$NOTIFY_SOCKET`` as an AF_UNIX address: a path, or ``@name`` as the abstract
    address NUL + name; None when unset or not an AF_UNIX address (vsock:...)."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + os.fsencode(value[1:])
    if value.startswith("/"):
        return os.fsencode(value)
    return None


def watchdog_interval_s(env: Mapping[str, str], pid: int) -> float | None:
    """The watchdog interval systemd expects pings within (``$WATCHDOG_USEC``), or None:
    no watchdog, a malformed value, or ``$WATCHDOG_PID`` naming another process."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if usec <= 0 or (owner and owner != str(pid)):
        return None
    return usec / 1e6


def one_line(text: str) -> str:
    """A value for a notification: one line (a newline would start another key)."""
    return " ".join(text.split())


@dataclass
class Notifier:
    """Sends notifications to ``address`` (None: a no-op); ``watchdog_s`` the interval
    (None: no watchdog). Used by the decision loop's thread only (the main thread, where
    the signal handler that sends ``stopping`` runs too)."""

    address: bytes | None
    watchdog_s: float | None = None
    clock: Callable[[], float] = time.monotonic
    last_ping: float | None = None
    ready_sent: bool = False
    _sock: socket.socket | None = field(default=None, repr=False)
    _failed: bool = field(default=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str], pid: int,
                 clock: Callable[[], float] = time.monotonic) -> Notifier:
        address = socket_address(env.get("NOTIFY_SOCKET"))
        return cls(address, watchdog_interval_s(env, pid) if address else None, clock)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str) -> bool:
        """One datagram of KEY=VALUE lines; False if not sent (no socket, or an error,
        logged once: the service manager not hearing us is no reason to stop)."""
        if self.address is None:
            return False
        data = "\n".join(f"{k}={one_line(v)}" for k, v in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX,
                                           socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(data, self.address)
        except OSError as e:
            if not self._failed:
                log.warning("cannot notify the service manager at %r: %s",
                            self.address, e.strerror or e)
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> None:
        """Started (once): READY=1 with a status line."""
        if not self.ready_sent:  # a failed send is tried again at the next call
            self.ready_sent = self.send(READY="1", STATUS=status) or self.address is None

    def status(self, status: str) -> None:
        self.send(STATUS=status)

    def watchdog(self) -> bool:
        """Ping if half the watchdog interval has passed since the last ping (the first
        call always pings); whether it did."""
        if self.watchdog_s is None:
            return False
        now = self.clock()
        if self.last_ping is not None and now - self.last_ping < self.watchdog_s / 2:
            return False
        self.last_ping = now
        return self.send(WATCHDOG="1")

    def stopping(self, status: str = "stopping") -> None:
        self.send(STOPPING="1", STATUS=status)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


__all__ = ["Notifier", "one_line", "socket_address", "watchdog_interval_s"]
