"""Checks shared by the TOML parsers of the rig's input files (pure): each raises
UsageError with a one-line message that names where the bad value is."""

from __future__ import annotations

from typing import Any

from rig.errors import UsageError


def reject_unknown(where: str, table: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def int_in(where: str, table: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{where}: {key} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise UsageError(f"{where}: {key} = {value} is outside [{lo}, {hi}]")
    return value


def table_of(where: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where} must be a table")
    return value
