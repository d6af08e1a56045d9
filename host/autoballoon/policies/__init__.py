"""Balloon policies behind one interface (``Policy``), selectable by name, each with a
frozen parameter record whose defaults are the documented ones (POLICIES.md)."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping

from autoballoon.policies.auto import AutoParams, AutoPolicy
from autoballoon.policies.base import Policy, TargetChange
from autoballoon.policies.seed import SeedParams, SeedPolicy
from autoballoon.policies.stats_polling import StatsPollingParams, StatsPollingPolicy

POLICIES: dict[str, type[Policy]] = {
    "seed": SeedPolicy,
    "auto": AutoPolicy,
    "stats-polling": StatsPollingPolicy,
}
PARAMS: dict[str, type] = {
    "seed": SeedParams,
    "auto": AutoParams,
    "stats-polling": StatsPollingParams,
}


class PolicyParamError(ValueError):
    """A parameter the policy does not have, or a value of the wrong type."""


def _coerce(policy: str, key: str, hint: object, value: object) -> object:
    where = f"policy {policy}: parameter {key}"
    if hint is bool:
        if not isinstance(value, bool):
            raise PolicyParamError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PolicyParamError(f"{where} must be an integer, got {value!r}")
        if value < 0:  # every count, size and step is >= 0
            raise PolicyParamError(f"{where} must be >= 0, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PolicyParamError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:  # every time, fraction and rate is >= 0
            raise PolicyParamError(f"{where} must be a finite number >= 0, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise PolicyParamError(f"{where} must be a string, got {value!r}")
        return value
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise PolicyParamError(f"{where} must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(policy, key, a, v) for a, v in zip(args, value, strict=True))
    raise PolicyParamError(f"{where} cannot be set")  # pragma: no cover - new field types


def policy_params(name: str, overrides: Mapping[str, object]) -> object:
    """The parameter record of policy ``name``: defaults with ``overrides`` applied."""
    cls = PARAMS[name]
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, object] = {}
    for key, value in overrides.items():
        if key not in hints:
            raise PolicyParamError(f"policy {name} has no parameter {key!r} "
                                   f"(it has: {', '.join(known)})")
        values[key] = _coerce(name, key, hints[key], value)
    return cls(**values)


def make_policy(name: str, params: Mapping[str, object] | None = None) -> Policy:
    """A new policy; unknown names raise KeyError, bad parameters PolicyParamError."""
    if name not in POLICIES:
        raise KeyError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}")
    return POLICIES[name](params=policy_params(name, params or {}))  # type: ignore[call-arg]


__all__ = [
    "PARAMS",
    "POLICIES",
    "AutoParams",
    "AutoPolicy",
    "Policy",
    "PolicyParamError",
    "SeedParams",
    "SeedPolicy",
    "StatsPollingParams",
    "StatsPollingPolicy",
    "TargetChange",
    "make_policy",
    "policy_params",
]
