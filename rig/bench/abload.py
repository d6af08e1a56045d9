"""Parser for the output of images/tools/abload.c (workloads FPR cannot help).

Each run prints exactly one result line (see the header of abload.c):

    abload stream: bytes=B seconds=T mb_s=R passes=P span=N block_kib=K end=E path=PATH
    abload reread: bytes=B seconds=T mb_s=R passes=P span=N block_kib=K end=E path=PATH
    abload idle: mib=M touched_mib=W touch_seconds=T held_seconds=H end=E

The score of stream and reread is mb_s (10^6 bytes per second); idle's numbers are the
MiB it holds and how long writing them took. `end` is "time" (the asked SECONDS were up),
"signal" (idle without -S, ended by SIGTERM/SIGINT as intended) or "interrupted"
(SIGTERM/SIGINT before the end: the numbers cover only what was done); `complete` is
False only for "interrupted". A run killed outright (SIGKILL, SIGHUP) prints no result
line: ValueError, as for a failed run, whose "abload: ..." error line is quoted.

Everything else (idle's "holding" progress line, shell noise, CRLF line ends from a
terminal) is ignored. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUM = r"\d+(?:\.\d+)?"
#: A line that claims to be a result; it must then match its kind's pattern exactly.
_CANDIDATE = re.compile(r"abload (stream|reread|idle): (?:bytes|mib)=.*")
_READ = re.compile(
    rf"abload (?P<kind>stream|reread): bytes=(?P<bytes>\d+) seconds=(?P<seconds>{_NUM})"
    rf" mb_s=(?P<mb_s>{_NUM}) passes=(?P<passes>\d+) span=(?P<span>\d+)"
    r" block_kib=(?P<block_kib>\d+) end=(?P<end>time|interrupted) path=(?P<path>\S.*)"
)
_IDLE = re.compile(
    rf"abload idle: mib=(?P<mib>\d+) touched_mib=(?P<touched>\d+)"
    rf" touch_seconds=(?P<touch>{_NUM}) held_seconds=(?P<held>{_NUM})"
    r" end=(?P<end>time|signal|interrupted)"
)
_HOLDING = re.compile(r"abload idle: holding mib=\d+ touch_seconds=.*")
_ERROR = re.compile(r"abload: .+")


@dataclass(frozen=True)
class ReadResult:
    """One stream or reread run."""

    kind: str  # "stream" or "reread"
    mb_s: float
    bytes_read: int
    seconds: float
    passes: int  # whole passes over span_bytes: bytes_read // span_bytes
    span_bytes: int  # bytes per pass: the size of path (stream), HOT_MIB MiB (reread)
    block_kib: int
    path: str
    end: str  # "time" or "interrupted"
    complete: bool


@dataclass(frozen=True)
class IdleResult:
    """One idle run."""

    kind: str  # "idle"
    mib: int
    touched_mib: int  # below mib only when interrupted while writing
    touch_seconds: float
    held_seconds: float
    end: str  # "time", "signal" or "interrupted"
    complete: bool


AbloadResult = ReadResult | IdleResult


def parse(text: str, kind: str | None = None) -> AbloadResult:
    """The result of one abload run (of `kind`, if given); ValueError (one line) if none."""
    if kind is not None and kind not in ("stream", "reread", "idle"):
        raise ValueError(f"unknown abload kind {kind!r}: expected stream, reread or idle")
    lines = [line.strip() for line in text.splitlines()]
    found = [line for line in lines if _CANDIDATE.fullmatch(line)]
    if not found:
        raise ValueError(_why_no_result(lines))
    if len(found) > 1:
        raise ValueError(f"ambiguous abload output: {len(found)} result lines, expected one")
    line = found[0]
    result = _parse_line(line)
    if result is None:
        raise ValueError(f"malformed abload result line: {line[:120]!r}")
    if kind is not None and result.kind != kind:
        raise ValueError(f"expected an abload {kind} result, got abload {result.kind}")
    return result


def _parse_line(line: str) -> AbloadResult | None:
    m = _READ.fullmatch(line)
    if m is not None:
        return ReadResult(
            kind=m["kind"],
            mb_s=float(m["mb_s"]),
            bytes_read=int(m["bytes"]),
            seconds=float(m["seconds"]),
            passes=int(m["passes"]),
            span_bytes=int(m["span"]),
            block_kib=int(m["block_kib"]),
            path=m["path"],
            end=m["end"],
            complete=m["end"] != "interrupted",
        )
    m = _IDLE.fullmatch(line)
    if m is not None:
        return IdleResult(
            kind="idle",
            mib=int(m["mib"]),
            touched_mib=int(m["touched"]),
            touch_seconds=float(m["touch"]),
            held_seconds=float(m["held"]),
            end=m["end"],
            complete=m["end"] != "interrupted",
        )
    return None


def _why_no_result(lines: list[str]) -> str:
    errors = [line for line in lines if _ERROR.fullmatch(line)]
    if errors:
        return f"abload failed: {errors[0].removeprefix('abload: ')}"
    if any(_HOLDING.fullmatch(line) for line in lines):
        return "incomplete abload idle output: a 'holding' line but no result line"
    return "not abload output: no 'abload KIND: ...' result line"
