"""Prometheus metrics of autoballoond: from the snapshot the loop publishes, and counts.

What they show (``families``, a pure function, in a ``CollectorRegistry`` of their own,
never prometheus_client's global one):

- per VM (label ``vm``): ``autoballoon_vm_{target,actual,max,taken}_mib`` (taken = what
  automation took), ``autoballoon_vm_enabled`` and ``autoballoon_vm_manual`` (0/1), and
  the counters ``autoballoon_vm_pressure_events_total`` (its guest's pressure messages, by
  ``level``), ``autoballoon_vm_commands_total`` (setMemory calls made) and
  ``autoballoon_vm_command_failures_total``; a VM's counters start at 0 when it is added
  (each boot is a new VM) and go when it does;
- the host: ``autoballoon_host_free_mib`` (HostMemory, once read),
  ``autoballoon_host_pressure_level`` (1 for the last level seen, by ``level``) and
  ``autoballoon_host_pressure_events_total`` (by ``level``);
- the daemon: ``autoballoon_enabled``, ``autoballoon_policy_info`` (label ``policy``) and
  ``autoballoon_dropped_inputs_total``.

The counts come from the timeline's records (``CountingTimeline``: every command,
failed command and input goes through it, written or not), so the loop needs nothing
more. ``Exporter`` publishes them at most once per second, off the loop: to a textfile
for node_exporter's textfile collector (written whole to a temporary file, then renamed
over the old one) and to the HTTP server, which renders the last state published.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from autoballoon.events import GUEST_LEVELS, HOST_LEVELS
from autoballoon.snapshot import Snapshot
from autoballoon.timeline import Timeline

log = logging.getLogger("autoballoond")

#: The textfile is rewritten at most this often.
MIN_INTERVAL_S = 1.0


@dataclass(frozen=True)
class VmCounts:
    commands: int = 0
    failures: int = 0
    #: guest pressure messages by level
    pressure: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Counts:
    vms: Mapping[str, VmCounts] = field(default_factory=dict)
    host_pressure: Mapping[str, int] = field(default_factory=dict)


@dataclass
class Tally:
    """The counters, kept from timeline records (``record``); ``counts`` copies them."""

    commands: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    pressure: dict[str, dict[str, int]] = field(default_factory=dict)
    host_pressure: dict[str, int] = field(default_factory=dict)

    def record(self, kind: str, fields: Mapping[str, Any]) -> None:
        vm = fields.get("vm")
        if kind in ("command", "command-failed") and isinstance(vm, str):
            self.commands[vm] = self.commands.get(vm, 0) + 1
            if kind == "command-failed":
                self.failures[vm] = self.failures.get(vm, 0) + 1
        if kind != "input":
            return
        event, level = fields.get("event"), fields.get("level")
        if event == "GuestPressure" and isinstance(vm, str) and level in GUEST_LEVELS:
            messages = fields.get("messages", 1)
            by_level = self.pressure.setdefault(vm, {})
            by_level[level] = by_level.get(level, 0) + (
                messages if isinstance(messages, int) and messages > 0 else 1)
        elif event == "HostPressure" and level in HOST_LEVELS:
            self.host_pressure[level] = self.host_pressure.get(level, 0) + 1
        elif event in ("VmAdded", "VmRemoved"):  # a new boot counts from 0
            name = vm.get("name") if isinstance(vm, dict) else vm
            if isinstance(name, str):
                self.commands.pop(name, None)
                self.failures.pop(name, None)
                self.pressure.pop(name, None)

    def counts(self) -> Counts:
        names = self.commands.keys() | self.pressure.keys()
        return Counts({n: VmCounts(self.commands.get(n, 0), self.failures.get(n, 0),
                                   dict(self.pressure.get(n, {}))) for n in names},
                      dict(self.host_pressure))


@dataclass
class CountingTimeline(Timeline):
    """A timeline that also counts its records for the metrics (whether it writes them
    or not); counted under the timeline's lock (the pressure thread writes too)."""

    tally: Tally = field(default_factory=Tally)

    @property
    def active(self) -> bool:
        return True  # every record is counted

    def write(self, kind: str, **fields: Any) -> None:
        with self.lock:
            self.tally.record(kind, fields)
        super().write(kind, **fields)

    def counts(self) -> Counts:
        with self.lock:
            return self.tally.counts()


# -- the pure part ----------------------------------------------------------------------

def _vm_gauge(name: str, doc: str, values: Iterable[tuple[str, float | None]]
              ) -> GaugeMetricFamily:
    g = GaugeMetricFamily(f"autoballoon_vm_{name}", doc, labels=["vm"])
    for vm, value in values:
        if value is not None:
            g.add_metric([vm], value)
    return g


def families(snapshot: Snapshot, counts: Counts) -> list[Metric]:
    """The metrics of one published snapshot and the counts at that time."""
    vms = sorted(snapshot.vms.items())
    out: list[Metric] = [
        _vm_gauge("target_mib", "Balloon target (MiB): the guest's memory size the daemon "
                  "wants", ((n, v.target_mib) for n, v in vms)),
        _vm_gauge("actual_mib", "Balloon size (MiB) as the guest last reported it",
                  ((n, v.actual_mib) for n, v in vms)),
        _vm_gauge("max_mib", "The VM's maximum memory (MiB)", ((n, v.max_mib) for n, v in vms)),
        _vm_gauge("taken_mib", "Memory (MiB) automation took from the VM and may give back",
                  ((n, v.auto_inflated_mib) for n, v in vms)),
        _vm_gauge("enabled", "1 if automation is enabled for the VM",
                  ((n, int(v.enabled)) for n, v in vms)),
        _vm_gauge("manual", "1 if the VM is under manual control (an operator's target)",
                  ((n, int(v.manual)) for n, v in vms)),
    ]
    events = CounterMetricFamily("autoballoon_vm_pressure_events",
                                 "Guest pressure messages by level", labels=["vm", "level"])
    commands = CounterMetricFamily("autoballoon_vm_commands",
                                   "Balloon targets sent to libvirt (setMemory)", labels=["vm"])
    failures = CounterMetricFamily("autoballoon_vm_command_failures",
                                   "Balloon targets libvirt refused or that failed",
                                   labels=["vm"])
    for name, _view in vms:
        c = counts.vms.get(name, VmCounts())
        for level in GUEST_LEVELS:
            events.add_metric([name, level], c.pressure.get(level, 0))
        commands.add_metric([name], c.commands)
        failures.add_metric([name], c.failures)
    out += [events, commands, failures]
    free = GaugeMetricFamily("autoballoon_host_free_mib",
                             "Host free memory (MiB) the policies see (HostMemory)")
    if snapshot.host_free_mib is not None:
        free.add_metric([], snapshot.host_free_mib)
    level = GaugeMetricFamily("autoballoon_host_pressure_level",
                              "1 for the last host pressure level seen, 0 for the others",
                              labels=["level"])
    host_events = CounterMetricFamily("autoballoon_host_pressure_events",
                                      "Host pressure events by level", labels=["level"])
    for lv in HOST_LEVELS:
        level.add_metric([lv], int(snapshot.last_host_level == lv))
        host_events.add_metric([lv], counts.host_pressure.get(lv, 0))
    enabled = GaugeMetricFamily("autoballoon_enabled", "1 if automation is enabled globally",
                                value=int(snapshot.enabled))
    policy = GaugeMetricFamily("autoballoon_policy_info", "The policy in force",
                               labels=["policy"])
    policy.add_metric([snapshot.policy], 1)
    dropped = CounterMetricFamily("autoballoon_dropped_inputs",
                                  "Coalescable inputs dropped by a full queue",
                                  value=snapshot.dropped_inputs)
    return [*out, free, level, host_events, enabled, policy, dropped]


class _Fixed:
    """A collector of the metrics of one state (None: nothing yet)."""

    def __init__(self, state: tuple[Snapshot, Counts] | None = None) -> None:
        self.state = state  # replaced whole by the publisher: read once per scrape

    def collect(self) -> Iterator[Metric]:
        state = self.state
        if state is not None:
            yield from families(*state)


def registry(snapshot: Snapshot, counts: Counts) -> CollectorRegistry:
    """A registry of its own holding these metrics."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Fixed((snapshot, counts)))
    return reg


def exposition(snapshot: Snapshot, counts: Counts) -> bytes:
    """The Prometheus text format of these metrics."""
    return generate_latest(registry(snapshot, counts))


# -- I/O ------------------------------------------------------------------------------

def write_textfile(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: a reader sees the old file or the new
    one, never a part (a temporary file in the same directory, renamed over it; its name,
    hidden and not ending in .prom, is one node_exporter skips)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Exporter:
    """Publishes the metrics at most every ``min_interval_s`` (``publish``, from the loop:
    a reference swapped, the counts copied): to the HTTP server once ``serve`` started it
    (rendered on its thread at each scrape) and to ``textfile`` if given (rendered and
    written by a thread of its own: 36 ms for 500 VMs, not to be spent on the loop)."""

    def __init__(self, textfile: Path | None, clock: Callable[[], float] = time.monotonic,
                 min_interval_s: float = MIN_INTERVAL_S) -> None:
        self.textfile = textfile
        self.clock = clock
        self.min_interval_s = min_interval_s
        self.registry = CollectorRegistry(auto_describe=False)
        self._live = _Fixed()
        self.registry.register(self._live)
        self._last: float | None = None
        self._server: WSGIServer | None = None
        self._http: threading.Thread | None = None
        self._cond = threading.Condition()
        self._pending = self._writing = self._stopping = self._failing = False
        self._writer: threading.Thread | None = None
        if textfile is not None:
            self._writer = threading.Thread(target=self._write_loop, name="metrics-textfile",
                                            daemon=True)
            self._writer.start()

    def publish(self, snapshot: Snapshot, counts: Callable[[], Counts]) -> bool:
        """Publish (``counts`` is read only then) unless the last one is too recent;
        whether it did."""
        now = self.clock()
        if self._last is not None and now - self._last < self.min_interval_s:
            return False
        self._last = now
        self._live.state = (snapshot, counts())
        if self._writer is not None:
            with self._cond:
                self._pending = True
                self._cond.notify()
        return True

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the last state published is in the textfile (whether it is)."""
        end = time.monotonic() + timeout_s
        with self._cond:
            while self._pending or self._writing:
                left = end - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    return False
        return True

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not (self._pending or self._stopping):
                    self._cond.wait()
                if not self._pending:
                    return
                self._pending, self._writing = False, True
                state = self._live.state
            try:
                if state is not None and self.textfile is not None:
                    self._write(self.textfile, state)
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()

    def _write(self, path: Path, state: tuple[Snapshot, Counts]) -> None:
        """One rewrite of the textfile; a failure is logged (once until it works again),
        never raised."""
        try:
            write_textfile(path, exposition(*state))
        except OSError as e:
            if not self._failing:
                log.warning("cannot write the metrics to %s: %s", path, e.strerror or e)
            self._failing = True
        else:
            if self._failing:
                log.info("metrics written to %s again", path)
            self._failing = False

    def serve(self, address: str, port: int) -> tuple[str, int]:
        """Serve the last published metrics over HTTP (a thread of prometheus_client's);
        the address and port bound (``port`` 0: any free one)."""
        self._server, self._http = start_http_server(port, address, self.registry)
        host, bound = self._server.server_address[:2]
        return str(host), int(bound)

    def close(self) -> None:
        """Stop serving; the textfile gets the last state published, then its thread
        ends."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._http is not None:
            self._http.join(5)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._writer is not None:
            self._writer.join(5)


__all__ = ["MIN_INTERVAL_S", "CountingTimeline", "Counts", "Exporter", "Tally", "VmCounts",
           "exposition", "families", "registry", "write_textfile"]
