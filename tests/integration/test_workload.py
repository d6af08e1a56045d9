"""images/tools/ebizzy.c on the host: built like the rig builds guest tools, then run briefly.

Not a `vm` test: it needs gcc (with the static libc) and nothing else; no root. Every run
is short (-S 1 or 2, small chunks), so the whole file stays well under 30 s.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from rig.bench.ebizzy import EbizzyResult, parse
from tests.integration import native_tools

SMALL = ["-n", "4", "-s", "65536", "-t", "2"]


@pytest.fixture(scope="module")
def ebizzy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return native_tools.build("ebizzy", tmp_path_factory.mktemp("ebizzy"))


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    wall_s: float

    @property
    def result(self) -> EbizzyResult:
        return parse(self.stdout)

    def picks(self) -> list[int]:
        """Per-chunk pick counts from -D, in chunk order."""
        found = [(int(m[1]), int(m[2]))
                 for m in re.finditer(r"^chunk (\d+) (\d+)$", self.stderr, re.M)]
        assert [i for i, _ in found] == list(range(len(found))), self.stderr
        return [n for _, n in found]

    def searches(self) -> tuple[int, int]:
        m = re.search(r"^searches (\d+) found (\d+)$", self.stderr, re.M)
        assert m, self.stderr
        return int(m[1]), int(m[2])


def run(binary: Path, *args: str, seconds: int = 1) -> Run:
    t0 = time.monotonic()
    p = subprocess.run([str(binary), "-S", str(seconds), *args], capture_output=True,
                       text=True, timeout=seconds + 20, check=False)
    return Run(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


@pytest.mark.parametrize(
    "flags",
    [
        ["-m"],
        ["-M"],
        ["-R"],
        ["-l"],
        ["-p", "-v"],
        ["-P"],
        ["-z"],
        ["-T"],
        ["-vv"],
        ["-t", "1"],
        ["-t", "2"],
        ["-m", "-p", "-P", "-v"],
        ["-M", "-R", "-z", "-l"],
    ],
    ids=" ".join,
)
def test_each_flag_runs_and_prints_ebizzy_output(ebizzy: Path, flags: list[str]):
    r = run(ebizzy, *SMALL, "-D", *flags)
    assert r.rc == 0, r.stderr
    res = r.result
    assert res.records_per_s > 0
    assert 0.95 <= res.real_s <= 1.5
    assert res.user_s >= 0 and res.sys_s >= 0
    picks = r.picks()
    assert len(picks) == 4
    # picks happen once per record: their total is the rate times the run time
    assert abs(sum(picks) - res.records_per_s * res.real_s) <= 0.02 * sum(picks) + 2
    searches, found = r.searches()
    assert found == searches
    # -T only touches the copy, it does not search
    assert searches == (0 if "-T" in flags else sum(picks))
    if any(f.startswith("-v") for f in flags):
        assert "Threads starting" in r.stdout and "Threads finished" in r.stdout
        assert "mprotect" not in r.stdout  # -p protected every even chunk cleanly
    if "-vv" in flags:
        assert "Thread 0 started" in r.stdout and "Thread 1 finished" in r.stdout


def test_defaults_are_ebizzy_0_3s(ebizzy: Path):
    r = run(ebizzy, "-v")
    assert r.rc == 0, r.stderr
    dump = dict(line.rsplit(" ", 1) for line in r.stdout.splitlines()
                if re.fullmatch(r"[a-z_ ]+ \d+", line))
    assert dump["chunks"] == "10"
    assert dump["chunk_size"] == str(8 * 64 * 1024)
    assert dump["threads"] == str(2 * (os.cpu_count() or 1))
    assert dump["seconds"] == "1"
    assert dump["verbose"] == "1"
    assert dump["linear"] == "0"
    assert r.result.records_per_s > 0


def test_most_verbose_prints_search_keys(ebizzy: Path):
    r = run(ebizzy, "-vvv", "-n", "2", "-s", "4194304", "-t", "1", "-D")
    assert r.rc == 0, r.stderr
    keys = re.findall(r"^Search key (\d+), copy size 4194304$", r.stdout, re.M)
    assert len(keys) == r.searches()[0] > 0
    assert all(int(k) < 4194304 // 8 for k in keys)
    assert r.result.records_per_s > 0


def test_picks_spread_over_every_chunk_and_every_search_finds_its_key(ebizzy: Path):
    r = run(ebizzy, "-n", "16", "-s", "65536", "-t", "2", "-R", "-D", seconds=2)
    assert r.rc == 0, r.stderr
    picks = r.picks()
    assert len(picks) == 16
    mean = sum(picks) / len(picks)
    assert min(picks) > 0, picks
    assert max(picks) <= 3 * mean, picks
    assert min(picks) >= mean / 3, picks
    searches, found = r.searches()
    assert searches == found == sum(picks) > 0


def test_run_time_is_honoured(ebizzy: Path):
    r = run(ebizzy, *SMALL, seconds=2)
    assert r.rc == 0, r.stderr
    assert 2.0 <= r.wall_s < 3.0
    assert 2.0 <= r.result.real_s < 2.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-x"], "invalid option"),
        (["-c"], "invalid option"),
        (["-m", "-M"], "Both -m"),
        (["-n", "0"], ""),
        (["-n", "abc"], ""),
        (["-s", "4"], "smaller than record size"),
        (["-t", "-1"], ""),
        (["-S"], "requires an argument"),
        (["surplus"], "unexpected argument"),
    ],
    ids=" ".join,
)
def test_bad_flags_exit_nonzero_with_usage(ebizzy: Path, args: list[str], message: str):
    p = subprocess.run([str(ebizzy), *args], capture_output=True, text=True, timeout=10,
                       check=False)
    assert p.returncode == 1
    assert "Usage:" in p.stderr and "-S <seconds>" in p.stderr
    assert message in p.stderr
    assert "records/s" not in p.stdout
