"""The daemon's JSONL timeline: every input, every command, connection changes, errors.

Record kinds (the rig's reports read them): ``input`` (the model event's fields, ``event``
= its type), ``command`` (vm, target_mib, cause, reaction_s), ``command-failed`` (vm,
target_mib, cause, error), ``libvirt`` (state: connected | disconnected | unreachable),
``pressure`` (state: lost | reopened) and ``error`` (input, error: an input whose handling
failed; the loop went on).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from autoballoon.events import GuestStats, StatsPoll, VmInfo, VmRss

log = logging.getLogger("autoballoond")
#: One encoder for every line (json.dumps with an argument builds one per call).
_encode = json.JSONEncoder(default=str).encode
#: The field names of each event type seen (dataclasses.fields is slow for every input).
_FIELDS: dict[type, tuple[str, ...]] = {}


@dataclass
class Timeline:
    """JSONL of every input and command; `wall` for humans, `t` (monotonic) for math.

    Written by the decision loop and the host pressure thread (a lock keeps lines whole);
    a failing write is logged, never raised.
    """

    out: TextIO | None
    clock: Callable[[], float] = time.time
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def active(self) -> bool:
        """Whether records go anywhere (callers skip building them otherwise)."""
        return self.out is not None

    def write(self, kind: str, **fields: Any) -> None:
        if self.out is None:
            return
        rec = {"wall": round(self.clock(), 6), "kind": kind, **fields}
        line = _encode(rec) + "\n"
        with self.lock:
            try:
                self.out.write(line)
                self.out.flush()
            except (OSError, ValueError) as e:
                log.error("cannot write the timeline: %s", e)


def event_fields(ev: object) -> dict[str, Any]:
    """A model event as timeline fields (its type as ``event``; no policy object)."""
    names = _FIELDS.get(type(ev))
    if names is None:
        if not dataclasses.is_dataclass(ev) or isinstance(ev, type):
            return {"event": type(ev).__name__}
        names = _FIELDS[type(ev)] = tuple(f.name for f in dataclasses.fields(ev))
    d = {name: getattr(ev, name) for name in names}
    d.pop("policy", None)
    if "vm" in d and isinstance(d["vm"], VmInfo):
        d["vm"] = dataclasses.asdict(d["vm"])
    return {"event": type(ev).__name__, **d}


def input_records(ev: object) -> list[dict[str, Any]]:
    """The ``input`` records of a model event: its fields; a ``StatsPoll`` as the
    ``VmRss`` and ``GuestStats`` it stands for, VM by VM (the records it always had)."""
    if not isinstance(ev, StatsPoll):
        return [event_fields(ev)]
    out = []
    for vm in dict.fromkeys([*ev.rss_mib, *ev.stats]):
        if vm in ev.rss_mib:
            out.append(event_fields(VmRss(ev.t, vm, ev.rss_mib[vm])))
        if vm in ev.stats:
            out.append(event_fields(GuestStats(ev.t, vm, ev.stats[vm])))
    return out


__all__ = ["Timeline", "event_fields", "input_records"]
