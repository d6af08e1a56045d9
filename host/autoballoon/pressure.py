"""Host memory pressure sources: cgroup v1 vmpressure and PSI triggers.

A :class:`PressureSource` opens one kernel notification fd per configured level (an
eventfd registered on ``memory.pressure_level``, or a PSI trigger fd), then waits on all
of them plus a stop eventfd in one ``poll()``. Each wake-up is one batch: the source
reports the *highest* level that fired in it as one :class:`HostPressureEvent` (a
vmpressure "low" listener also fires for medium/critical, and several PSI triggers can
fire together). Nothing is queued, so memory stays bounded however fast events come.

Use from a daemon thread::

    src = PressureSource(PressureConfig(kind="psi-host"))
    src.open()
    t = threading.Thread(target=src.run, args=(on_event,), daemon=True)
    t.start()
    ...
    src.close()   # wakes the loop, waits for it, closes every fd

Every fd is closed on close(), when the loop ends, and when open() fails half-way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from autoballoon.pressure_config import (
    LEVEL_RANK,
    PressureConfig,
    vmpressure_registration,
)

Clock = Callable[[], float]


class PressureSourceError(RuntimeError):
    """Opening or reading a pressure source failed; the message says what to do."""


@dataclass(frozen=True, slots=True)
class HostPressureEvent:
    """One batch of host pressure: ``t`` is time.monotonic() at arrival."""

    t: float
    level: str
    source: str


def highest_level(fired: Iterable[str]) -> str | None:
    """The highest-ranked level among those that fired, or None if none did."""
    best: str | None = None
    for lv in fired:
        if best is None or LEVEL_RANK[lv] > LEVEL_RANK[best]:
            best = lv
    return best


def levels_fired(
    ready: Iterable[tuple[int, int]], fd_levels: dict[int, str], wanted_mask: int
) -> tuple[list[str], list[int]]:
    """From poll() results, the levels whose fd has ``wanted_mask`` and the fds in error.

    ``ready`` is poll()'s list of (fd, revents); fds not in ``fd_levels`` (e.g. the stop
    fd) are ignored. An fd reporting POLLERR/POLLHUP/POLLNVAL without the wanted bit is
    returned as an error (its cgroup was removed, or the fd is gone).
    """
    bad = select.POLLERR | select.POLLHUP | select.POLLNVAL
    fired: list[str] = []
    errors: list[int] = []
    for fd, rev in ready:
        lv = fd_levels.get(fd)
        if lv is None:
            continue
        if rev & wanted_mask:
            fired.append(lv)
        elif rev & bad:
            errors.append(fd)
    return fired, errors


def should_report(
    last: HostPressureEvent | None, level: str, t: float, min_interval_s: float
) -> bool:
    """Rate limit: report a higher level at once, the same or a lower one only after
    ``min_interval_s`` since the last reported event."""
    if last is None or min_interval_s <= 0:
        return True
    return LEVEL_RANK[level] > LEVEL_RANK[last.level] or t - last.t >= min_interval_s


def describe_source(config: PressureConfig) -> str:
    """The ``source`` string events carry, e.g. "vmpressure:/sys/fs/cgroup/memory/x"."""
    path = config.psi_file if config.kind != "vmpressure" else config.resolved_path
    return f"{config.kind}:{path}"


@dataclass
class PressureSource:
    """A host pressure source built from a :class:`PressureConfig`.

    ``clock`` stamps events (time.monotonic by default). Thread model: one thread runs
    :meth:`run` / :meth:`events` / :meth:`wait`; any thread may call :meth:`stop` or
    :meth:`close`.
    """

    config: PressureConfig
    clock: Clock = time.monotonic
    _fd_levels: dict[int, str] = field(default_factory=dict, init=False, repr=False)
    _extra_fds: list[int] = field(default_factory=list, init=False, repr=False)
    _stop_fd: int = field(default=-1, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _idle: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _stopping: bool = field(default=False, init=False, repr=False)
    source: str = field(default="", init=False)
    _last: HostPressureEvent | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._idle.set()
        self.source = describe_source(self.config)

    # -- lifecycle ---------------------------------------------------------------

    def open(self) -> PressureSource:
        """Register one kernel notification per level. Idempotent; closes all on error."""
        with self._lock:
            if self._stop_fd >= 0:
                return self
            self._stopping = False
            try:
                self._stop_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
                if self.config.kind == "vmpressure":
                    self._open_vmpressure()
                else:
                    self._open_psi()
            except BaseException:
                self._close_fds()
                raise
        return self

    def __enter__(self) -> PressureSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """Ask a running loop to return (thread-safe, idempotent)."""
        with self._lock:
            self._stopping = True
            if self._stop_fd >= 0:
                os.eventfd_write(self._stop_fd, 1)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop, wait up to ``timeout`` s for it to leave poll(), close every fd."""
        self.stop()
        if not self._idle.wait(timeout):
            raise PressureSourceError(
                f"pressure loop did not stop within {timeout} s: is its callback blocking?"
            )
        with self._lock:
            self._close_fds()

    @property
    def is_open(self) -> bool:
        return self._stop_fd >= 0

    def fds(self) -> list[int]:
        """Every fd this source holds (for tests and leak checks)."""
        extra = [self._stop_fd] if self._stop_fd >= 0 else []
        return [*self._fd_levels, *self._extra_fds, *extra]

    # -- waiting -----------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> HostPressureEvent | None:
        """One poll over every fd. Returns an event, or None on timeout, stop, or when the
        batch was rate-limited (``min_interval_s``) or drained nothing."""
        with self._lock:
            if self._stopping:
                return None
            if self._stop_fd < 0:
                raise PressureSourceError("pressure source is not open: call open() first")
            self._idle.clear()
        try:
            return self._wait_once(timeout)
        finally:
            self._idle.set()

    def events(self) -> Iterator[HostPressureEvent]:
        """Yield events until stop()/close(); closes every fd when it ends."""
        try:
            while not self._stopping:
                ev = self.wait(None)
                if ev is not None:
                    yield ev
        finally:
            with self._lock:
                self._close_fds()

    def run(self, on_event: Callable[[HostPressureEvent], None]) -> None:
        """Call ``on_event`` for each event until stop()/close(); for a daemon thread."""
        for ev in self.events():
            on_event(ev)

    # -- internals ---------------------------------------------------------------

    def _wait_once(self, timeout: float | None) -> HostPressureEvent | None:
        psi = self.config.kind != "vmpressure"
        wanted = select.POLLPRI if psi else select.POLLIN
        poller = select.poll()
        poller.register(self._stop_fd, select.POLLIN)
        for fd in self._fd_levels:
            poller.register(fd, wanted)
        ms = None if timeout is None else max(0, int(timeout * 1000))
        while True:
            try:
                ready = poller.poll(ms)
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries already
                continue
        t = self.clock()
        if any(fd == self._stop_fd for fd, _ in ready):
            return None
        fired, errors = levels_fired(ready, self._fd_levels, wanted)
        if errors:
            raise PressureSourceError(
                f"{self.source}: notification fd reported an error (cgroup removed?): "
                "re-open the source once the cgroup exists again"
            )
        if not psi:
            fired = [lv for lv in fired if self._drain_eventfd(self._level_fd(lv))]
        level = highest_level(fired)
        if level is None or not should_report(self._last, level, t, self.config.min_interval_s):
            return None
        self._last = HostPressureEvent(t, level, self.source)
        return self._last

    def _level_fd(self, level: str) -> int:
        return next(fd for fd, lv in self._fd_levels.items() if lv == level)

    @staticmethod
    def _drain_eventfd(fd: int) -> bool:
        try:
            return os.eventfd_read(fd) > 0
        except BlockingIOError:
            return False

    def _open_vmpressure(self) -> None:
        cg = self.config.resolved_path
        level_file = cg / "memory.pressure_level"
        control = cg / "cgroup.event_control"
        if not level_file.exists() or not control.exists():
            raise PressureSourceError(
                f"{cg} has no memory.pressure_level/cgroup.event_control: set path to a "
                "cgroup v1 memory cgroup (or use kind psi-cgroup/psi-host)"
            )
        level_fd = _open(level_file, os.O_RDONLY)
        self._extra_fds.append(level_fd)
        for lv in self.config.active_levels:
            efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self._fd_levels[efd] = lv
            line = vmpressure_registration(efd, level_fd, lv, self.config.vmpressure_mode)
            ctl = _open(control, os.O_WRONLY)
            try:
                os.write(ctl, line.encode())
            except OSError as e:
                raise PressureSourceError(
                    f"registering vmpressure {lv!r} on {control} failed ({e.strerror}): "
                    "check the path is a v1 memory cgroup and vmpressure_mode is supported"
                ) from None
            finally:
                os.close(ctl)

    def _open_psi(self) -> None:
        path = self.config.psi_file
        if not path.exists():
            hint = (
                "boot with psi=1 or use kind vmpressure"
                if self.config.kind == "psi-host"
                else "set path to a cgroup v2 directory (or use kind psi-host)"
            )
            raise PressureSourceError(f"{path} does not exist: {hint}")
        for lv, trigger in self.config.psi_triggers().items():
            fd = _open(path, os.O_RDWR | os.O_NONBLOCK)
            self._fd_levels[fd] = lv
            try:
                os.write(fd, trigger.encode() + b"\0")
            except OSError as e:
                if e.errno == errno.EINVAL:
                    raise PressureSourceError(
                        f"PSI trigger {trigger!r} rejected by {path} (EINVAL): window must be "
                        "0.5-10 s, a multiple of 2 s without CAP_SYS_RESOURCE, stall <= window"
                    ) from None
                raise PressureSourceError(
                    f"PSI trigger {trigger!r} on {path} failed ({e.strerror}): "
                    "check permissions (needs write access) and that PSI is enabled"
                ) from None

    def _close_fds(self) -> None:
        """Close every fd; caller holds the lock (or is single-threaded)."""
        for fd in [*self._fd_levels, *self._extra_fds, self._stop_fd]:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd_levels.clear()
        self._extra_fds.clear()
        self._stop_fd = -1


def _open(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError as e:
        raise PressureSourceError(
            f"cannot open {path} ({e.strerror}): check it exists and the daemon runs as root"
        ) from None
