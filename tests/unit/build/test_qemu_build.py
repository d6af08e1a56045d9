import io
import json
from pathlib import Path

import pytest

from rig.build import patchseries
from rig.build import qemu_build as qb
from rig.errors import RigError
from rig.layout import Layout
from rig.progress import Progress

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


# ---- compile progress ------------------------------------------------------------------

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



# ---- the cached path (no apt, no build) -------------------------------------------------

def test_ensure_qemu_returns_a_cached_build(tmp_path: Path, monkeypatch, layout: Layout):
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


def test_ensure_qemu_builds_without_a_manifest(tmp_path: Path, monkeypatch, layout: Layout):
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


def test_parse_tap_counts():
    from rig.build.qemu_tests import parse_tap

    tap = ("# random seed\n1..4\nok 1 /x86_64/a\nok 2 /x86_64/b # SKIP no kvm\n"
           "not ok 3 /x86_64/c\nok 4 /x86_64/virtio-balloon/message-vq/flood\n")
    assert parse_tap(tap) == (2, 1, 1)
