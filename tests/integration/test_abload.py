"""images/tools/abload.c on the host: built like the rig builds guest tools, then run briefly.

Not a `vm` test: it needs gcc (with the static libc) and nothing else; no root. The data
is a 16 MiB temporary file (64 MiB for reread, whose page cache footprint is checked with
mincore(2)) and every timed run is -S 1 or cut short by a signal: about 7 s in all.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rig.bench.abload import IdleResult, ReadResult, parse
from tests.integration import native_tools

MIB = 1 << 20
DATA_MIB = 16


@pytest.fixture(scope="module")
def abload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return native_tools.build("abload", tmp_path_factory.mktemp("abload"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("abload-data") / "data"
    path.write_bytes(os.urandom(DATA_MIB * MIB))
    return path


def run(binary: Path, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def read_result(binary: Path, *args: str) -> ReadResult:
    p = run(binary, *args)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    r = parse(p.stdout, kind=args[0])
    assert isinstance(r, ReadResult)
    assert r.end == "time" and r.complete
    assert 1.0 <= r.seconds < 1.5
    assert r.mb_s > 0
    assert r.mb_s == pytest.approx(r.bytes_read / r.seconds / 1e6, rel=2e-3)
    assert r.passes == r.bytes_read // r.span_bytes
    return r


@pytest.mark.parametrize("block_kib", ["1024", "96"])  # 96 KiB: a short last read per pass
def test_stream_reads_the_whole_file_and_wraps(abload: Path, data: Path, block_kib: str):
    r = read_result(abload, "stream", "-d", str(data), "-S", "1", "-b", block_kib)
    assert r.kind == "stream" and r.path == str(data)
    assert r.span_bytes == DATA_MIB * MIB
    assert r.block_kib == int(block_kib)
    assert r.passes >= 1


def resident(path: Path) -> list[bool]:
    """Which pages of `path` are in the page cache, by mincore(2) on a mapping of it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    size = path.stat().st_size
    vec = (ctypes.c_ubyte * ((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE))()
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap")
        try:
            if libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)
    return [bool(v & 1) for v in vec]


def drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def readahead_mib(path: Path) -> int:
    """The kernel's readahead limit for the disk holding `path`, rounded up (32 if unknown)."""
    st = os.stat(path)
    dev = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    for queue in (dev / "queue", dev / ".." / "queue"):  # a disk, or a partition of one
        try:
            return -(-int((queue / "read_ahead_kb").read_text()) // 1024)
        except (OSError, ValueError):
            continue
    return 32


def test_reread_reads_only_the_hot_set(abload: Path, tmp_path: Path):
    hot_mib, size_mib = 2, 64
    data = tmp_path / "data"
    data.write_bytes(os.urandom(size_mib * MIB))
    drop_cache(data)
    if any(resident(data)):
        pytest.skip(f"{tmp_path} keeps its page cache (tmpfs?): cannot see what was read")
    r = read_result(abload, "reread", "-d", str(data), "-H", str(hot_mib), "-S", "1")
    assert r.kind == "reread"
    assert r.span_bytes == hot_mib * MIB
    assert r.passes >= 2
    # what is left over after the whole passes is less than one hot set
    assert 0 <= r.bytes_read - r.passes * r.span_bytes < r.span_bytes
    # the hot set is cached, and nothing was read past it but the kernel's readahead
    cached = resident(data)
    per_mib = MIB // mmap.PAGESIZE
    assert all(cached[: hot_mib * per_mib])
    limit = hot_mib + readahead_mib(data) + 2
    if limit < size_mib:
        assert not any(cached[limit * per_mib :]), f"reread read beyond {limit} MiB"


def vm_rss_kib(pid: int) -> int:
    m = re.search(r"^VmRSS:\s+(\d+) kB$", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert m, f"no VmRSS for {pid}"
    return int(m[1])


def wait_for_line(p: subprocess.Popen[str], prefix: str, timeout: float = 10) -> str:
    assert p.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([p.stdout], [], [], deadline - time.monotonic())
        if ready:
            line = p.stdout.readline()
            assert line, f"abload ended before printing {prefix!r}"
            if line.startswith(prefix):
                return line
    raise AssertionError(f"no {prefix!r} line within {timeout} s")


def anon_pages(pid: int, length: int) -> list[bytes]:
    """Every 64th page of the anonymous mapping of `length` bytes (or more) in `pid`."""
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if hi - lo >= length and fields[1].startswith("rw") and len(fields) == 5:
            with open(f"/proc/{pid}/mem", "rb") as mem:
                pages = []
                for off in range(0, hi - lo, 64 * mmap.PAGESIZE):
                    mem.seek(lo + off)
                    pages.append(mem.read(mmap.PAGESIZE))
                return pages
    raise AssertionError(f"no anonymous mapping of {length} bytes in {pid}")


def test_idle_holds_its_memory_until_sigterm(abload: Path):
    mib = 64
    p = subprocess.Popen([str(abload), "idle", "-m", str(mib)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        holding = wait_for_line(p, "abload idle: holding ")
        assert re.fullmatch(rf"abload idle: holding mib={mib} touch_seconds=\d+\.\d{{3}}\n",
                            holding)
        for _ in range(3):  # all resident (a static binary alone is < 2 MiB), and kept
            assert mib * 1024 <= vm_rss_kib(p.pid) <= (mib + 4) * 1024
            time.sleep(0.2)
        try:
            pages = anon_pages(p.pid, mib * MIB)
            assert len(pages) == mib * MIB // mmap.PAGESIZE // 64
        except PermissionError:  # no ptrace access to our own child: skip the content check
            pages = []
        assert not any(page == bytes(len(page)) for page in pages), "a zero page"
        assert len(set(pages)) == len(pages), "two pages alike"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 0, err
    assert err == ""
    r = parse(holding + out, kind="idle")
    assert isinstance(r, IdleResult)
    assert (r.mib, r.touched_mib, r.end, r.complete) == (mib, mib, "signal", True)
    assert r.held_seconds >= 0.6
    assert r.touch_seconds > 0


def test_idle_for_seconds(abload: Path):
    p = run(abload, "idle", "-m", "16", "-S", "1")
    assert p.returncode == 0, p.stderr
    r = parse(p.stdout)
    assert isinstance(r, IdleResult)
    assert (r.mib, r.touched_mib, r.end, r.complete) == (16, 16, "time", True)
    assert 1.0 <= r.held_seconds < 1.5
    assert p.stdout.startswith("abload idle: holding mib=16 ")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_stream_stopped_by_a_signal_is_incomplete(abload: Path, data: Path, sig: int):
    p = subprocess.Popen([str(abload), "stream", "-d", str(data), "-S", "30"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    p.send_signal(sig)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    r = parse(out, kind="stream")
    assert isinstance(r, ReadResult)
    assert (r.end, r.complete) == ("interrupted", False)
    assert 0.3 <= r.seconds < 5
    assert r.bytes_read > 0 and r.passes == r.bytes_read // r.span_bytes


def test_idle_stopped_while_holding_for_seconds_is_incomplete(abload: Path):
    p = subprocess.Popen([str(abload), "idle", "-m", "8", "-S", "30"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    holding = wait_for_line(p, "abload idle: holding ")
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=10)
    assert p.returncode == 0
    r = parse(holding + out)
    assert isinstance(r, IdleResult)
    assert (r.touched_mib, r.end, r.complete) == (8, "interrupted", False)


def test_help(abload: Path):
    for args in (["-h"], ["stream", "-h"], ["idle", "-h"]):
        p = run(abload, *args)
        assert p.returncode == 0
        assert p.stdout.startswith("Usage: abload stream -d PATH -S SECONDS")
        assert "abload idle -m MIB [-S SECONDS]" in p.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no kind given"),
        (["copy"], "unknown kind 'copy'"),
        (["stream", "-x"], "unknown option -x"),
        (["stream", "-S", "1"], "-d PATH is required"),
        (["stream", "-d", "DATA"], "-S SECONDS is required"),
        (["stream", "-d", "DATA", "-S"], "-S needs a value"),
        (["stream", "-d", "DATA", "-S", "0"], "-S wants a whole number"),
        (["stream", "-d", "DATA", "-S", "1.5"], "-S wants a whole number"),
        (["stream", "-d", "DATA", "-S", "1", "-b", "0"], "-b wants a whole number"),
        (["stream", "-d", "DATA", "-S", "1", "-b", "65537"], "-b wants a whole number"),
        (["stream", "-d", "DATA", "-S", "1", "surplus"], "unexpected argument 'surplus'"),
        (["stream", "-d", "DATA", "-S", "1", "-H", "1"], "unknown option -H"),
        (["reread", "-d", "DATA", "-S", "1"], "-H HOT_MIB is required"),
        (["reread", "-d", "DATA", "-S", "1", "-H", "17"], "more than"),
        (["idle"], "-m MIB is required"),
        (["idle", "-m", "-5"], "-m wants a whole number"),
        (["idle", "-m", "4", "-d", "DATA"], "unknown option -d"),
        (["stream", "-d", "/dev/null", "-S", "1"], "neither a block device nor a regular file"),
        (["stream", "-d", "EMPTY", "-S", "1"], "is empty"),
    ],
    ids=lambda a: " ".join(a) if isinstance(a, list) else "",
)
def test_bad_usage_exits_2(abload: Path, data: Path, tmp_path: Path, args: list[str],
                           message: str):
    (tmp_path / "empty").touch()
    args = [{"DATA": str(data), "EMPTY": str(tmp_path / "empty")}.get(a, a) for a in args]
    p = run(abload, *args)
    assert p.returncode == 2
    assert p.stdout == ""
    assert re.fullmatch(r"abload: [^\n]+\n", p.stderr), p.stderr
    assert message in p.stderr
    with pytest.raises(ValueError, match="abload failed"):
        parse(p.stdout + p.stderr)


@pytest.mark.parametrize("kind", [["stream"], ["reread", "-H", "1"]], ids=lambda k: k[0])
def test_missing_file_exits_1(abload: Path, tmp_path: Path, kind: list[str]):
    missing = tmp_path / "no-such-disk"
    p = run(abload, *kind, "-d", str(missing), "-S", "1")
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr == f"abload: cannot open {missing}: No such file or directory\n"
    with pytest.raises(ValueError, match="abload failed: cannot open"):
        parse(p.stderr)
