"""rig.ebizzy.parse against saved outputs of images/tools/ebizzy.c, plus error cases.

Each tests/fixtures/ebizzy/NAME.txt has a NAME.expected.json: either the four fields
of EbizzyResult, or {"error": TEXT} where TEXT is part of the ValueError's message.
"""

from pathlib import Path

import pytest

from rig.bench.ebizzy import EbizzyResult, parse
from tests import golden

CASES = golden.cases("ebizzy")


def test_fixture_directory_is_complete():
    assert len(CASES) >= 3
    names = {p.stem for p in CASES}
    assert {"default", "verbose", "truncated", "garbage"} <= names
    assert golden.expected_names("ebizzy") == names


@pytest.mark.parametrize("raw", CASES, ids=[p.stem for p in CASES])
def test_fixture(raw: Path):
    golden.check(raw, parse)


def test_result_is_frozen_and_typed():
    r = parse("12 records/s\nreal  1.00 s\nuser  0.50 s\nsys   0.25 s\n")
    assert r == EbizzyResult(records_per_s=12, real_s=1.0, user_s=0.5, sys_s=0.25)
    assert isinstance(r.records_per_s, int)
    with pytest.raises(AttributeError):
        r.records_per_s = 13  # type: ignore[misc]


def test_noise_around_and_full_precision_times():
    text = (
        "Threads finished\n"
        "  7 records/s  \n"
        "Search key 3, copy size 8\n"
        "real 10.000321 s\n"
        "user 9 s\n"
        "sys  0.015 s\n"
        "chunk 0 7\n"
        "searches 7 found 7\n"
    )
    assert parse(text) == EbizzyResult(7, 10.000321, 9.0, 0.015)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no 'N records/s' line"),
        ("records/s\nreal 1.00 s\nuser 1.00 s\nsys  0.00 s\n", "no 'N records/s' line"),
        ("-5 records/s\nreal 1.00 s\nuser 1.00 s\nsys  0.00 s\n", "no 'N records/s' line"),
        ("ebizzy: 12 records/s\nreal 1.00 s\n", "no 'N records/s' line"),
        ("12 records/s\n", "no 'real N s', 'user N s', 'sys N s' line"),
        ("12 records/s\nreal 1.00 s\nuser 0.50 s\n", "no 'sys N s' line"),
        ("12 records/s\nreal 1.00 s\nuser 0.50 s\nsys  n/a s\n", "no 'sys N s' line"),
        # the times belong after the rate, not before it
        ("real 1.00 s\nuser 0.50 s\nsys  0.1 s\n12 records/s\n", "no 'real N s'"),
        (
            "12 records/s\nreal 1.00 s\nuser 0.50 s\nsys  0.1 s\n"
            "13 records/s\nreal 1.00 s\nuser 0.50 s\nsys  0.1 s\n",
            "2 'records/s' lines",
        ),
    ],
)
def test_errors(text: str, needle: str):
    with pytest.raises(ValueError, match="ebizzy") as e:
        parse(text)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)
