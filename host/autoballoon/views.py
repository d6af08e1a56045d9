"""The read-only snapshots of the model that policies read: ``VmView`` and ``ModelView``.

Nothing a policy does with a view can change the model. A ``VmView`` is immutable and
kept by the VM's state until the state next changes (``vm_state.py``); the ``ModelView``
handed to a policy hook is built per call, its ``vms`` a ``VmViews``: a lazy mapping that
looks a VM's view up only when the policy reads it, so a hook costs what it reads, not
the number of VMs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class VmView:
    """Read-only snapshot of one VM's state, as policies see it."""

    name: str
    max_mib: int
    floor_mib: int
    target_mib: int
    actual_mib: int
    auto_inflated_mib: int
    last_guest_pressure_t: float | None
    last_guest_level: str | None
    enabled: bool
    manual: bool
    stats: Mapping[str, int]
    stats_t: float | None
    prev_stats: Mapping[str, int]
    prev_stats_t: float | None
    last_inflate_t: float | None
    last_deflate_t: float | None
    #: What the QEMU process holds (VmRss), when the daemon feeds it, and when.
    rss_mib: int | None = None
    rss_t: float | None = None
    #: The size no guest claim holds it above under the host critical override.
    hard_floor_mib: int = 0

    @property
    def automated(self) -> bool:
        """Whether automation may act on this VM (ignoring the global flag)."""
        return self.enabled and not self.manual

    @classmethod
    def of(cls, **fields: object) -> VmView:
        """A view from every one of its fields, by name, built without the frozen
        dataclass's ``__init__`` (an ``object.__setattr__`` per field: 2.4 times the
        cost; the model builds one for each changed VM at each stats poll and each
        snapshot). It is the same record (tests/unit/autoballoon/test_model.py)."""
        view = object.__new__(cls)
        view.__dict__.update(fields)
        return view


@dataclass(frozen=True)
class ModelView:
    """Read-only snapshot of the whole model handed to policies."""

    vms: Mapping[str, VmView]
    enabled: bool
    last_host_pressure_t: float | None
    last_host_level: str | None
    host_free_mib: int | None
    host_total_mib: int | None
    host_memory_t: float | None
    #: Sustained host critical pressure: guest claims exempt no VM (model.py, trust.py).
    host_override: bool = False
    #: ... and floors are capped at the hard floors: no balloon owes memory (trust.Owing).
    hard_floors: bool = False


class _Viewable(Protocol):
    def view(self, claims: bool = True) -> VmView: ...


class VmViews(Mapping[str, VmView]):
    """Every VM's view by name, in name order, each looked up when first read.

    Valid for the policy call it is handed to (the model changes nothing while a policy
    runs); a policy keeps no view beyond its call (policies/base.py).
    """

    __slots__ = ("_claims", "_names", "_states")

    def __init__(self, states: Mapping[str, _Viewable], names: Sequence[str],
                 claims: bool = True) -> None:
        self._states, self._names, self._claims = states, names, claims

    def __getitem__(self, name: str) -> VmView:
        return self._states[name].view(self._claims)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._states


__all__ = ["ModelView", "VmView", "VmViews"]
