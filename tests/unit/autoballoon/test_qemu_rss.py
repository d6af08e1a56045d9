"""What a VM's QEMU process holds (host/autoballoon/qemu_rss.py), and where libvirt keeps
its pid: the figures behind the model's VmRss."""

from __future__ import annotations

from pathlib import Path

import pytest
from autoballoon import qemu_rss
from autoballoon.adapter import DomainRef
from autoballoon.libvirt_adapter import LibvirtAdapter, Selector

STATUS = """Name:\tqemu-system-x86
Umask:\t0077
State:\tS (sleeping)
Pid:\t4242
VmPeak:\t 4000000 kB
VmRSS:\t  409600 kB
RssAnon:\t  400000 kB
HugetlbPages:\t 1048576 kB
VmSwap:\t   20480 kB
Threads:\t9
voluntary_ctxt_switches:\t150
"""


def test_status_figures_are_its_kb_lines():
    figures = qemu_rss.parse_status(STATUS)
    assert figures["VmRSS"] == 409600 and figures["VmSwap"] == 20480
    assert "Threads" not in figures and "Pid" not in figures


def test_rss_counts_resident_swapped_and_huge_pages():
    assert qemu_rss.rss_mib(qemu_rss.parse_status(STATUS)) == 400 + 20 + 1024


def test_missing_swap_and_hugetlb_count_as_none_and_no_vmrss_is_no_figure():
    assert qemu_rss.rss_mib({"VmRSS": 2048}) == 2
    assert qemu_rss.rss_mib({"VmSwap": 2048}) is None  # an exiting process
    assert qemu_rss.rss_mib(qemu_rss.parse_status("garbage\nVmRSS: lots kB\n")) is None


def test_read_rss_mib_reads_proc(tmp_path: Path):
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "status").write_text(STATUS)
    assert qemu_rss.read_rss_mib(7, tmp_path) == 1444
    with pytest.raises(OSError):
        qemu_rss.read_rss_mib(8, tmp_path)


@pytest.mark.parametrize("text", [
    STATUS,
    "VmRSS:\t 2048 kB\nVmSwap:\t 1024 kB\n",  # the first line, no trailing text
    "Name:\tx\nVmSwap:\t 1024 kB",  # no VmRSS: an exiting process
    "Name:\tx\nVmRSS:\t lots kB\nVmSwap:\t 1024 kB\n",
    "Name:\tx\nVmRSS:\t 4096 kB\nHugetlbPages:\t 2048 kB",  # no newline at the end
    "Name:\tVmRSS:\t 9999 kB\nVmRSS:\t 4096 kB\n",  # only at a line's start
    "",
])
def test_the_bytes_reader_finds_what_parse_status_finds(text: str):
    expected = qemu_rss.rss_mib(qemu_rss.parse_status(text, qemu_rss.RSS_FIELDS))
    assert qemu_rss.status_rss_mib(text.encode()) == expected


def test_read_rss_mib_reads_a_status_longer_than_one_read(tmp_path: Path):
    (tmp_path / "7").mkdir()
    padding = "x" * qemu_rss.READ_SIZE
    (tmp_path / "7" / "status").write_text(f"Name:\t{padding}\n{STATUS}")
    assert qemu_rss.read_rss_mib(7, tmp_path) == 1444


@pytest.mark.parametrize(("uri", "env", "expected"), [
    ("qemu:///system", {}, "/run/libvirt/qemu/vm1.pid"),
    ("qemu+unix:///system", {}, "/run/libvirt/qemu/vm1.pid"),
    ("qemu:///session", {"XDG_RUNTIME_DIR": "/run/user/1000"},
     "/run/user/1000/libvirt/qemu/run/vm1.pid"),
    ("qemu:///session", {}, None),
    ("qemu+ssh://root@host2/system", {}, None),
    ("qemu://host2/system", {}, None),
    ("test:///default", {}, None),
])
def test_pid_file_only_for_local_qemu_uris(uri, env, expected):
    path = qemu_rss.pid_file(uri, "vm1", env)
    assert (None if path is None else str(path)) == expected


def test_pid_file_never_leaves_its_directory():
    assert qemu_rss.pid_file("qemu:///system", "../etc/x", {}) is None
    assert qemu_rss.pid_file("qemu:///system", ".hidden", {}) is None


def test_parse_pid():
    assert qemu_rss.parse_pid("4242\n") == 4242
    assert qemu_rss.parse_pid("") is None and qemu_rss.parse_pid("0") is None
    assert qemu_rss.parse_pid("-1") is None and qemu_rss.parse_pid("x") is None


REF = DomainRef("vm1", "uuid", 3)


def adapter(uri: str) -> LibvirtAdapter:
    return LibvirtAdapter(uri, Selector(), lambda _ev: None)


def test_the_libvirt_adapter_reads_the_session_pid_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    run = tmp_path / "libvirt" / "qemu" / "run"
    run.mkdir(parents=True)
    (run / "vm1.pid").write_text("4242")
    assert adapter("qemu:///session").qemu_pid(REF) == 4242
    (run / "vm1.pid").unlink()
    assert adapter("qemu:///session").qemu_pid(REF) is None  # stopped meanwhile
    assert adapter("qemu+ssh://root@host2/system").qemu_pid(REF) is None



def test_only_the_rss_fields_need_parsing():
    assert qemu_rss.parse_status(STATUS, qemu_rss.RSS_FIELDS) == {
        k: v for k, v in qemu_rss.parse_status(STATUS).items() if k in qemu_rss.RSS_FIELDS}


def test_a_status_kept_open_reads_the_file_anew_each_time(tmp_path: Path):
    (tmp_path / "7").mkdir()
    status = tmp_path / "7" / "status"
    status.write_text(STATUS)
    fd = qemu_rss.open_status(7, tmp_path)
    try:
        assert qemu_rss.read_status_rss_mib(fd) == 1444
        status.write_text(STATUS.replace("409600", "512000"))  # same inode, new figures
        assert qemu_rss.read_status_rss_mib(fd) == 1544
        assert qemu_rss.read_status_rss_mib(fd) == 1544
    finally:
        import os
        os.close(fd)


def test_the_stats_poller_keeps_each_status_open_and_closes_those_of_vms_gone(tmp_path: Path):
    import os
    import time

    from autoballoon.adapter import DomainStats
    from autoballoon.workers import Polled, StatsPoller

    refs = [DomainRef(f"vm{i}", "u", i) for i in range(3)]
    for i in range(3):
        (tmp_path / str(100 + i)).mkdir()
        (tmp_path / str(100 + i) / "status").write_text(STATUS)

    class Adapter:
        def domain_stats(self, wanted):
            return {r: DomainStats({}) for r in wanted}

        def qemu_pid(self, ref):
            return 100 + ref.domid

    reports: list[object] = []
    poller = StatsPoller(Adapter(), reports.append, time.monotonic)  # type: ignore[arg-type]
    poller.stop()
    poller.join(5)
    poller._poll(tuple(refs), tmp_path)
    kept = dict(poller._files)
    assert set(kept) == set(refs)
    poller._poll(tuple(refs[:2]), tmp_path)  # vm2 went away
    assert poller._files == {r: kept[r] for r in refs[:2]}  # the same descriptors
    with pytest.raises(OSError):
        os.fstat(kept[refs[2]])  # closed
    (tmp_path / "101" / "status").write_text("Name:\tqemu\n")  # vm1's process exiting
    poller._poll(tuple(refs[:2]), tmp_path)
    assert set(poller._files) == {refs[0]}
    with pytest.raises(OSError):
        os.fstat(kept[refs[1]])
    got = [p for p in reports if isinstance(p, Polled)][-1]
    assert [(f.vm, f.rss_mib) for f in got.vms] == [("vm0", 1444)]  # vm1: no figure
    for fd in poller._files.values():
        os.close(fd)
