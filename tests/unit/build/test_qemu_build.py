import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rig.build import debian, patchseries
from rig.build import qemu_build as qb
from rig.errors import RigError
from rig.layout import Layout
from rig.progress import Progress

# ---- Debian version ordering ------------------------------------------------------------

ORDERED_PAIRS = [
    ("1.0", "1.0.1"),
    ("1.0~rc1", "1.0"),
    ("1.0~rc1", "1.0~rc2"),
    ("1.0~~", "1.0~"),
    ("1.0", "1.0a"),
    ("1.0a", "1.0+"),
    ("1.0", "1.0-1"),
    ("1.0-1", "1.0-2"),
    ("1.0-9", "1.0-10"),
    ("9.9-9", "1:0.1-1"),
    ("1:7.2+dfsg-7", "1:7.2+dfsg-7+deb12u1"),
    ("1:7.2+dfsg-7+deb12u9", "1:7.2+dfsg-7+deb12u10"),
    ("1:7.2+dfsg-7+deb12u15", "1:7.2+dfsg-7+deb12u18"),
    ("1:7.2+dfsg-7+deb12u18", "1:7.2+dfsg-8"),
    ("1:7.2+dfsg-7+deb12u18", "1:7.2.1+dfsg-1"),
    ("1:7.2+dfsg-7~bpo11+1", "1:7.2+dfsg-7"),
    ("2.01", "2.1a"),
    ("a-b-1", "a-b-2"),  # the revision is after the last hyphen
]


@pytest.mark.parametrize(("lo", "hi"), ORDERED_PAIRS)
def test_compare_versions_orders_like_dpkg(lo, hi):
    assert qb.compare_versions(lo, hi) == -1
    assert qb.compare_versions(hi, lo) == 1
    assert qb.compare_versions(lo, lo) == 0


@pytest.mark.parametrize(("a", "b"), [("1.01", "1.1"), ("0:1.0", "1.0"), ("1.0-0", "1.0-")])
def test_compare_versions_equal_spellings(a, b):
    assert qb.compare_versions(a, b) == 0


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="no dpkg to cross-check against")
@pytest.mark.parametrize(("lo", "hi"), ORDERED_PAIRS)
def test_compare_versions_agrees_with_dpkg(lo, hi):
    r = subprocess.run(["dpkg", "--compare-versions", lo, "lt", hi], check=False)
    assert r.returncode == 0


def test_bad_versions_are_rejected():
    with pytest.raises(ValueError):
        qb.compare_versions("x:1.0", "1.0")
    with pytest.raises(ValueError):
        qb.compare_versions("1:-1", "1.0")


def test_pick_source_version_takes_the_newest_matching():
    versions = [
        "1:7.2+dfsg-7+deb12u15",
        "1:7.2+dfsg-7+deb12u18",
        "1:7.2+dfsg-7+deb12u9",
        "1:10.0.2+ds-1~bpo12+1",
        "1:8.0+dfsg-1",
    ]
    assert qb.pick_source_version(versions) == "1:7.2+dfsg-7+deb12u18"


def test_pick_source_version_none_when_nothing_matches():
    assert qb.pick_source_version([]) is None
    assert qb.pick_source_version(["1:10.0.2+ds-1~bpo12+1"]) is None


def test_no_version_message_is_one_line_and_says_what_to_do():
    msg = qb.no_version_message(["1:10.0.2+ds-1"])
    assert "\n" not in msg
    assert "apt-get update" in msg and "deb-src" in msg
    assert "1:10.0.2+ds-1" in msg


# ---- configuration and key --------------------------------------------------------------

def test_device_config_enables_what_libvirt_q35_guests_need():
    text = qb.device_config_text()
    enabled = {line for line in text.splitlines() if not line.startswith("#")}
    for name in ("I440FX", "Q35", "PCIE_PORT", "USB_XHCI_PCI", "VIRTIO_PCI", "VIRTIO_BLK",
                 "VIRTIO_NET", "VIRTIO_SERIAL", "VIRTIO_BALLOON", "VIRTIO_RNG", "SERIAL_ISA"):
        assert f"CONFIG_{name}=y" in enabled
    assert all(line.endswith("=y") for line in enabled)


def test_configure_argv():
    argv = qb.configure_argv(Path("/c/qemu/k"), "autoballoon k, Debian v")
    assert argv[0] == "../configure"
    for flag in ("--target-list=x86_64-softmmu", "--without-default-features",
                 "--without-default-devices", "--enable-kvm", "--enable-tcg",
                 "--enable-slirp", "--disable-docs", "--prefix=/c/qemu/k",
                 "--with-pkgversion=autoballoon k, Debian v",
                 "--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu"):
        assert flag in argv
    assert f"--with-devices-x86_64={qb.DEVICE_CONFIG_NAME}" in argv
    # configure refuses --python with a system meson; PATH picks Debian's python3 instead
    assert not any(a.startswith("--python") for a in argv)


def test_package_version_names_key_and_source():
    assert qb.package_version("abc", "1:7.2+dfsg-7") == "autoballoon abc, Debian 1:7.2+dfsg-7"


def _patch_dir(tmp_path: Path) -> Path:
    d = tmp_path / "patches"
    d.mkdir()
    return d


def test_key_is_stable_and_tracks_each_input(tmp_path: Path):
    d = _patch_dir(tmp_path)
    base = qb.build_key("1:7.2+dfsg-7+deb12u18", d)
    assert base == qb.build_key("1:7.2+dfsg-7+deb12u18", d)
    assert base != qb.build_key("1:7.2+dfsg-7+deb12u19", d)
    # a missing patch directory is the same as an empty one
    assert base == qb.build_key("1:7.2+dfsg-7+deb12u18", tmp_path / "missing")
    inputs = qb.key_inputs("v", patchseries.patches_digest(d))
    assert set(inputs) == {"source-version", "patches", "configure", "devices", "build-path",
                           "recipe"}
    assert "--without-default-devices" in inputs["configure"]
    assert "CONFIG_VIRTIO_BALLOON=y" in inputs["devices"]


def test_key_tracks_patches_but_not_readme(tmp_path: Path):
    d = _patch_dir(tmp_path)
    empty = qb.build_key("v", d)
    (d / "README.md").write_text("how to write patches")
    assert qb.build_key("v", d) == empty
    (d / "0001-a.patch").write_text("diff --git a/x b/x\n")
    one = qb.build_key("v", d)
    assert one != empty
    (d / "0001-a.patch").write_text("diff --git a/x b/x\n+more\n")
    changed = qb.build_key("v", d)
    assert changed not in (empty, one)
    (d / "0001-a.patch").rename(d / "0002-a.patch")
    renamed = qb.build_key("v", d)
    assert renamed not in (empty, one, changed)
    # a cover letter (no diff) is prose: editing it must not cost a QEMU rebuild
    (d / "0000-cover-letter.patch").write_text("Subject: [PATCH 0/1] x\n\nblurb\n")
    assert qb.build_key("v", d) == renamed


def test_list_patches_sorted_by_name(tmp_path: Path):
    d = _patch_dir(tmp_path)
    for name in ("0002-b.patch", "0010-c.patch", "0001-a.patch", "notes.txt"):
        (d / name).write_text("x")
    assert [p.name for p in patchseries.list_patches(d)] == ["0001-a.patch", "0002-b.patch",
                                                    "0010-c.patch"]
    assert patchseries.list_patches(tmp_path / "missing") == []


def test_has_diff_skips_cover_letters():
    assert not patchseries.has_diff("Subject: [PATCH 0/2] cover\n\nblurb\n")
    assert patchseries.has_diff("Subject: x\n---\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n")


def test_source_file_names():
    v = "1:7.2+dfsg-7+deb12u18"
    assert qb.dsc_name(v) == "qemu_7.2+dfsg-7+deb12u18.dsc"
    assert qb.dsc_name("7.2-1") == "qemu_7.2-1.dsc"
    assert qb.source_dir_name(v) == "1_7.2+dfsg-7+deb12u18"


# ---- progress and checks ----------------------------------------------------------------

def test_parse_ninja_progress():
    assert qb.parse_ninja_progress("[12/1254] Compiling C object libqemu.a.p/x.c.o\n") == (
        12, 1254)
    assert qb.parse_ninja_progress("ninja: Entering directory `build'") is None
    assert qb.parse_ninja_progress("  [1/2] indented") is None


def test_ninja_meter_reports_each_tenth_once():
    meter = qb.NinjaMeter()
    reports = [r for n in range(1, 101) if (r := meter.update(n, 100))]
    assert reports == [f"compile [{n}/100]" for n in range(10, 101, 10)]
    assert qb.NinjaMeter().update(0, 0) is None


DEVICE_HELP = """\
Controller/Bridge/Hub devices:
name "pcie-root-port", bus PCI
name "qemu-xhci", bus PCI

Input devices:
name "isa-serial", bus ISA

Misc devices:
name "virtio-balloon-pci", bus PCI, alias "virtio-balloon"
name "virtio-rng-pci", bus PCI
name "virtio-serial-pci", bus PCI, alias "virtio-serial"

Network devices:
name "virtio-net-pci", bus PCI, alias "virtio-net"

Storage devices:
name "virtio-blk-pci", bus PCI, alias "virtio-blk"
"""


def test_missing_devices():
    assert qb.missing_devices(DEVICE_HELP) == []
    without_balloon = DEVICE_HELP.replace('name "virtio-balloon-pci"', 'name "other"')
    assert qb.missing_devices(without_balloon) == ["virtio-balloon-pci"]


def test_parse_version_output():
    out = ("QEMU emulator version 7.2.22 (autoballoon k, Debian 1:7.2+dfsg-7+deb12u18)\n"
           "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n")
    assert qb.parse_version_output(out) == ("7.2.22", "autoballoon k, Debian 1:7.2+dfsg-7+deb12u18")
    assert qb.parse_version_output("QEMU emulator version 7.2.0\n") == ("7.2.0", "")
    assert qb.parse_version_output("nope") is None


def _transcript(*extra: dict) -> str:
    lines = [{"QMP": {"version": {}, "capabilities": []}}]
    lines += [{"return": {}, "id": "qmp_capabilities"},
              {"return": {"qemu": {"major": 7}}, "id": "query-version"},
              {"return": {"actual": 134217728}, "id": "query-balloon"},
              {"return": {}, "id": "quit"},
              {"timestamp": {}, "event": "SHUTDOWN", "data": {}}]
    lines += list(extra)
    return "\n".join(json.dumps(m) for m in lines) + "\n"


def test_qmp_smoke_input_asks_every_command():
    sent = [json.loads(line) for line in qb.qmp_smoke_input().splitlines()]
    assert [m["execute"] for m in sent] == list(qb.QMP_SMOKE_COMMANDS)
    assert sent[0]["execute"] == "qmp_capabilities" and sent[-1]["execute"] == "quit"


def test_check_qmp_transcript():
    answers = qb.check_qmp_transcript(_transcript())
    assert answers["query-balloon"] == {"actual": 134217728}
    with pytest.raises(ValueError, match="No balloon"):
        qb.check_qmp_transcript(_transcript().replace(
            '{"return": {"actual": 134217728}, "id": "query-balloon"}',
            '{"error": {"class": "DeviceNotActive", "desc": "No balloon device"}, '
            '"id": "query-balloon"}'))
    with pytest.raises(ValueError, match="quit"):
        qb.check_qmp_transcript(_transcript().replace('"id": "quit"', '"id": "other"'))
    with pytest.raises(ValueError, match="greeting"):
        qb.check_qmp_transcript("qemu: could not load PC BIOS 'bios-256k.bin'\n")


def test_smoke_argv_is_a_nodefaults_q35_machine_with_a_balloon():
    argv = qb.smoke_argv(Path("/p/bin/qemu-system-x86_64"))
    assert argv[0] == "/p/bin/qemu-system-x86_64"
    assert "-nodefaults" in argv and "-L" not in argv
    assert "q35,accel=tcg" in argv
    assert any(a.startswith("virtio-balloon-pci") for a in argv)
    assert argv[-2:] == ["-qmp", "stdio"]


# ---- the cached path (no apt, no build) -------------------------------------------------

def _layout(tmp_path: Path) -> Layout:
    repo = tmp_path / "repo"
    (repo / "host" / "qemu" / "patches").mkdir(parents=True)
    return Layout(repo=repo, cache=tmp_path / "cache", state=tmp_path / "state",
                  run=tmp_path / "run")


def test_ensure_qemu_returns_a_cached_build(tmp_path: Path, monkeypatch):
    layout = _layout(tmp_path)
    version = "1:7.2+dfsg-7+deb12u18"
    monkeypatch.setattr(qb, "resolve_source_version", lambda _layout: version)
    monkeypatch.setattr(qb, "_build", lambda *a: pytest.fail("must not build"))
    key = qb.build_key(version, layout.qemu_patches)
    prefix = layout.cache / "qemu" / key
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "qemu-system-x86_64").write_text("")
    (prefix / "manifest.json").write_text(json.dumps(
        {"key": key, "version": version, "patches": []}))
    out = io.StringIO()
    build = qb.ensure_qemu(layout, Progress(stream=out))
    assert build == qb.QemuBuild(key=key, prefix=prefix,
                                 binary=prefix / "bin" / "qemu-system-x86_64",
                                 source_version=version, patches=())
    assert "cached" in out.getvalue()


def test_ensure_qemu_builds_without_a_manifest(tmp_path: Path, monkeypatch):
    layout = _layout(tmp_path)
    monkeypatch.setattr(qb, "resolve_source_version", lambda _layout: "1:7.2+dfsg-7")
    calls = []

    def fake_build(_layout, _progress, version, key):
        calls.append((version, key))
        raise RigError("boom")

    monkeypatch.setattr(qb, "_build", fake_build)
    key = qb.build_key("1:7.2+dfsg-7", layout.qemu_patches)
    # a prefix without a manifest (an interrupted copy) does not count
    (layout.cache / "qemu" / key / "bin").mkdir(parents=True)
    with pytest.raises(RigError, match="boom"):
        qb.ensure_qemu(layout, Progress(stream=io.StringIO()))
    assert calls == [("1:7.2+dfsg-7", key)]


def test_resolve_source_version_without_candidates(tmp_path: Path, monkeypatch):
    layout = _layout(tmp_path)
    monkeypatch.setattr(debian, "apt_fingerprint", lambda: "fp")
    monkeypatch.setattr(qb, "available_source_versions", lambda _layout: ["1:10.0-1"])
    with pytest.raises(RigError, match="apt-get update"):
        qb.resolve_source_version(layout)


def test_resolve_source_version_is_remembered_per_apt_state(tmp_path: Path, monkeypatch):
    layout = _layout(tmp_path)
    asked = []
    state = {"fp": "a"}
    monkeypatch.setattr(debian, "apt_fingerprint", lambda: state["fp"])

    def versions(_layout):
        asked.append(1)
        return ["1:7.2+dfsg-7+deb12u15", "1:7.2+dfsg-7+deb12u18"]

    monkeypatch.setattr(qb, "available_source_versions", versions)
    assert qb.resolve_source_version(layout) == "1:7.2+dfsg-7+deb12u18"
    assert qb.resolve_source_version(layout) == "1:7.2+dfsg-7+deb12u18"
    assert len(asked) == 1
    state["fp"] = "b"
    qb.resolve_source_version(layout)
    assert len(asked) == 2


def test_parse_tap_counts():
    from rig.build.qemu_tests import parse_tap

    tap = ("# random seed\n1..4\nok 1 /x86_64/a\nok 2 /x86_64/b # SKIP no kvm\n"
           "not ok 3 /x86_64/c\nok 4 /x86_64/virtio-balloon/message-vq/flood\n")
    assert parse_tap(tap) == (2, 1, 1)
