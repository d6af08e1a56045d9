"""autoballoond's configuration: the [daemon] table of its TOML file, then command-line
overrides, validated before anything starts (ConfigError: one line naming the key and
what it allows; exit status 2).

The file is ``--config PATH`` (which must exist), else ``DEFAULT_CONFIG`` if it exists
(``read_config_text``). The defaults fit a stock libvirt host: every running domain
(``name_pattern`` and ``metadata_ns`` unset), host pressure from PSI on libvirt's default
partition (``machine.slice``), no metrics."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoballoon.policies import POLICIES, PolicyParamError, policy_params
from autoballoon.pressure_config import (
    DEFAULT_PSI_THRESHOLDS,
    KINDS,
    LEVELS,
    MAX_WINDOW_US,
    MIN_WINDOW_US,
    UNPRIVILEGED_WINDOW_QUANTUM_US,
    PressureConfig,
    PressureConfigError,
    PsiThreshold,
    parse_threshold,
)


class ConfigError(ValueError):
    """Bad configuration: one line, exit status 2."""


#: What each key holds: "str" (non-empty), "number", "int" or "table".
KEY_TYPES: dict[str, str] = {
    "uri": "str", "metadata_ns": "str", "name_pattern": "str", "policy": "str",
    "policy_params": "table", "pressure_kind": "str", "pressure_path": "str",
    "pressure_min_interval_s": "number", "pressure_window_us": "int",
    "pressure_thresholds": "table", "tick_s": "number", "stats_period_s": "number",
    "timeline": "str", "control_socket": "str",
    "metrics_port": "int", "metrics_address": "str", "metrics_textfile": "str",
}
_ALLOWED = {"str": "a non-empty string", "number": "a number", "int": "an integer",
            "table": "a table of name = value"}
#: Numbers and their ranges (inclusive), in seconds.
RANGES: dict[str, tuple[float, float]] = {
    "tick_s": (0.05, 60), "stats_period_s": (0.5, 3600), "pressure_min_interval_s": (0, 3600),
}
PRESSURE_KINDS = (*KINDS, "none")
#: Read when no --config is given, if it exists.
DEFAULT_CONFIG = Path("/etc/autoballoon/autoballoond.toml")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_type(key: str, value: object) -> None:
    kind = KEY_TYPES[key]
    ok = {
        "str": isinstance(value, str) and value != "",
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "table": isinstance(value, dict),
    }[kind]
    if not ok:
        raise ConfigError(f"{key} must be {_ALLOWED[kind]}, got {_short(value)}")


@dataclass(frozen=True)
class DaemonConfig:
    uri: str = "qemu:///system"
    metadata_ns: str | None = None  # manage only domains with this metadata element
    name_pattern: str | None = None  # ... or whose name matches this regex
    policy: str = "auto"
    # Overrides of the policy's parameters (names and defaults in POLICIES.md).
    policy_params: dict[str, Any] = field(default_factory=dict)
    # None: no host pressure source. PSI (cgroup v2, every current distribution); on a
    # cgroup v1 host, vmpressure.
    pressure_kind: str | None = "psi-cgroup"
    # None: libvirt's default partition, /sys/fs/cgroup/machine.slice (PSI) or
    # /sys/fs/cgroup/memory/machine.slice (vmpressure); /proc/pressure/memory (psi-host).
    pressure_path: str | None = None
    # vmpressure fires 100+ times a second under steady reclaim: one host event per
    # interval is what a policy should see (PSI triggers already fire once per window).
    pressure_min_interval_s: float = 0.5
    # PSI kinds only: the trigger window (None: 2 s) and, per level, "some|full <stall_us>"
    # over the defaults (pressure_config.py says why each is what it is).
    pressure_window_us: int | None = None
    pressure_thresholds: dict[str, str] = field(default_factory=dict)
    tick_s: float = 1.0
    stats_period_s: float = 1.0
    timeline: str | None = None
    control_socket: str = "/run/autoballoon/autoballoond.sock"
    # Prometheus metrics (metrics.py): served over HTTP on this port (None: not served)
    # and address, and/or rewritten (at most once a second) to this file, for
    # node_exporter's textfile collector (None: not written).
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"
    metrics_textfile: str | None = None

    @property
    def balloon_period_s(self) -> int:
        """The balloon stats period the daemon sets on each VM (libvirt's
        setMemoryStatsPeriod): whole seconds, at least 1, no longer than a stats poll's
        period, so each poll finds figures the guest refreshed since the last one."""
        return max(1, math.floor(self.stats_period_s))

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None or f.name in ("uri", "policy", "control_socket",
                                               "metrics_address"):
                check_type(f.name, value)
        for key, (lo, hi) in RANGES.items():
            value = getattr(self, key)
            if not lo <= value <= hi:  # also refuses NaN and infinities
                raise ConfigError(f"{key} must be in [{lo:g}, {hi:g}] seconds, got {value!r}")
        if self.policy not in POLICIES:
            raise ConfigError(f"policy {self.policy!r} is unknown: use one of "
                              f"{', '.join(POLICIES)}")
        try:
            policy_params(self.policy, self.policy_params)
        except PolicyParamError as e:
            raise ConfigError(str(e)) from None
        try:
            re.compile(self.name_pattern or "")
        except (re.error, TypeError) as e:
            raise ConfigError(f"name_pattern {self.name_pattern!r} is not a regex: {e}") from None
        if self.pressure_kind is not None and self.pressure_kind not in PRESSURE_KINDS:
            raise ConfigError(f"pressure_kind must be one of {', '.join(PRESSURE_KINDS)}, "
                              f"got {_short(self.pressure_kind)}")
        self.pressure_config()
        self._check_metrics()

    def _check_metrics(self) -> None:
        if self.metrics_port is not None and not 1 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port must be in [1, 65535], got {self.metrics_port!r}")
        try:
            ipaddress.ip_address(self.metrics_address)
        except ValueError:
            raise ConfigError(f"metrics_address must be an IP address (127.0.0.1, ::1, "
                              f"0.0.0.0), got {_short(self.metrics_address)}") from None
        if self.metrics_textfile is not None and not self.metrics_textfile.endswith(".prom"):
            raise ConfigError(f"metrics_textfile must end in .prom (node_exporter's textfile "
                              f"collector reads only those), got {_short(self.metrics_textfile)}")

    def _psi_thresholds(self) -> dict[str, PsiThreshold]:
        thresholds = dict(DEFAULT_PSI_THRESHOLDS)
        for level, text in self.pressure_thresholds.items():
            if level not in LEVELS:
                raise ConfigError(f"pressure_thresholds has an unknown level {_short(level)}: "
                                  f"use {', '.join(LEVELS)}")
            if not isinstance(text, str):
                raise ConfigError(f"pressure_thresholds.{level} must be a string "
                                  f"'some <stall_us>' or 'full <stall_us>', got {_short(text)}")
            try:
                thresholds[level] = parse_threshold(text)
            except PressureConfigError as e:
                raise ConfigError(f"pressure_thresholds.{level}: {e}") from None
        return thresholds

    def _psi_window_us(self) -> int:
        w = self.pressure_window_us
        if w is None:
            return UNPRIVILEGED_WINDOW_QUANTUM_US
        if not MIN_WINDOW_US <= w <= MAX_WINDOW_US or w % UNPRIVILEGED_WINDOW_QUANTUM_US:
            raise ConfigError(
                f"pressure_window_us must be {UNPRIVILEGED_WINDOW_QUANTUM_US}, 4000000, ... "
                f"up to {MAX_WINDOW_US} (PSI windows are 2 s multiples without "
                f"CAP_SYS_RESOURCE, at most 10 s), got {w!r}")
        return w

    def pressure_config(self) -> PressureConfig | None:
        if self.pressure_kind is None:
            return None
        if self.pressure_kind == "vmpressure" and (
                self.pressure_thresholds or self.pressure_window_us is not None):
            key = "pressure_thresholds" if self.pressure_thresholds else "pressure_window_us"
            raise ConfigError(f"{key} applies to pressure_kind psi-cgroup or psi-host only "
                              "(vmpressure's levels are the kernel's): drop it or change the kind")
        thresholds, window = self._psi_thresholds(), self._psi_window_us()
        for level, th in thresholds.items():
            if th.stall_us > window:
                raise ConfigError(f"pressure_thresholds.{level}: a stall of {th.stall_us} us "
                                  f"exceeds the {window} us window (pressure_window_us): lower "
                                  "it or widen the window")
        try:
            return PressureConfig(kind=self.pressure_kind,
                                  path=Path(self.pressure_path) if self.pressure_path else None,
                                  thresholds=thresholds, window_us=window,
                                  min_interval_s=self.pressure_min_interval_s)
        except PressureConfigError as e:
            raise ConfigError(f"pressure settings: {e}") from None


def _daemon_table(text: str) -> dict[str, Any]:
    try:
        doc = tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config is not valid TOML: {e}") from None
    for key, value in doc.items():
        if key == "daemon":
            continue
        if isinstance(value, dict):
            raise ConfigError(f"unknown table [{key}]: the config has one [daemon] table")
        raise ConfigError(f"config key {key!r} is outside the [daemon] table: move it there")
    data = doc.get("daemon", {})
    if not isinstance(data, dict):
        raise ConfigError("daemon must be a table: write [daemon] above the keys")
    return data


def load_config(text: str, overrides: dict[str, Any]) -> DaemonConfig:
    """TOML [daemon] table, then command-line overrides (None = not given)."""
    data = _daemon_table(text)
    known = {f.name for f in dataclasses.fields(DaemonConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    overrides = dict(overrides)
    cli_params = overrides.pop("policy_params", None) or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    for key, value in data.items():
        check_type(key, value)
        if KEY_TYPES[key] == "number":
            data[key] = float(value)
    data["policy_params"] = {**data.get("policy_params", {}), **cli_params}
    if data.get("pressure_kind") == "none":
        data["pressure_kind"] = None
    cfg = DaemonConfig(**data)
    cfg.validate()
    return cfg


def read_config_text(explicit: Path | None, default: Path | None = DEFAULT_CONFIG
                     ) -> tuple[str, Path | None]:
    """The config's text and where it came from: ``explicit`` (--config; it must exist),
    else ``default`` if it exists (else no file: "", None). Undecodable text is a
    ConfigError too."""
    path = explicit
    if path is None and default is not None and default.exists():
        path = default
    if path is None:
        return "", None
    try:
        return path.read_text(encoding="utf-8"), path
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist: create it (an example is "
                          "host/systemd/autoballoond.toml) or drop --config") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"cannot read the config file {path}: {e.strerror or e}") from None


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """NAME=VALUE strings; VALUE is a TOML value (32, 0.5, "low", [1, 2]) or a bare word."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"policy parameter {item!r} is not NAME=VALUE")
        try:
            out[name.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[name.strip()] = raw
    return out
