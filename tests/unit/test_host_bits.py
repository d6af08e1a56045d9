"""Accelerator choice, /proc/swaps parsing, deb-src derivation, progress output."""

import io
from pathlib import Path

import pytest

from rig import accel, debian, swap
from rig.errors import RigError, UsageError
from rig.progress import Progress

VMX = frozenset({"fpu", "vmx", "sse2"})


def test_accel_kvm_only_with_hw_virt_and_no_pvm():
    assert accel.choose(accel.AccelFacts(VMX, True, False)).name == "kvm"
    assert accel.choose(accel.AccelFacts(frozenset({"svm"}), True, False)).domain_type == "kvm"
    pvm = accel.choose(accel.AccelFacts(frozenset({"fpu"}), True, True))
    assert (pvm.name, pvm.domain_type) == ("tcg", "qemu")
    assert "PVM" in pvm.reason
    assert "no vmx/svm" in accel.choose(accel.AccelFacts(frozenset(), True, False)).reason
    assert "no usable /dev/kvm" in accel.choose(accel.AccelFacts(VMX, False, False)).reason
    assert accel.choose(accel.AccelFacts(VMX, True, False), forced="tcg").name == "tcg"
    with pytest.raises(UsageError, match="KVM requested"):
        accel.choose(accel.AccelFacts(VMX, True, True), forced="kvm")


def test_accel_facts_from_fake_root(tmp_path: Path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor : 0\nflags\t\t: fpu svm lm\n")
    (tmp_path / "sys/module/kvm_pvm").mkdir(parents=True)
    f = accel.read_facts(tmp_path)
    assert f.cpu_flags == {"fpu", "svm", "lm"}
    assert f.pvm_module and not f.kvm_device


def test_parse_swaps():
    text = ("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
            "/var/lib/autoballoon/host-swapfile         file\t\t1048572\t\t0\t\t-2\n")
    assert swap.parse_swaps(text) == [Path("/var/lib/autoballoon/host-swapfile")]
    assert swap.parse_swaps(text.splitlines()[0] + "\n") == []


SOURCES = """\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def test_deb_src_copies_every_deb_entry():
    out = debian.derive_deb_src(SOURCES)
    entries = debian.parse_deb822(out)
    assert [e.get("Types") for e in entries] == ["deb-src", "deb-src"]
    assert entries[0].get("URIs") == "http://mirror.example/debian"
    assert entries[0].get("Suites") == "bookworm bookworm-updates"
    assert entries[1].get("Signed-By").endswith("debian-archive-keyring.gpg")
    assert not debian.has_deb_src(SOURCES)
    assert debian.has_deb_src(out)


def test_deb_src_needs_a_deb_entry():
    with pytest.raises(RigError):
        debian.derive_deb_src("Types: deb-src\nURIs: x\n")
    with pytest.raises(ValueError):
        debian.parse_deb822("Types deb\n")


def test_progress_lines_and_summary():
    ticks = iter([0.0, 1.5, 10.0, 10.25, 20.0, 21.0])
    out = io.StringIO()
    p = Progress(stream=out, clock=lambda: next(ticks))
    with p.step("build"):
        pass
    with p.step("fetch") as s:
        s.cached("have it")
    with pytest.raises(RuntimeError), p.step("boom"):
        raise RuntimeError
    text = out.getvalue()
    assert "==> build ..." in text and "<== build: done in 1.5 s" in text
    assert "<== fetch: cached (have it) in 0.2 s" in text
    assert "<== boom: FAILED after 1.0 s" in text
    assert [s.outcome for s in p.steps] == ["done", "cached", "failed"]
    assert "fetch" in p.summary()


POLICY = """\
busybox-static:
  Installed: (none)
  Candidate: 1:1.35.0-4+deb12u1+b1
  Version table:
     1:1.35.0-4+deb12u1+b1 500
        500 http://mirror.example/debian bookworm/main amd64 Packages
no-such-thing:
  Installed: (none)
  Candidate: (none)
  Version table:
"""


def test_parse_candidates():
    assert debian.parse_candidates(POLICY) == {
        "busybox-static": "1:1.35.0-4+deb12u1+b1", "no-such-thing": None}


def test_qmp_event_details():
    from rig.qmp_events import decode_details

    assert decode_details(None) == {}
    assert decode_details("") == {}
    assert decode_details('{"actual": 5}') == {"actual": 5}
    assert decode_details({"a": 1}) == {"a": 1}
    assert decode_details("3") == {"value": 3}


def test_thp_selected_mode():
    from rig.host import thp_selected

    assert thp_selected("always [madvise] never\n") == "madvise"
    assert thp_selected("[never] always madvise") == "never"
    with pytest.raises(RigError, match="cannot read the THP mode"):
        thp_selected("garbage")
