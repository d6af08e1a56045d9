"""Configuration of host memory pressure sources (pure: no I/O).

Three kinds of source:

- ``vmpressure``: cgroup v1 memory controller, ``memory.pressure_level`` + eventfd
  registered through ``cgroup.event_control``. Levels: low, medium, critical.
- ``psi-cgroup``: PSI triggers on a cgroup v2 directory's ``memory.pressure``.
- ``psi-host``: PSI triggers on ``/proc/pressure/memory`` (the whole host).

PSI levels are built from stall thresholds (microseconds of stall per window). The
defaults, all on a 2 s window (the smallest legal one without CAP_SYS_RESOURCE):

=========  =========  ======================================================
level      trigger    why
=========  =========  ======================================================
low        some 50ms  2.5% of the time someone waits on reclaim: reclaim has
                      begun to cost something (vmpressure "low" fires far
                      earlier, on any reclaim, which the RFC found too early)
between    some 150ms 7.5%: sustained reclaim stalls; the event the RFC asked
                      for, between "low" (too early) and "medium" (too late)
medium     full 100ms 5% of the time *every* runnable task waits: lost work
critical   full 500ms 25% of the time everything waits: thrashing
=========  =========  ======================================================

They are starting points to tune with the rig; every one is a parameter (autoballoond's
config keys ``pressure_thresholds`` and ``pressure_window_us``, see host/README.md).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LEVELS: tuple[str, ...] = ("low", "between", "medium", "critical")
LEVEL_RANK: Mapping[str, int] = types.MappingProxyType({lv: i for i, lv in enumerate(LEVELS)})
VMPRESSURE_LEVELS: tuple[str, ...] = ("low", "medium", "critical")
KINDS: tuple[str, ...] = ("vmpressure", "psi-cgroup", "psi-host")
VMPRESSURE_MODES: tuple[str, ...] = ("default", "hierarchy", "local")

#: libvirt's default resource partition (/machine) is systemd's machine.slice: where every
#: VM's QEMU runs on a stock host (the rig passes its own partition explicitly).
DEFAULT_V1_MEMCG = Path("/sys/fs/cgroup/memory/machine.slice")
DEFAULT_V2_CGROUP = Path("/sys/fs/cgroup/machine.slice")
PROC_PRESSURE_MEMORY = Path("/proc/pressure/memory")

UNPRIVILEGED_WINDOW_QUANTUM_US = 2_000_000
MIN_WINDOW_US = 500_000
MAX_WINDOW_US = 10_000_000
CAP_SYS_RESOURCE = 24


class PressureConfigError(ValueError):
    """A pressure source configuration is invalid; the message says what to change."""


@dataclass(frozen=True, slots=True)
class PsiThreshold:
    """A PSI trigger threshold: ``kind`` is "some" or "full"; ``stall_us`` per window."""

    kind: str
    stall_us: int

    def __post_init__(self) -> None:
        if self.kind not in ("some", "full"):
            raise PressureConfigError(
                f"PSI threshold kind {self.kind!r} is invalid: use 'some' or 'full'"
            )
        if isinstance(self.stall_us, bool) or not isinstance(self.stall_us, int):
            raise PressureConfigError(
                f"PSI stall_us {self.stall_us!r} is invalid: give an integer of microseconds"
            )
        if self.stall_us <= 0:
            raise PressureConfigError(
                f"PSI stall_us {self.stall_us} is invalid: give a positive number of microseconds"
            )


DEFAULT_PSI_THRESHOLDS: Mapping[str, PsiThreshold] = types.MappingProxyType(
    {
        "low": PsiThreshold("some", 50_000),
        "between": PsiThreshold("some", 150_000),
        "medium": PsiThreshold("full", 100_000),
        "critical": PsiThreshold("full", 500_000),
    }
)


def psi_trigger(threshold: PsiThreshold, window_us: int) -> str:
    """The text written to a PSI pressure file to register a trigger."""
    return f"{threshold.kind} {threshold.stall_us} {window_us}"


def vmpressure_registration(efd: int, level_fd: int, level: str, mode: str | None = None) -> str:
    """The text written to cgroup.event_control to register a vmpressure eventfd."""
    arg = level if mode is None else f"{level},{mode}"
    return f"{efd} {level_fd} {arg}"


def has_cap_sys_resource(proc_status_text: str) -> bool:
    """Whether CapEff in a /proc/<pid>/status text includes CAP_SYS_RESOURCE."""
    for line in proc_status_text.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return False


def _default_thresholds() -> Mapping[str, PsiThreshold]:
    return DEFAULT_PSI_THRESHOLDS


@dataclass(frozen=True, slots=True)
class PressureConfig:
    """What host pressure source to open and which levels to report.

    ``path``: for vmpressure a cgroup v1 memory cgroup directory; for psi-cgroup a cgroup
    v2 directory (its ``memory.pressure`` is used); for psi-host ``/proc/pressure/memory``
    or another PSI file. None means libvirt's default partition, machine.slice (or
    /proc/pressure/memory).
    ``levels``: None means every level the kind supports.
    ``privileged``: set True only when the process has CAP_SYS_RESOURCE (see
    :func:`has_cap_sys_resource`); otherwise the PSI window must be a multiple of 2 s.
    ``vmpressure_mode``: None (kernel default), "default", "hierarchy" or "local".
    ``min_interval_s``: drop an event whose level is not higher than the last reported
    one if it comes sooner than this after it (vmpressure fires ~150 times a second
    under steady reclaim); 0 reports every batch.
    """

    kind: str = "vmpressure"
    path: Path | None = None
    levels: tuple[str, ...] | None = None
    thresholds: Mapping[str, PsiThreshold] = field(default_factory=_default_thresholds)
    window_us: int = UNPRIVILEGED_WINDOW_QUANTUM_US
    privileged: bool = False
    vmpressure_mode: str | None = None
    min_interval_s: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.min_interval_s, int | float) or self.min_interval_s < 0:
            raise PressureConfigError(
                f"min_interval_s {self.min_interval_s!r} is invalid: give seconds >= 0"
            )
        if self.kind not in KINDS:
            raise PressureConfigError(
                f"pressure kind {self.kind!r} is unknown: use one of {', '.join(KINDS)}"
            )
        if self.path is not None and not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "thresholds", types.MappingProxyType(dict(self.thresholds)))
        if self.levels is not None:
            object.__setattr__(self, "levels", tuple(self.levels))
        levels = self.active_levels
        if not levels:
            raise PressureConfigError("no pressure levels configured: list at least one level")
        for lv in levels:
            if lv not in LEVELS:
                raise PressureConfigError(
                    f"pressure level {lv!r} is unknown: use one of {', '.join(LEVELS)}"
                )
        if len(set(levels)) != len(levels):
            raise PressureConfigError(f"pressure levels {levels} repeat one: list each once")
        if self.kind == "vmpressure":
            self._validate_vmpressure(levels)
        else:
            self._validate_psi(levels)

    def _validate_vmpressure(self, levels: tuple[str, ...]) -> None:
        for lv in levels:
            if lv not in VMPRESSURE_LEVELS:
                raise PressureConfigError(
                    f"level {lv!r} is not a vmpressure level: use a PSI kind "
                    "(psi-cgroup or psi-host) or drop it"
                )
        if self.vmpressure_mode is not None and self.vmpressure_mode not in VMPRESSURE_MODES:
            raise PressureConfigError(
                f"vmpressure_mode {self.vmpressure_mode!r} is unknown: use one of "
                f"{', '.join(VMPRESSURE_MODES)} or leave it unset"
            )

    def _validate_psi(self, levels: tuple[str, ...]) -> None:
        w = self.window_us
        if isinstance(w, bool) or not isinstance(w, int):
            raise PressureConfigError(
                f"window_us {w!r} is invalid: give an integer of microseconds"
            )
        if not MIN_WINDOW_US <= w <= MAX_WINDOW_US:
            raise PressureConfigError(
                f"window_us {w} is out of range: the kernel accepts 500000-10000000 (0.5-10 s)"
            )
        if not self.privileged and w % UNPRIVILEGED_WINDOW_QUANTUM_US:
            raise PressureConfigError(
                f"window_us {w} is not a multiple of 2000000: without CAP_SYS_RESOURCE PSI "
                "windows must be 2 s, 4 s, ... (or set privileged=True if the daemon has it)"
            )
        for lv in levels:
            th = self.thresholds.get(lv)
            if th is None:
                raise PressureConfigError(
                    f"level {lv!r} has no PSI threshold: add thresholds[{lv!r}] or drop the level"
                )
            if th.stall_us > w:
                raise PressureConfigError(
                    f"threshold for {lv!r} ({th.stall_us} us) exceeds window_us {w}: "
                    "lower the stall or widen the window"
                )
        for lv in self.thresholds:
            if lv not in LEVELS:
                raise PressureConfigError(
                    f"threshold for unknown level {lv!r}: use one of {', '.join(LEVELS)}"
                )

    @property
    def active_levels(self) -> tuple[str, ...]:
        """The configured levels, in rank order (lowest first)."""
        if self.levels is None:
            return VMPRESSURE_LEVELS if self.kind == "vmpressure" else LEVELS
        return tuple(sorted(self.levels, key=lambda lv: LEVEL_RANK.get(lv, len(LEVELS))))

    @property
    def resolved_path(self) -> Path:
        """The cgroup directory (vmpressure, psi-cgroup) or PSI file (psi-host) to open."""
        if self.path is not None:
            return self.path
        return {
            "vmpressure": DEFAULT_V1_MEMCG,
            "psi-cgroup": DEFAULT_V2_CGROUP,
            "psi-host": PROC_PRESSURE_MEMORY,
        }[self.kind]

    @property
    def psi_file(self) -> Path:
        """The PSI file triggers are written to (PSI kinds only)."""
        if self.kind == "psi-cgroup":
            return self.resolved_path / "memory.pressure"
        return self.resolved_path

    def psi_triggers(self) -> dict[str, str]:
        """Trigger text per active level (PSI kinds only)."""
        return {lv: psi_trigger(self.thresholds[lv], self.window_us) for lv in self.active_levels}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PressureConfig:
        """Build from a config-file table, e.g. ``[pressure]`` in TOML.

        Keys: kind, path, levels, window_us, privileged, vmpressure_mode, min_interval_s
        and thresholds = {level = "some|full <stall_us>"}.
        """
        known = {"kind", "path", "levels", "thresholds", "window_us", "privileged",
                 "vmpressure_mode", "min_interval_s"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PressureConfigError(
                f"unknown pressure setting(s) {', '.join(unknown)}: use {', '.join(sorted(known))}"
            )
        kw: dict[str, Any] = dict(data)
        if kw.get("path") is not None:
            kw["path"] = Path(kw["path"])
        if kw.get("levels") is not None:
            kw["levels"] = tuple(kw["levels"])
        if "thresholds" in kw:
            merged = dict(DEFAULT_PSI_THRESHOLDS)
            for lv, text in dict(kw["thresholds"]).items():
                merged[lv] = parse_threshold(str(text))
            kw["thresholds"] = merged
        return cls(**kw)


def parse_threshold(text: str) -> PsiThreshold:
    """Parse "some 150000" or "full 100000" (microseconds of stall per window)."""
    parts = text.split()
    if len(parts) != 2 or not parts[1].isdigit():
        raise PressureConfigError(
            f"PSI threshold {text!r} is invalid: write 'some <stall_us>' or 'full <stall_us>'"
        )
    return PsiThreshold(parts[0], int(parts[1]))
