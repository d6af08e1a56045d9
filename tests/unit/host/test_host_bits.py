"""Accelerator choice, /proc/swaps parsing and the THP mode of the host layer."""

from pathlib import Path

import pytest

from rig.errors import RigError, UsageError
from rig.host import accel, swap

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


def test_thp_selected_mode():
    from rig.host.lifecycle import thp_selected

    assert thp_selected("always [madvise] never\n") == "madvise"
    assert thp_selected("[never] always madvise") == "never"
    with pytest.raises(RigError, match="cannot read the THP mode"):
        thp_selected("garbage")

