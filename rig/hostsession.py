"""A host for the duration of a `with` block: up on entry, down on any exit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rig import host
from rig.errors import RigError
from rig.layout import Layout
from rig.progress import Progress
from rig.scenario import HostSpec


@contextmanager
def host_session(layout: Layout, spec: HostSpec, progress: Progress,
                 accel: str | None = None) -> Iterator[host.HostRecord]:
    if layout.host_record.exists():
        # Someone else's host: never tear it down from here.
        raise RigError(f"a host is already up ({layout.host_record}); "
                       "run `rig host down` first")
    try:
        rec = host.up(layout, spec, progress, accel)
        yield rec
    finally:
        host.down(layout, progress)
