"""Parser for the output of ebizzy (ebizzy 0.3, or our images/tools/ebizzy.c).

The result is four lines, printed after any verbose lines:

    81546 records/s
    real 10.00 s
    user  9.65 s
    sys   0.02 s

Everything else (verbose option dumps, per-thread lines, search keys, shell noise,
CRLF line ends from a terminal) is ignored. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RECORDS = re.compile(r"(\d+) records/s")
_TIMES = {
    name: re.compile(rf"{name}\s+(\d+(?:\.\d+)?) s") for name in ("real", "user", "sys")
}


@dataclass(frozen=True)
class EbizzyResult:
    records_per_s: int
    real_s: float
    user_s: float
    sys_s: float


def parse(text: str) -> EbizzyResult:
    """The result of one ebizzy run; ValueError (one line) if `text` does not hold one."""
    lines = [line.strip() for line in text.splitlines()]
    at = [i for i, line in enumerate(lines) if _RECORDS.fullmatch(line)]
    if not at:
        raise ValueError("not ebizzy output: no 'N records/s' line")
    if len(at) > 1:
        raise ValueError(f"ambiguous ebizzy output: {len(at)} 'records/s' lines, expected one")
    m = _RECORDS.fullmatch(lines[at[0]])
    assert m is not None
    records = int(m.group(1))

    times: dict[str, float] = {}
    for line in lines[at[0] + 1 :]:
        for name, pattern in _TIMES.items():
            t = pattern.fullmatch(line)
            if t is not None and name not in times:
                times[name] = float(t.group(1))
    missing = [name for name in _TIMES if name not in times]
    if missing:
        raise ValueError(
            "incomplete ebizzy output: no "
            + ", ".join(f"'{name} N s'" for name in missing)
            + " line after 'records/s'"
        )
    return EbizzyResult(
        records_per_s=records, real_s=times["real"], user_s=times["user"], sys_s=times["sys"]
    )
