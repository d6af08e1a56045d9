"""procfs parsers against real files captured on a Linux machine (tests/fixtures/proc)."""


import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.bench.procstat import (
    VMSTAT_DELTA_KEYS,
    ProcStat,
    QemuUsage,
    count_dmesg_oom_kills,
    parse_meminfo,
    parse_oom_kills,
    parse_proc_stat,
    parse_uptime,
    parse_vmstat,
    process_age_s,
    qemu_usage,
    vmstat_delta,
)
from tests import FIXTURES

PROC = FIXTURES / "proc"
CLK_TCK = 100  # of the machine the fixtures come from (getconf CLK_TCK)


def fixture(name: str) -> str:
    return (PROC / name).read_text()


# --- /proc/vmstat ---------------------------------------------------------------------------

def test_vmstat_real_file():
    v = parse_vmstat(fixture("vmstat"))
    assert len(v) == 192  # one counter per line
    assert v["nr_free_pages"] == 881972
    assert v["nr_unstable"] == 0  # the last line
    assert (v["pswpin"], v["pswpout"], v["pgmajfault"], v["pgfault"], v["oom_kill"]) == (
        0, 0, 217, 445091, 0)
    assert all(isinstance(x, int) for x in v.values())


def test_vmstat_delta_real_files():
    start, end = parse_vmstat(fixture("vmstat")), parse_vmstat(fixture("vmstat-later"))
    d = vmstat_delta(start, end)
    assert tuple(d) == VMSTAT_DELTA_KEYS
    assert d == {"pswpin": 0, "pswpout": 0, "pgmajfault": 927 - 217,
                 "pgfault": 10643564 - 445091, "oom_kill": 0}
    assert vmstat_delta(start, end, keys=("pgfault",)) == {"pgfault": 10643564 - 445091}


def test_vmstat_delta_rejects_backwards_and_missing_counters():
    with pytest.raises(ValueError, match="pgfault went backwards"):
        vmstat_delta({"pgfault": 10}, {"pgfault": 9}, keys=("pgfault",))
    with pytest.raises(ValueError, match="end snapshot has no oom_kill"):
        vmstat_delta({"oom_kill": 0}, {}, keys=("oom_kill",))


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("pswpin 1 2\n", "line 1"),
    ("pswpin\n", "line 1"),
    ("pswpin 0\npswpout x\n", "pswpout is not an integer"),
    ("pswpin 0\npswpin 1\n", "appears twice"),
])
def test_vmstat_rejects_malformed(text, message):
    with pytest.raises(ValueError, match=message):
        parse_vmstat(text)


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,20}", fullmatch=True),
                       st.integers(0, 2**64 - 1), min_size=1))
def test_vmstat_round_trips(counters):
    text = "".join(f"{k} {v}\n" for k, v in counters.items())
    assert parse_vmstat(text) == counters
    assert vmstat_delta(counters, counters, keys=counters) == dict.fromkeys(counters, 0)


# --- /proc/<pid>/stat -----------------------------------------------------------------------

def test_stat_comm_with_spaces_and_parentheses():
    s = parse_proc_stat(fixture("stat-space-paren"))
    assert s == ProcStat(pid=2426, comm="we ird) (x", minflt=2853, majflt=16, utime_ticks=4,
                         stime_ticks=1, starttime_ticks=157762, num_threads=1, rss_pages=3354)


def test_stat_threads():
    start = parse_proc_stat(fixture("stat-threads-start"))
    mid = parse_proc_stat(fixture("stat-threads-mid"))
    end = parse_proc_stat(fixture("stat-threads-end"))
    assert start.comm == mid.comm == end.comm == "qemu vm-down"
    assert start.pid == end.pid == 10055
    assert start.starttime_ticks == end.starttime_ticks == 172857
    assert (start.num_threads, mid.num_threads, end.num_threads) == (1, 4, 2)
    assert (start.minflt, start.majflt, start.utime_ticks, start.stime_ticks) == (2851, 1, 2, 1)
    assert (end.minflt, end.majflt, end.utime_ticks, end.stime_ticks) == (278831, 1, 21, 64)
    assert end.rss_pages == 3691


@pytest.mark.parametrize("text", [
    "",
    "1234 cat R 1 1",  # no parentheses
    "x (cat) R 1 1 1 0 -1 0 1 0 0 0 0 0 0 0 20 0 1 0 5 0 0",  # bad pid
    "1234 (cat) R 1 1 1 0 -1",  # truncated
    "1234 (cat) R 1 1 1 0 -1 0 x 0 0 0 0 0 0 0 20 0 1 0 5 0 0 0",  # minflt not a number
])
def test_stat_rejects_malformed(text):
    with pytest.raises(ValueError):
        parse_proc_stat(text)


@given(st.text(st.characters(codec="utf-8", exclude_characters="\0\n"), max_size=15),
       st.integers(1, 2**22), st.lists(st.integers(0, 2**40), min_size=21, max_size=50))
def test_stat_any_comm(comm, pid, numbers):
    # After comm: state, then fields 4.. as numbers (as many as the kernel version prints).
    text = f"{pid} ({comm}) S " + " ".join(map(str, numbers)) + "\n"
    s = parse_proc_stat(text)
    assert (s.pid, s.comm) == (pid, comm)
    assert s.minflt == numbers[10 - 4]
    assert s.rss_pages == numbers[24 - 4]


# --- QEMU usage -----------------------------------------------------------------------------

def test_qemu_usage_between_samples():
    start = parse_proc_stat(fixture("stat-threads-start"))
    end = parse_proc_stat(fixture("stat-threads-end"))
    u = qemu_usage(start, end, clk_tck=CLK_TCK, elapsed_s=1.5)
    assert u.elapsed_s == 1.5
    assert u.user_s == pytest.approx(0.19)
    assert u.sys_s == pytest.approx(0.63)
    assert u.cpu_pct == pytest.approx((0.19 + 0.63) / 1.5 * 100)
    assert (u.major_faults, u.minor_faults) == (0, 278831 - 2851)


def test_qemu_usage_since_start_is_absolute():
    end = parse_proc_stat(fixture("stat-threads-end"))
    u = qemu_usage(None, end, clk_tck=CLK_TCK, elapsed_s=2.0)
    assert u == QemuUsage(elapsed_s=2.0, user_s=0.21, sys_s=0.64, cpu_pct=pytest.approx(42.5),
                          major_faults=1, minor_faults=278831)


def test_qemu_usage_like_time_can_exceed_100_percent():
    a = ProcStat(1, "qemu", 0, 0, 0, 0, 50, 4, 0)
    b = ProcStat(1, "qemu", 10, 2, 300, 100, 50, 4, 0)
    assert qemu_usage(a, b, clk_tck=100, elapsed_s=2.0).cpu_pct == pytest.approx(200.0)


def test_qemu_usage_rejects_another_process_and_bad_arguments():
    start = parse_proc_stat(fixture("stat-threads-start"))
    end = parse_proc_stat(fixture("stat-threads-end"))
    other = parse_proc_stat(fixture("stat-space-paren"))
    with pytest.raises(ValueError, match="different processes"):
        qemu_usage(other, end, clk_tck=CLK_TCK, elapsed_s=1.0)
    with pytest.raises(ValueError, match="went backwards"):
        qemu_usage(end, start, clk_tck=CLK_TCK, elapsed_s=1.0)
    with pytest.raises(ValueError, match="elapsed_s"):
        qemu_usage(start, end, clk_tck=CLK_TCK, elapsed_s=0.0)
    with pytest.raises(ValueError, match="clk_tck"):
        qemu_usage(start, end, clk_tck=0, elapsed_s=1.0)


def test_process_age_from_uptime():
    uptime = parse_uptime(fixture("uptime"))
    assert uptime == 1725.04
    s = ProcStat(7, "qemu", 0, 0, 0, 0, 100_000, 1, 0)
    assert process_age_s(s, uptime_s=uptime, clk_tck=CLK_TCK) == pytest.approx(725.04)
    with pytest.raises(ValueError, match="started after"):
        process_age_s(s, uptime_s=999.0, clk_tck=CLK_TCK)
    with pytest.raises(ValueError):
        parse_uptime("")


# --- OOM kills ------------------------------------------------------------------------------

def test_oom_kills_from_vmstat():
    assert parse_oom_kills(parse_vmstat(fixture("vmstat"))) == 0
    assert parse_oom_kills({"oom_kill": 3}) == 3
    assert parse_oom_kills(vmstat_delta({"oom_kill": 2}, {"oom_kill": 5}, ("oom_kill",))) == 3
    assert parse_oom_kills({"pswpin": 0}) is None  # kernel without the counter


def test_oom_kills_from_dmesg():
    # one global and one memory-cgroup kill; "invoked oom-killer", "oom-kill:constraint"
    # and "oom_reaper: reaped process" lines of the same kills are not counted again
    assert count_dmesg_oom_kills(fixture("dmesg-oom")) == 2
    assert count_dmesg_oom_kills("") == 0
    # older kernels: "Kill process" (not counted), then "Killed process" (counted)
    old = ("[ 9.1] Out of memory: Kill process 812 (ebizzy) score 912 or sacrifice child\n"
           "[ 9.1] Killed process 812 (ebizzy) total-vm:1186064kB, anon-rss:1125368kB\n")
    assert count_dmesg_oom_kills(old) == 1


# --- /proc/meminfo --------------------------------------------------------------------------

def test_meminfo_real_file():
    m = parse_meminfo(fixture("meminfo"))
    assert len(m) == 54
    assert m["MemTotal"] == 24683656
    assert m["MemFree"] == 24580612
    assert m["SwapTotal"] == 0
    assert m["Hugepagesize"] == 2048
    assert m["HugePages_Total"] == 0  # a count, not kB
    assert m["DirectMap1G"] == 25165824


@pytest.mark.parametrize("text", [
    "",
    "MemTotal 100 kB\n",  # no colon
    "MemTotal: 100 MB\n",  # not kB
    "MemTotal: lots kB\n",
    "MemTotal:\n",
])
def test_meminfo_rejects_malformed(text):
    with pytest.raises(ValueError):
        parse_meminfo(text)
