"""What autoballoond tells the outside world after each pass of its decision loop: its
service manager (``sd_notify.py``) and the metrics' readers (``metrics.py``).

``PassHook`` is the loop's ``after_pass``: it runs on the loop's own thread at the end of
every pass (``Daemon.step``), so

- ``WATCHDOG=1`` goes out only while passes do (at most every half watchdog interval):
  a hung loop stops the pings, and systemd restarts the daemon;
- ``READY=1`` goes out at the first pass that ends connected to libvirt (the control
  socket listens before the loop starts);
- ``STATUS=`` follows the connection and the number of VMs (``status_line``);
- the metrics are published (at most once a second: ``Exporter``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from autoballoon.metrics import Counts, Exporter
from autoballoon.sd_notify import Notifier
from autoballoon.snapshot import Snapshot


class LoopState(Protocol):
    """What the hook reads of the loop (``loop.Daemon``), on the loop's thread."""

    connected: bool
    snapshot: Snapshot


def status_line(connected: bool, ready: bool, snapshot: Snapshot, uri: str) -> str:
    """The one line ``systemctl status`` shows."""
    if not connected:
        return (f"libvirt at {uri} lost: reconnecting" if ready
                else f"connecting to libvirt at {uri}")
    n = len(snapshot.vms)
    line = f"managing {n} VM{'' if n == 1 else 's'} on {uri} with policy {snapshot.policy}"
    return line if snapshot.enabled else line + " (automation disabled)"


@dataclass
class PassHook:
    loop: LoopState
    notifier: Notifier
    uri: str
    exporter: Exporter | None = None
    counts: Callable[[], Counts] = Counts
    status: str = ""

    def __call__(self) -> None:
        n = self.notifier
        n.watchdog()
        snapshot = self.loop.snapshot
        status = status_line(self.loop.connected, n.ready_sent, snapshot, self.uri)
        if self.loop.connected and not n.ready_sent:
            n.ready(status)
        elif status != self.status:
            n.status(status)
        self.status = status
        if self.exporter is not None:
            self.exporter.publish(snapshot, self.counts)


__all__ = ["LoopState", "PassHook", "status_line"]
