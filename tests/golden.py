"""Golden parser fixtures (lkp-tests style): each tests/fixtures/<tool>/NAME.txt is real
output of a tool and NAME.expected.json its expected parse, or {"error": "..."} with a
piece of the one-line ValueError the parser must raise."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tests import FIXTURES


def cases(tool: str) -> list[Path]:
    """The raw outputs of ``tool``, sorted."""
    return sorted((FIXTURES / tool).glob("*.txt"))


def expected_names(tool: str) -> set[str]:
    return {p.name.removesuffix(".expected.json")
            for p in (FIXTURES / tool).glob("*.expected.json")}


def check(raw: Path, parse: Callable[[str], Any]) -> None:
    """``parse`` of the raw output gives its expected parse, or its expected error."""
    text = raw.read_bytes().decode()
    expected = json.loads(raw.with_name(raw.stem + ".expected.json").read_text())
    if "error" in expected:
        with pytest.raises(ValueError) as e:
            parse(text)
        message = str(e.value)
        assert expected["error"] in message
        assert "\n" not in message
    else:
        assert asdict(parse(text)) == expected
