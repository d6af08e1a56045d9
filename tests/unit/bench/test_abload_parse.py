"""rig.bench.abload.parse against saved outputs of images/tools/abload.c, plus error cases.

Each tests/fixtures/abload/NAME.txt (stdout and stderr of one real run, see the README
there) has a NAME.expected.json: either the fields of ReadResult or IdleResult, or
{"error": TEXT} where TEXT is part of the ValueError's message.
"""

from pathlib import Path

import pytest

from rig.bench.abload import IdleResult, ReadResult, parse
from tests import golden

CASES = golden.cases("abload")

STREAM = (
    "abload stream: bytes=300 seconds=2.000 mb_s=0.00 passes=3 span=100 block_kib=64"
    " end=time path=/dev/vdb"
)
IDLE = "abload idle: mib=64 touched_mib=64 touch_seconds=0.046 held_seconds=1.002 end=time"


def test_fixture_directory_is_complete():
    names = {p.stem for p in CASES}
    assert {
        "stream", "reread", "idle", "stream_killed", "usage_error", "missing_device",
        "stream_blockdev", "idle_signal",
    } <= names
    assert golden.expected_names("abload") == names


@pytest.mark.parametrize("raw", CASES, ids=[p.stem for p in CASES])
def test_fixture(raw: Path):
    golden.check(raw, parse)


@pytest.mark.parametrize("raw", CASES, ids=[p.stem for p in CASES])
def test_fixture_numbers_are_consistent(raw: Path):
    try:
        r = parse(raw.read_bytes().decode())
    except ValueError:
        return
    if isinstance(r, ReadResult):
        assert r.passes == r.bytes_read // r.span_bytes
        # seconds is printed to the millisecond, mb_s from the exact time
        assert r.mb_s == pytest.approx(r.bytes_read / r.seconds / 1e6, rel=2e-3)
    else:
        assert r.touched_mib <= r.mib
        assert (r.touched_mib == r.mib) or not r.complete


def test_results_are_frozen_and_typed():
    r = parse(STREAM)
    assert r == ReadResult("stream", 0.0, 300, 2.0, 3, 100, 64, "/dev/vdb", "time", True)
    assert isinstance(r.bytes_read, int) and isinstance(r.mb_s, float)
    with pytest.raises(AttributeError):
        r.mb_s = 1.0  # type: ignore[misc]
    i = parse(IDLE)
    assert i == IdleResult("idle", 64, 64, 0.046, 1.002, "time", True)
    with pytest.raises(AttributeError):
        i.mib = 1  # type: ignore[misc]


def test_end_decides_complete():
    assert not parse(STREAM.replace("end=time", "end=interrupted")).complete
    assert parse(IDLE.replace("end=time", "end=signal")).complete
    assert not parse(IDLE.replace("end=time", "end=interrupted")).complete


def test_kind_filter():
    assert parse(STREAM, kind="stream").kind == "stream"
    assert parse(IDLE, kind="idle").kind == "idle"
    with pytest.raises(ValueError, match="expected an abload reread result, got abload stream"):
        parse(STREAM, kind="reread")
    with pytest.raises(ValueError, match="unknown abload kind 'bogus'"):
        parse(STREAM, kind="bogus")


def test_noise_around_crlf_and_a_path_with_spaces():
    text = (
        "# abload stream -d '/mnt/my data' -S 2\r\n"
        "abload idle: holding mib=8 touch_seconds=0.010\r\n"
        + STREAM.replace("/dev/vdb", "/mnt/my data")
        + "  \r\n# \r\n"
    )
    r = parse(text)
    assert isinstance(r, ReadResult)
    assert r.path == "/mnt/my data"
    assert r.bytes_read == 300


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no 'abload KIND: ...' result line"),
        ("sh: abload: not found\n", "no 'abload KIND: ...' result line"),
        ("abload copy: bytes=1 seconds=1.0\n", "no 'abload KIND: ...' result line"),
        ("abload: cannot open /dev/vdb: No such file or directory\n",
         "abload failed: cannot open /dev/vdb"),
        ("abload idle: holding mib=8 touch_seconds=0.010\n", "a 'holding' line but no result"),
        # a line cut short, a field missing, a negative or non-numeric value
        (STREAM[:60] + "\n", "malformed abload result line"),
        (STREAM.replace(" passes=3", "") + "\n", "malformed abload result line"),
        (STREAM.replace("bytes=300", "bytes=-300") + "\n", "malformed abload result line"),
        (IDLE.replace("mib=64 ", "mib=lots ") + "\n", "malformed abload result line"),
        (STREAM.replace("path=/dev/vdb", "path=") + "\n", "malformed abload result line"),
        # only idle ends by a signal as intended; stream and reread run for SECONDS
        (STREAM.replace("end=time", "end=signal") + "\n", "malformed abload result line"),
        (IDLE.replace("end=time", "end=done") + "\n", "malformed abload result line"),
        (STREAM + "\n" + IDLE + "\n", "2 result lines, expected one"),
        (STREAM + "\n" + STREAM + "\n", "2 result lines, expected one"),
    ],
)
def test_errors(text: str, needle: str):
    with pytest.raises(ValueError, match="abload") as e:
        parse(text)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)
