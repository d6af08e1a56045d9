"""Balloon policies behind one interface (``Policy``), selectable by name."""

from __future__ import annotations

from autoballoon.policies.auto import AutoParams, AutoPolicy
from autoballoon.policies.base import Policy, TargetChange
from autoballoon.policies.seed import SeedParams, SeedPolicy
from autoballoon.policies.stats_polling import StatsPollingParams, StatsPollingPolicy

POLICIES: dict[str, type[Policy]] = {
    "seed": SeedPolicy,
    "auto": AutoPolicy,
    "stats-polling": StatsPollingPolicy,
}


def make_policy(name: str) -> Policy:
    """A new policy with default parameters; KeyError names the known ones."""
    try:
        return POLICIES[name]()
    except KeyError:
        raise KeyError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}") from None


__all__ = [
    "POLICIES",
    "AutoParams",
    "AutoPolicy",
    "Policy",
    "SeedParams",
    "SeedPolicy",
    "StatsPollingParams",
    "StatsPollingPolicy",
    "TargetChange",
    "make_policy",
]
