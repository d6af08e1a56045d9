"""autoballoond's configuration: the [daemon] table of its TOML file, then command-line
overrides, validated before anything starts (ConfigError: one line, exit status 2)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoballoon.policies import POLICIES, PolicyParamError, policy_params
from autoballoon.pressure_config import PressureConfig, PressureConfigError


class ConfigError(ValueError):
    """Bad configuration: one line, exit status 2."""


@dataclass(frozen=True)
class DaemonConfig:
    uri: str = "qemu:///system"
    metadata_ns: str | None = None  # manage only domains with this metadata element
    name_pattern: str | None = None  # ... or whose name matches this regex
    policy: str = "auto"
    # Overrides of the policy's parameters (names and defaults in POLICIES.md).
    policy_params: dict[str, Any] = field(default_factory=dict)
    pressure_kind: str | None = "vmpressure"  # None: no host pressure source
    pressure_path: str | None = None
    # vmpressure fires 100+ times a second under steady reclaim: one host event per
    # interval is what a policy should see (PSI triggers already fire once per window).
    pressure_min_interval_s: float = 0.5
    tick_s: float = 1.0
    stats_period_s: float = 1.0
    timeline: str | None = None
    control_socket: str = "/run/autoballoon/autoballoond.sock"

    def validate(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"policy {self.policy!r} is unknown: use one of "
                              f"{', '.join(POLICIES)}")
        if not 0.05 <= self.tick_s <= 60 or not 0.5 <= self.stats_period_s <= 3600:
            raise ConfigError("tick_s must be in [0.05, 60] and stats_period_s in [0.5, 3600]")
        try:
            policy_params(self.policy, self.policy_params)
        except PolicyParamError as e:
            raise ConfigError(str(e)) from None

    def pressure_config(self) -> PressureConfig | None:
        if self.pressure_kind is None:
            return None
        try:
            return PressureConfig(kind=self.pressure_kind,
                                  path=Path(self.pressure_path) if self.pressure_path else None,
                                  min_interval_s=self.pressure_min_interval_s)
        except PressureConfigError as e:
            raise ConfigError(str(e)) from None


def load_config(text: str, overrides: dict[str, Any]) -> DaemonConfig:
    """TOML [daemon] table, then command-line overrides (None = not given)."""
    try:
        data = tomllib.loads(text).get("daemon", {}) if text else {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config is not valid TOML: {e}") from None
    known = {f.name for f in dataclasses.fields(DaemonConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    overrides = dict(overrides)
    cli_params = overrides.pop("policy_params", None) or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    params = data.get("policy_params", {})
    if not isinstance(params, dict):
        raise ConfigError("policy_params must be a table of parameter = value")
    data["policy_params"] = {**params, **cli_params}
    if data.get("pressure_kind") == "none":
        data["pressure_kind"] = None
    cfg = DaemonConfig(**data)
    cfg.validate()
    return cfg


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
